/**
 * Every connection takes one file descriptor, counted against the process's open-file limit
 * (`ulimit -n`). Past that limit the operating system refuses the accept, and libuv then accepts and
 * closes waiting connections itself, unlogged, so `--max-connections` would not be what closes them.
 * lockd therefore serves at most as many connections as fit under the limit with room left for its
 * own files, and says so when that is fewer than configured.
 */
import { readFileSync } from "node:fs";

/**
 * Descriptors kept for lockd itself: standard streams, the listener, the event loop's own, the log
 * segment and the one being prepared, the data directory's lock, the compaction launcher's pipes
 * (about 25 at most), with room to spare.
 */
export const RESERVED_DESCRIPTORS = 64;

/**
 * The soft "Max open files" limit from a Linux `/proc/<pid>/limits` text; null if the line is
 * missing or the limit is unlimited.
 */
export function parseOpenFileLimit(limitsText: string): number | null {
  const match = /^Max open files\s+(\S+)/m.exec(limitsText);
  if (match === null || !/^\d+$/.test(match[1]!)) return null;
  return Number(match[1]);
}

/** This process's open-file limit, or null where it cannot be read (Node has no getrlimit; not Linux). */
export function readOpenFileLimit(): number | null {
  try {
    return parseOpenFileLimit(readFileSync("/proc/self/limits", "utf8"));
  } catch {
    return null;
  }
}

/** The connections lockd can serve: the configured maximum, or what fits under the limit if fewer (at least 1). */
export function connectionsWithinFileLimit(configured: number, openFileLimit: number | null): number {
  if (openFileLimit === null) return configured;
  return Math.max(1, Math.min(configured, openFileLimit - RESERVED_DESCRIPTORS));
}

/**
 * The connections one turn of the event loop may accept: `configured` (--accepts-per-turn), or fewer
 * where the open-file limit leaves fewer descriptors beyond the connections' own, since each one past
 * the first is a further descriptor of the listening socket. Connections come first; at least 1.
 */
export function acceptsPerTurnWithinFileLimit(configured: number, connections: number, openFileLimit: number | null): number {
  if (openFileLimit === null) return configured;
  return Math.max(1, Math.min(configured, openFileLimit - RESERVED_DESCRIPTORS - connections + 1));
}
