/**
 * Start-up recovery: the newest snapshot, then every log record after it, replayed through the same
 * state machine code that decided them. A torn tail (a partial or bad record at the very end of the
 * newest segment, with nothing valid after it) is an append that never completed, so it was never
 * acknowledged: it is truncated and reported. Damage anywhere else refuses the start, naming the file
 * and offset, because skipping a record would silently forget acknowledged state. Files a snapshot
 * covers (older snapshots, segments wholly inside it) are leftovers of an interrupted clean-up and go.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, unlinkSync } from "node:fs";
import { emptyStateFor } from "../core/snapshot-codec.js";
import { PREFETCH_MAX, fixedStarts, type StateMachine, type StateMachineConfig } from "../core/state-machine.js";
import { ENTRY_BYTES, RECORD_COUNT_AT, RECORD_HEADER_BYTES, countFitsLength, readRecord } from "../log/record.js";
import { RESPONSE_BYTES } from "../protocol/wire.js";
import type { Logger } from "../server/logger.js";
import { listSegments, listSnapshots, type DataDir, type SegmentFile } from "./data-dir.js";
import { SegmentReader } from "./segment-reader.js";
import { readSnapshotFile } from "./snapshot-file.js";

export class RecoveryError extends Error {
  readonly code = "RECOVERY_FAILED";
}

export interface Recovered {
  readonly stateMachine: StateMachine;
  /** Index of the last entry in the state (0 for an empty log). */
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** The newest segment, to keep appending to; null when there is none. */
  readonly active: SegmentFile | null;
  /** Older segments not yet folded into a snapshot, oldest first. */
  readonly sealed: readonly (SegmentFile & { readonly lastIndex: number })[];
  readonly snapshotPath: string | null;
  readonly entriesReplayed: number;
  /** Bytes of log segments read into memory for the replay (the newest segment's unwritten zeros are not). */
  readonly logBytesRead: number;
}

export function recover(dir: DataDir, config: StateMachineConfig, logger: Logger): Recovered {
  const segments = listSegments(dir);
  // Size the tables for the whole log up front (see decodeSnapshot): where the newest segment's
  // records end, from their headers.
  const newestSegment = segments.at(-1);
  const newestHeaders = newestSegment === undefined ? null : scanHeaders(newestSegment.path, newestSegment.firstIndex);
  const replayThrough = newestHeaders?.lastIndex ?? 0;
  let stateMachine: StateMachine | null = null;
  let lastIndex = 0;
  let lastTerm = 0;
  let snapshotPath: string | null = null;

  const [newest, ...older] = listSnapshots(dir);
  if (newest !== undefined) {
    const decoded = readSnapshotFile(newest.path, config, replayThrough);
    if (!decoded.ok) throw new RecoveryError(`snapshot ${newest.path} is unreadable: ${decoded.reason}`);
    if (decoded.position.lastIndex !== newest.lastIndex) {
      throw new RecoveryError(`snapshot ${newest.path} says it ends at index ${decoded.position.lastIndex}, its name says ${newest.lastIndex}`);
    }
    stateMachine = decoded.stateMachine;
    lastIndex = decoded.position.lastIndex;
    lastTerm = decoded.position.lastTerm;
    snapshotPath = newest.path;
    // Leftovers of a clean-up a crash cut short: recovery never reads a snapshot older than the
    // newest (it refuses to start if the newest is unreadable), so each would stay until the next
    // compaction's clean-up, and repeated crashes would pile them up.
    for (const old of older) unlinkSync(old.path);
  }
  stateMachine ??= emptyStateFor(config, replayThrough);

  const segmentReader = new SegmentReader();
  const progress: ReplayProgress = { snapshotIndex: lastIndex, lastIndex, lastTerm, entries: 0 };
  const sealed: (SegmentFile & { lastIndex: number })[] = [];
  let active: SegmentFile | null = null;

  for (let s = 0; s < segments.length; s++) {
    const segment = segments[s]!;
    const next = segments[s + 1];
    const isNewest = next === undefined;
    // A segment wholly inside the snapshot is a leftover of an interrupted clean-up.
    if (next !== undefined && next.firstIndex - 1 <= progress.snapshotIndex) {
      unlinkSync(segment.path);
      continue;
    }
    if (segment.firstIndex > progress.lastIndex + 1) {
      throw new RecoveryError(`log gap: ${segment.path} starts at index ${segment.firstIndex} but the log so far ends at ${progress.lastIndex}`);
    }
    const { bytes, replay } = isNewest
      ? replayNewest(segmentReader, segment.path, newestHeaders!.end, stateMachine, progress)
      : replayWhole(segmentReader, segment.path, stateMachine, progress);
    const at = replay.end;
    if (replay.damage !== null) {
      if (isNewest && !replay.outOfSequence && !hasValidRecordAfter(bytes, at)) {
        truncate(segment.path, at);
        const written = lastNonZero(bytes) + 1 - at;
        logger.warn(
          `${segment.path}: dropped ${bytes.length - at} bytes at offset ${at}, a torn final write ` +
            `(${written} bytes of data, the rest preallocated zeros; ${replay.damage}); it was never acknowledged`,
        );
      } else {
        throw new RecoveryError(
          `${segment.path} is corrupt at offset ${at}: ${replay.damage}. ` +
            (isNewest ? "Records follow it, so it is not a torn final write; " : "It is not the newest segment; ") +
            "refusing to start rather than skip acknowledged state. Restore the data directory from a backup or replica.",
        );
      }
    }
    const recovered: SegmentFile = { path: segment.path, firstIndex: segment.firstIndex, bytes: at };
    if (isNewest) active = recovered;
    else sealed.push({ ...recovered, lastIndex: progress.lastIndex });
  }

  return {
    stateMachine,
    lastIndex: progress.lastIndex,
    lastTerm: progress.lastTerm,
    active,
    sealed,
    snapshotPath,
    entriesReplayed: progress.entries,
    logBytesRead: segmentReader.bytesRead,
  };
}

function replayWhole(reader: SegmentReader, path: string, stateMachine: StateMachine, progress: ReplayProgress): SegmentReplay {
  const bytes = reader.read(path);
  return { bytes, replay: replayRecords(bytes, stateMachine, progress) };
}

/**
 * The newest segment is preallocated with zeros, most of it unwritten in a young log: it is read only
 * as far as its records' headers reach (`recordsEnd`), and the rest is checked for zeros through a
 * small window instead of being read into memory. Anything else there (a torn or damaged tail) is
 * decided on the whole file, as any older segment is: the replay goes on over the whole file from
 * where it stopped, which gives exactly what replaying the whole file from the start would have.
 */
function replayNewest(reader: SegmentReader, path: string, recordsEnd: number, stateMachine: StateMachine, progress: ReplayProgress): SegmentReplay {
  const bytes = reader.read(path, recordsEnd);
  const replay = replayRecords(bytes, stateMachine, progress);
  if (replay.damage === null && reader.zerosFrom(path, replay.end)) return { bytes, replay };
  const whole = reader.read(path);
  return { bytes: whole, replay: replayRecords(whole, stateMachine, progress, replay.end) };
}

interface SegmentReplay {
  /** What was replayed: the segment's bytes, or the first of them where the rest is zeros. */
  readonly bytes: Buffer;
  readonly replay: ReplayStop;
}

export interface ReplayProgress {
  /** Entries up to this index are already in the state (from the snapshot). */
  readonly snapshotIndex: number;
  lastIndex: number;
  lastTerm: number;
  entries: number;
}

/**
 * Applies every record of one segment's bytes in order. Returns where it stopped and, if it stopped
 * before the end, why (a damaged or out-of-sequence record at `end`).
 */
export interface ReplayStop {
  readonly end: number;
  readonly damage: string | null;
  /** The record at `end` is intact but does not continue the log: never a torn write. */
  readonly outOfSequence: boolean;
}

export function replayRecords(bytes: Buffer, stateMachine: StateMachine, progress: ReplayProgress, from = 0): ReplayStop {
  const answer = new Uint8Array(RESPONSE_BYTES);
  const starts = new Int32Array(PREFETCH_MAX);
  let at = from;
  for (;;) {
    const scan = readRecord(bytes, at);
    if (scan.kind === "end") return { end: at, damage: null, outOfSequence: false };
    if (scan.kind !== "record") return { end: at, damage: scan.reason, outOfSequence: false };
    const { header } = scan;
    const recordLast = header.firstIndex + header.count - 1;
    if (recordLast > progress.snapshotIndex) {
      // Entries continue the log exactly; only a record straddling the snapshot may start earlier.
      const expected = progress.lastIndex + 1;
      const straddles = header.firstIndex <= progress.snapshotIndex && progress.lastIndex === progress.snapshotIndex;
      if (header.firstIndex !== expected && !straddles) {
        return { end: at, damage: `record starts at index ${header.firstIndex}, expected ${expected}`, outOfSequence: true };
      }
      for (let from = 0; from < header.count; from += PREFETCH_MAX) {
        const to = Math.min(header.count, from + PREFETCH_MAX);
        // As the server does for a read's frames: warm the tables for the record's entries first.
        const window = to - from;
        if (window > 1) stateMachine.prefetch(bytes, fixedStarts(starts, scan.entriesAt + from * ENTRY_BYTES, ENTRY_BYTES, window), window, header.stampMs);
        for (let i = from; i < to; i++) {
          const index = header.firstIndex + i;
          if (index <= progress.snapshotIndex) continue;
          stateMachine.execute(bytes, scan.entriesAt + i * ENTRY_BYTES, header.stampMs, answer, 0, null);
          progress.lastIndex = index;
          progress.entries++;
        }
      }
      progress.lastTerm = header.term;
    }
    at = scan.end;
  }
}

/**
 * The last index the records of a segment (starting at `firstIndex`) claim, and the offset where
 * they end, walking their length and count fields only, without checksums: hints, never trusted as
 * state. The walk stops at anything that cannot be a record header (readRecord's own test,
 * countFitsLength), and every entry it counts takes ENTRY_BYTES of the file, so damage can never make
 * it claim more entries than the file holds.
 */
function scanHeaders(path: string, firstIndex: number): { readonly lastIndex: number; readonly end: number } {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    // Headers are read through one window of the file, refilled from the next header when it runs
    // out: the segment is not held in memory a second time.
    const window = Buffer.allocUnsafe(HEADER_WINDOW_BYTES);
    let windowStart = 0;
    let windowEnd = 0;
    let last = firstIndex - 1;
    let at = 0;
    while (at + RECORD_HEADER_BYTES <= size) {
      if (at + RECORD_HEADER_BYTES > windowEnd) {
        windowStart = at;
        windowEnd = at + readSync(fd, window, 0, window.length, at);
        if (at + RECORD_HEADER_BYTES > windowEnd) break;
      }
      const length = window.readUInt32BE(at - windowStart);
      const count = window.readUInt32BE(at - windowStart + RECORD_COUNT_AT);
      if (length === 0 || !countFitsLength(count, length) || at + 4 + length > size) break;
      last += count;
      at += 4 + length;
    }
    return { lastIndex: last, end: at };
  } finally {
    closeSync(fd);
  }
}

const HEADER_WINDOW_BYTES = 1 << 20;

/** Is there any well-formed record starting somewhere after `from`? (Then `from` is not a torn tail.) */
function hasValidRecordAfter(bytes: Buffer, from: number): boolean {
  for (let at = from + 1; at + 4 <= bytes.length; at++) {
    if (bytes[at] === 0 && bytes[at + 1] === 0 && bytes[at + 2] === 0 && bytes[at + 3] === 0) continue; // preallocated zeros
    if (readRecord(bytes, at).kind === "record") return true;
  }
  return false;
}

function lastNonZero(bytes: Buffer): number {
  let at = bytes.length - 1;
  while (at >= 0 && bytes[at] === 0) at--;
  return at;
}

function truncate(path: string, length: number): void {
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
