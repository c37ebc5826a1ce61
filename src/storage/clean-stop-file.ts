/**
 * DIR/clean-stop: the index of the last log entry, written (synced) when lockd stops cleanly and
 * removed by the next start once it has recovered. While it is there, no write can have been left
 * unfinished, so recovery takes any damage at the log's end, and a log that ends before that index
 * (the newest segment cut short or deleted), for lost acknowledged entries instead of a torn write.
 * After a crash there is no file, and a torn final write is truncated as before.
 */
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import type { DataDir } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";
import { readFileIfThere, replaceFileDurably } from "./small-file.js";

const FILE_NAME = "clean-stop";

export function cleanStopPath(dir: DataDir): string {
  return join(dir.root, FILE_NAME);
}

export function writeCleanStop(dir: DataDir, lastIndex: number): void {
  replaceFileDurably(cleanStopPath(dir), `${lastIndex}\n`);
}

/** The index the last clean stop recorded, or null after a crash (or a first start). */
export function readCleanStop(dir: DataDir): number | null {
  const path = cleanStopPath(dir);
  const text = readFileIfThere(path);
  if (text === null) return null;
  const index = /^\d+\n$/.test(text) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(index)) {
    throw new Error(`${path} does not hold a log index. It lets a start tell a damaged log from a torn write; delete it to start without that check`);
  }
  return index;
}

/** Removes the record before anything is written: from here on a stop may again be a crash. */
export function removeCleanStop(dir: DataDir): void {
  try {
    unlinkSync(cleanStopPath(dir));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  syncDirectory(dir.root);
}
