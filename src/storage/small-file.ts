/**
 * The data directory's small record files (clock-step, clean-stop): replaced whole and atomically,
 * synced, and read back in full.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { syncDirectory } from "./log-file.js";

/**
 * Replaces `path` with `text`: written to a temporary file, synced, renamed over it, the directory
 * synced. A write that fails (a full disk) removes the temporary file and leaves `path` as it was.
 */
export function replaceFileDurably(path: string, text: string): void {
  const tempPath = `${path}.tmp`;
  try {
    const fd = openSync(tempPath, "w");
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tempPath, path);
  } catch (error) {
    removeIfThere(tempPath);
    throw error;
  }
  syncDirectory(dirname(path));
}

/** Removes `path` if it is there; a failure to remove it is not the error worth reporting. */
export function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // never made, or already gone
  }
}

/** The whole file as text, or null when there is none; any other failure names the file. */
export function readFileIfThere(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}
