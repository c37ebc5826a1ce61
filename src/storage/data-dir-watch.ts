/**
 * Notices the data directory being deleted or replaced under a running lockd. Nothing else would:
 * the log's open file goes on taking writes and syncs after its directory is gone, so lockd would
 * keep acknowledging changes that no restart can find, and the next start would begin from an empty
 * state, granting every lock and fencing token again. Checked once a second, with a few stat calls:
 * the root and its log directory, each through a descriptor held open since the start (a deleted
 * directory's link count drops to 0) and by its path (which must still lead to that same directory).
 */
import { closeSync, constants, fstatSync, openSync, statSync } from "node:fs";
import type { DataDir } from "./data-dir.js";

export const DATA_DIR_CHECK_MS = 1_000;

export interface DataDirWatch {
  stop(): void;
}

interface Watched {
  readonly path: string;
  readonly fd: number;
}

/** Calls `onGone` once, with what happened, when the directory or its log directory is gone. */
export function watchDataDir(dir: DataDir, onGone: (what: string) => void, everyMs = DATA_DIR_CHECK_MS): DataDirWatch {
  const watched = [dir.root, dir.logDir].map((path): Watched => ({ path, fd: openSync(path, constants.O_RDONLY | constants.O_DIRECTORY) }));
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(timer);
    for (const { fd } of watched) closeSync(fd);
  };
  const timer = setInterval(() => {
    const gone = findGone(watched);
    if (gone === null) return;
    stop();
    onGone(gone);
  }, everyMs);
  timer.unref();
  return { stop };
}

/** What happened to the first watched directory that is no longer where it was, or null. */
function findGone(watched: readonly Watched[]): string | null {
  for (const { path, fd } of watched) {
    let held;
    try {
      held = fstatSync(fd);
    } catch (error) {
      // ESTALE on NFS: the directory is gone on the server. Anything else is no better a sign.
      return `${path} cannot be read through the descriptor held since the start (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
    }
    if (held.nlink === 0) return `${path} was deleted`;
    let now;
    try {
      now = statSync(path);
    } catch (error) {
      return `${path} is gone (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`;
    }
    // A directory renamed away keeps its links; the path then leads elsewhere, or nowhere.
    if (now.ino !== held.ino || now.dev !== held.dev) return `${path} was replaced by another directory (moved away, or deleted and made again)`;
  }
  return null;
}
