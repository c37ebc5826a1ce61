/**
 * Notices the data directory being deleted or replaced under a running lockd. Nothing else would:
 * the log's open file goes on taking writes and syncs after its directory is gone, so lockd would
 * keep acknowledging changes that no restart can find, and the next start would begin from an empty
 * state, granting every lock and fencing token again. Checked once a second, with a few stat calls:
 * the root and its log directory, each through a descriptor held open since the start (a deleted
 * directory's link count drops to 0) and by its path (which must still lead to that same directory).
 * A path that can no longer be looked at (its permissions changed, an I/O error) is told apart from
 * one that leads nowhere: the directory may be intact, and the operator's remedy is a different one.
 */
import { closeSync, constants, fstatSync, openSync, statSync, type Stats } from "node:fs";
import type { DataDir } from "./data-dir.js";

export const DATA_DIR_CHECK_MS = 1_000;

export interface DataDirWatch {
  stop(): void;
}

/**
 * What the watch found: a directory deleted, moved away or replaced (`gone`), or a path that can no
 * longer be looked at, so that lockd cannot tell whether the directory is still there (`unreachable`).
 */
export interface DataDirLoss {
  readonly kind: "gone" | "unreachable";
  readonly what: string;
}

/**
 * The path errors that mean the directory is not there any more (ESTALE: gone on the NFS server, as
 * for the descriptor below); any other leaves it unknown.
 */
const NOTHING_THERE = new Set(["ENOENT", "ENOTDIR", "ESTALE"]);

interface Watched {
  readonly path: string;
  readonly fd: number;
}

/**
 * Calls `onLost` once, with what happened, when the directory or its log directory is gone or can no
 * longer be looked at. `stat` is the path lookup (a test's stand-in for a permission change, which
 * root, who runs the tests, is exempt from).
 */
export function watchDataDir(
  dir: DataDir,
  onLost: (loss: DataDirLoss) => void,
  everyMs = DATA_DIR_CHECK_MS,
  stat: (path: string) => Stats = statSync,
): DataDirWatch {
  const watched = [dir.root, dir.logDir].map((path): Watched => ({ path, fd: openSync(path, constants.O_RDONLY | constants.O_DIRECTORY) }));
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    for (const { fd } of watched) closeSync(fd);
  };
  const timer = setInterval(() => {
    const loss = findLoss(watched, stat);
    if (loss === null) return;
    stop();
    onLost(loss);
  }, everyMs);
  timer.unref();
  return { stop };
}

/** What happened to the first watched directory that is no longer where it was, or null. */
function findLoss(watched: readonly Watched[], stat: (path: string) => Stats): DataDirLoss | null {
  for (const { path, fd } of watched) {
    let held;
    try {
      held = fstatSync(fd);
    } catch (error) {
      // ESTALE on NFS: the directory is gone on the server. Anything else is no better a sign.
      return { kind: "gone", what: `${path} cannot be read through the descriptor held since the start (${codeOf(error)})` };
    }
    if (held.nlink === 0) return { kind: "gone", what: `${path} was deleted` };
    let now;
    try {
      now = stat(path);
    } catch (error) {
      const code = codeOf(error);
      if (NOTHING_THERE.has(code)) return { kind: "gone", what: `${path} is gone (${code})` };
      return { kind: "unreachable", what: `${path} can no longer be looked at (${code})` };
    }
    // A directory renamed away keeps its links; the path then leads elsewhere, or nowhere.
    if (now.ino !== held.ino || now.dev !== held.dev) {
      return { kind: "gone", what: `${path} was replaced by another directory (moved away, or deleted and made again)` };
    }
  }
  return null;
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error as Error).message;
}
