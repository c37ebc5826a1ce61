/**
 * Deleting large files while the log is syncing. Where the file system trims freed blocks on the
 * device (ext4 mounted with `discard`, as on the machine in BENCHMARKS.md), a deletion's trim runs
 * when the journal commits, and the log's fdatasyncs queue behind it. There, unlinking a 32 MiB
 * segment held every log sync for ~10 ms (a pwrite + fdatasync loop beside the deletion of eight
 * segments: ~10 ms syncs for the whole 80 ms it took; once, under load, a 209 ms sync). Shrinking
 * the file a few MiB at a time, each step committed before the next, trims in pieces the device
 * finishes between the log's syncs: the same eight segments in 4 MiB steps took 118 ms with no sync
 * above 4.1 ms, as without any deletion. Without `discard` the steps cost a few syncs and no more.
 */
import { unlinkSync } from "node:fs";
import { open, unlink } from "node:fs/promises";

/** How much each truncation step frees (see above: 4 MiB steps left the log's syncs untouched). */
export const REMOVAL_STEP_BYTES = 4 << 20;

/**
 * The lengths a file of `size` bytes is truncated to on its way to empty: each a multiple of `step`,
 * from the largest one below `size` down to 0. Empty for an empty file.
 */
export function truncationSteps(size: number, step: number): number[] {
  const lengths: number[] = [];
  if (size <= 0) return lengths;
  for (let length = Math.floor((size - 1) / step) * step; length >= 0; length -= step) lengths.push(length);
  return lengths;
}

/**
 * Removes `path` by truncating it in steps of `stepBytes`, each made durable before the next, then
 * unlinking the empty file. Runs on the thread pool. A crash part way leaves a shorter file under
 * the same name; callers use this only for files a durable snapshot already covers, which recovery
 * deletes or ignores whatever their content.
 */
export async function removeInSteps(path: string, stepBytes: number = REMOVAL_STEP_BYTES): Promise<void> {
  const handle = await open(path, "r+");
  try {
    const { size } = await handle.stat();
    for (const length of truncationSteps(size, stepBytes)) {
      await handle.truncate(length);
      await handle.datasync(); // the size changed, so this commits the freed blocks
    }
  } finally {
    await handle.close();
  }
  await unlink(path);
}

/** Removes `path` at once if it is there (a small file, or one never synced); a failure to is not the error worth reporting. */
export function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // never made, or already gone
  }
}
