/**
 * A snapshot written by the start itself when compaction has fallen far behind. Compactions run in a
 * child process while lockd serves, and one of a large state takes seconds; a lockd restarted more
 * often than that (a crash loop) never finishes one, and every restart replays more log than the
 * last. Once the sealed log is twice what starts a compaction, the start writes the snapshot from
 * the state it has just recovered, before serving, and deletes what the snapshot covers: one slower
 * start instead of ever slower ones.
 */
import { statSync, unlinkSync } from "node:fs";
import { writeSnapshot } from "../core/snapshot-codec.js";
import type { Logger } from "../server/logger.js";
import { listSnapshots, type DataDir } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";
import type { Recovered } from "./recovery.js";
import { writeSnapshotFile } from "./snapshot-file.js";

/** How far past the compaction threshold the sealed log must be before the start writes the snapshot. */
export const CATCH_UP_FACTOR = 2;

/** Would a compaction have been due `CATCH_UP_FACTOR` times over? (See Compactor.maybeStart.) */
export function catchUpDue(recovered: Recovered, snapshotEveryBytes: number): boolean {
  if (recovered.sealed.length === 0) return false;
  const sealedBytes = recovered.sealed.reduce((sum, segment) => sum + segment.bytes, 0);
  const snapshotBytes = recovered.snapshotPath === null ? 0 : statSync(recovered.snapshotPath).size;
  return sealedBytes >= CATCH_UP_FACTOR * Math.max(snapshotEveryBytes, snapshotBytes);
}

/**
 * Writes the recovered state as a snapshot at its last index, then deletes the sealed segments and
 * older snapshots it covers (the newest segment stays: the log goes on in it, and recovery skips its
 * entries up to the snapshot). Returns the snapshot's path.
 */
export function writeCatchUpSnapshot(dir: DataDir, recovered: Recovered, logger: Logger): string {
  const startedMs = performance.now();
  const position = { lastIndex: recovered.lastIndex, lastTerm: recovered.lastTerm };
  const path = writeSnapshotFile(dir, position.lastIndex, (sink) => void writeSnapshot(recovered.stateMachine, position, sink));
  if (path === null) throw new Error("snapshot at start abandoned"); // only a stillWanted could, and none is given
  // Segments first, and the directory synced, before older snapshots go: a crash in between leaves
  // the new snapshot covering everything still on disk (as Compactor.removeCovered does).
  for (const segment of recovered.sealed) unlinkSync(segment.path);
  syncDirectory(dir.logDir);
  for (const old of listSnapshots(dir)) if (old.lastIndex < position.lastIndex) unlinkSync(old.path);
  syncDirectory(dir.snapshotDir);
  logger.warn(
    `compaction had fallen behind (${recovered.sealed.length} sealed log segments since the last snapshot): ` +
      `wrote a snapshot at index ${position.lastIndex} before serving, in ${Math.round(performance.now() - startedMs)} ms`,
  );
  return path;
}
