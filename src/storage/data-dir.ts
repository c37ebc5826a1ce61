/**
 * The data directory's layout:
 *
 *   DIR/LOCK                            flock(2)ed by the lockd using the directory; holds its pid
 *   DIR/clock-step                      the last wall-clock step noticed (clock-step-file.ts)
 *   DIR/clock-anchor                    the clock's last sample beside the machine's (clock-anchor-file.ts)
 *   DIR/clean-stop                      the log's last index at a clean stop (clean-stop-file.ts)
 *   DIR/log/<first index, 20 digits>.seg    log segments, records in index order
 *   DIR/snapshots/<last index, 20 digits>.snap  whole-state snapshots; the newest valid one wins
 *
 * A segment's name is the index of its first entry, so sorting names sorts the log.
 */
import { existsSync, mkdirSync, readdirSync, statfsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { syncDirectory } from "./log-file.js";

const INDEX_DIGITS = 20;
const SEGMENT_SUFFIX = ".seg";
const SNAPSHOT_SUFFIX = ".snap";

export interface DataDir {
  readonly root: string;
  readonly logDir: string;
  readonly snapshotDir: string;
  readonly lockFile: string;
}

export interface SegmentFile {
  readonly path: string;
  readonly firstIndex: number;
  readonly bytes: number;
}

export interface SnapshotFile {
  readonly path: string;
  readonly lastIndex: number;
}

/** File systems whose contents do not outlive the machine's next boot, by statfs(2)'s f_type. */
const VOLATILE_FILE_SYSTEMS = new Map<number, string>([
  [0x01021994, "tmpfs"],
  [0x858458f6, "ramfs"],
]);

/** The name of the file system holding `root` if a reboot empties it (tmpfs, ramfs); null otherwise, or if it cannot be told. */
export function volatileFileSystem(root: string, statfs: (path: string) => { type: number } = statfsSync): string | null {
  try {
    return VOLATILE_FILE_SYSTEMS.get(statfs(root).type) ?? null;
  } catch {
    return null;
  }
}

function layoutOf(root: string): DataDir {
  return { root, logDir: join(root, "log"), snapshotDir: join(root, "snapshots"), lockFile: join(root, "LOCK") };
}

/**
 * Whether `root` holds a state lockd wrote: a log segment or a snapshot (every start that served
 * leaves a segment, even an empty one). Creates nothing.
 */
export function holdsState(root: string): boolean {
  const dir = layoutOf(root);
  const has = (folder: string, suffix: string) => existsSync(folder) && numberedFiles(folder, suffix).length > 0;
  return has(dir.logDir, SEGMENT_SUFFIX) || has(dir.snapshotDir, SNAPSHOT_SUFFIX);
}

export function openDataDir(root: string): DataDir {
  const dir = layoutOf(root);
  const made = [...makeDirectory(dir.logDir), ...makeDirectory(dir.snapshotDir)];
  // A directory made here exists after a power loss only once the directory holding it is synced:
  // the data directory's own entry (and those of any parents made for it) included, or a first
  // start's acknowledged grants could vanish with the whole directory.
  const toSync = new Set<string>();
  for (const each of made) toSync.add(each).add(dirname(each));
  for (const each of toSync) syncDirectory(each);
  return dir;
}

/**
 * mkdir -p, one directory at a time from the deepest one that exists. Node's recursive mkdir loops
 * forever (at full CPU, with no error) where a parent exists but a child cannot be made in it with
 * ENOENT: a working directory that was deleted, or a path under /proc. And where a missing parent
 * cannot be made (a read-only file system, EROFS), it reports ENOENT for the deepest path. Made one
 * at a time, the first directory that cannot be made fails with its own reason.
 */
function makeDirectory(path: string): string[] {
  const missing: string[] = [];
  for (let at = path; !existsSync(at) && dirname(at) !== at; at = dirname(at)) missing.push(at);
  const made: string[] = [];
  for (const each of missing.reverse()) {
    try {
      mkdirSync(each);
      made.push(each);
    } catch (error) {
      // Made meanwhile by someone else is fine; a file or a dangling symbolic link there is not, and
      // is named as the obstacle, before anything is made inside a directory that cannot be used.
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || !isDirectory(each)) throw error;
    }
  }
  if (missing.length === 0 && !isDirectory(path)) mkdirSync(path); // fails with EEXIST, naming it
  return made;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

export function segmentPath(dir: DataDir, firstIndex: number): string {
  return join(dir.logDir, `${String(firstIndex).padStart(INDEX_DIGITS, "0")}${SEGMENT_SUFFIX}`);
}

export function snapshotPath(dir: DataDir, lastIndex: number): string {
  return join(dir.snapshotDir, `${String(lastIndex).padStart(INDEX_DIGITS, "0")}${SNAPSHOT_SUFFIX}`);
}

/** Segments in log order. Files that do not follow the naming scheme are ignored. */
export function listSegments(dir: DataDir): SegmentFile[] {
  return numberedFiles(dir.logDir, SEGMENT_SUFFIX).map(({ path, index }) => ({
    path,
    firstIndex: index,
    bytes: statSync(path).size,
  }));
}

/** Snapshots, newest (highest last index) first. */
export function listSnapshots(dir: DataDir): SnapshotFile[] {
  return numberedFiles(dir.snapshotDir, SNAPSHOT_SUFFIX)
    .map(({ path, index }) => ({ path, lastIndex: index }))
    .reverse();
}

function numberedFiles(folder: string, suffix: string): { path: string; index: number }[] {
  const pattern = new RegExp(`^(\\d{${INDEX_DIGITS}})${suffix.replace(".", "\\.")}$`);
  const found: { path: string; index: number }[] = [];
  for (const name of readdirSync(folder)) {
    const match = pattern.exec(name);
    if (match) found.push({ path: join(folder, name), index: Number(match[1]) });
  }
  return found.sort((a, b) => a.index - b.index);
}
