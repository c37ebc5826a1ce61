/**
 * Writing a snapshot atomically: temp file, fsync, rename, fsync the directory. A crash at any point
 * leaves either the old snapshot set or the new one, never a half-written file under a final name.
 */
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { snapshotPath, type DataDir } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";

const TEMP_SUFFIX = ".tmp";

export function writeSnapshotFile(dir: DataDir, lastIndex: number, bytes: Buffer): string {
  const finalPath = snapshotPath(dir, lastIndex);
  const tempPath = finalPath + TEMP_SUFFIX;
  const fd = openSync(tempPath, "w");
  try {
    let written = 0;
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tempPath, finalPath);
  syncDirectory(dir.snapshotDir);
  return finalPath;
}

/** Removes temp files of snapshots that were being written when a process died. */
export function removeUnfinishedSnapshots(dir: DataDir): void {
  for (const name of readdirSync(dir.snapshotDir)) {
    if (name.endsWith(TEMP_SUFFIX)) unlinkSync(join(dir.snapshotDir, name));
  }
}
