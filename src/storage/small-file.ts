/**
 * The data directory's small record files (clock-step, clean-stop): replaced whole and atomically,
 * synced, and read back in full.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { removeIfThere } from "./file-removal.js";
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


/** The whole file as text, or null when there is none; any other failure names the file. */
export function readFileIfThere(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
}
