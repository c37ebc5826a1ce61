/**
 * The data directory's small record files (clock-step, clean-stop, clock-anchor): replaced whole and
 * atomically, synced where a restart on another boot depends on them, and read back in full.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { removeIfThere } from "./file-removal.js";
import { syncDirectory } from "./log-file.js";

/**
 * Replaces `path` with `text`: written to a temporary file and renamed over it, so a reader sees the
 * old text or the new, never part of one. With `durable`, the file is synced before the rename and
 * the directory after it. A write that fails (a full disk) removes the temporary file and leaves
 * `path` as it was.
 */
export function replaceFile(path: string, text: string, { durable }: { readonly durable: boolean }): void {
  const tempPath = `${path}.tmp`;
  try {
    const fd = openSync(tempPath, "w");
    try {
      writeSync(fd, text);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tempPath, path);
  } catch (error) {
    removeIfThere(tempPath);
    throw error;
  }
  if (durable) syncDirectory(dirname(path));
}

/** replaceFile, synced: the new text survives a power loss once this returns. */
export function replaceFileDurably(path: string, text: string): void {
  replaceFile(path, text, { durable: true });
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
