/**
 * A snapshot written by the start itself when compaction has fallen far behind. Compactions run in a
 * child process while lockd serves, and one of a large state takes seconds; a lockd restarted more
 * often than that (a crash loop) never finishes one, and every restart replays more log than the
 * last. Once the sealed log is CATCH_UP_FACTOR times what starts a compaction, the start writes the
 * snapshot from the state it has just recovered, before serving, and hands it to the compactor,
 * which removes what it covers as after any compaction: one slower start instead of ever slower ones.
 */
import { snapshotBytesFor, writeSnapshot } from "../core/snapshot-codec.js";
import type { Logger } from "../logging/logger.js";
import type { CompactionResult } from "./compaction.js";
import type { DataDir } from "./data-dir.js";
import type { Recovered } from "./recovery.js";
import { writeSnapshotFile } from "./snapshot-file.js";

/** How far past the compaction threshold the sealed log must be before the start writes the snapshot. */
export const CATCH_UP_FACTOR = 2;

/**
 * Writes the recovered state as a snapshot at its last index. It covers every sealed segment and
 * part of the newest one, where the log goes on (recovery skips its entries up to the snapshot).
 */
export function writeCatchUpSnapshot(dir: DataDir, recovered: Recovered, logger: Logger): CompactionResult {
  const position = { lastIndex: recovered.lastIndex, lastTerm: recovered.lastTerm };
  const sm = recovered.stateMachine;
  let bytes = 0;
  let snapshotPath: string | null;
  // Said first: a snapshot of a large state takes seconds, and the start is silent meanwhile.
  logger.info(`writing a snapshot at index ${position.lastIndex} before serving (${sm.dedupeEntryCount} remembered answers, ${sm.lockRecordCount} lock records)`);
  try {
    snapshotPath = writeSnapshotFile(dir, position.lastIndex, (sink) => (bytes = writeSnapshot(sm, position, sink)));
  } catch (error) {
    // The start stops here; without this, a full disk reported only "ENOSPC: ..., write".
    throw new Error(
      `compaction had fallen behind, and the snapshot the start writes to catch up (index ${position.lastIndex}, in ${dir.root}) ` +
        `failed: ${(error as Error).message}. It takes ${snapshotBytesFor(sm.lockRecordCount, sm.dedupeEntryCount)} bytes. ` +
        "Nothing was lost: lockd starts once the snapshot can be written.",
    );
  }
  if (snapshotPath === null) throw new Error("snapshot at start abandoned"); // only a stillWanted could, and none is given
  logger.warn(
    `compaction had fallen behind (${recovered.sealed.length} sealed log segments since the last snapshot): ` +
      `wrote a snapshot at index ${position.lastIndex} before serving`,
  );
  return { snapshotPath, lastIndex: position.lastIndex, locks: sm.lockRecordCount, dedupeEntries: sm.dedupeEntryCount, bytes };
}
