/**
 * The storage layer assembled on one data directory: recover the state (newest snapshot plus the log
 * after it), then a segment log that continues where the log ends and a compactor that folds its
 * sealed segments into snapshots. One place for this wiring, used by lockd and by the tests that
 * restart a node on the same directory.
 */
import type { StateMachineConfig } from "../core/state-machine.js";
import type { Logger } from "../logging/logger.js";
import { CATCH_UP_FACTOR, writeCatchUpSnapshot } from "./catch-up-snapshot.js";
import { cleanStopPath, readCleanStop, removeCleanStop, writeCleanStop } from "./clean-stop-file.js";
import { Compactor, type CompactionRunner } from "./compactor.js";
import type { DataDir } from "./data-dir.js";
import { syncDirectory, type LogFileOpener } from "./log-file.js";
import { lastWriteAfterDurable, recover, type Recovered } from "./recovery.js";
import { SegmentLog, type FsyncMode } from "./segment-log.js";

export interface DurableStorageOptions {
  readonly config: StateMachineConfig;
  readonly logger: Logger;
  readonly files: LogFileOpener;
  readonly fsync: FsyncMode;
  readonly segmentBytes: number;
  readonly snapshotEveryBytes: number;
  readonly runCompaction: CompactionRunner;
  readonly inlineSyncMaxEntries?: number;
  /**
   * Told what was recovered as soon as it is, before anything else is started or written: so that
   * the start's own line about it comes before any line of a compaction or a catch-up snapshot.
   */
  readonly onRecovered?: (recovered: Recovered) => void;
}

export interface DurableStorage {
  readonly recovered: Recovered;
  readonly log: SegmentLog;
  readonly compactor: Compactor;
}

export function openDurableStorage(dir: DataDir, options: DurableStorageOptions): DurableStorage {
  const recovered = recover(dir, options.config, options.logger, { cleanStopIndex: readCleanStop(dir) });
  if (options.fsync === "always") syncRecoveredLog(dir, recovered, options.files);
  removeCleanStop(dir);
  options.onRecovered?.(recovered);
  const compactor = new Compactor(dir, options.config, options.snapshotEveryBytes, options.runCompaction, options.logger, {
    snapshotPath: recovered.snapshotPath,
    sealed: recovered.sealed,
  });
  if (compactor.isBehindBy(CATCH_UP_FACTOR)) {
    const startedMs = performance.now();
    compactor.adopt(writeCatchUpSnapshot(dir, recovered, options.logger), startedMs);
  }
  const log = new SegmentLog({
    dir,
    files: options.files,
    fsync: options.fsync,
    segmentBytes: options.segmentBytes,
    logger: options.logger,
    active: recovered.active,
    lastIndex: recovered.lastIndex,
    onSegmentSealed: compactor.onSegmentSealed,
    ...(options.inlineSyncMaxEntries === undefined ? {} : { inlineSyncMaxEntries: options.inlineSyncMaxEntries }),
  });
  // Segments left sealed by an earlier run may already be due for a snapshot.
  compactor.maybeStart();
  return { recovered, log, compactor };
}

/**
 * Recovery reads the log as the page cache holds it. After a kill -9 that can include the last
 * writes, whose fdatasync had not returned (nothing was answered for them), and they are now part of
 * the state: a retry is answered from them, an INSPECT shows them, later entries follow them. A power
 * loss could still take them, and with them what was answered since, or leave a gap before later
 * segments. So every segment the state was replayed from is synced before anything is served
 * (one already durable costs an open, an fdatasync with nothing to write, and a close), and the
 * directory that names them.
 */
function syncRecoveredLog(dir: DataDir, recovered: Recovered, files: LogFileOpener): void {
  const segments = recovered.active === null ? recovered.sealed : [...recovered.sealed, recovered.active];
  // A sync that failed before the restart leaves its pages cached and marked clean: read back, they
  // replayed as if written, but a sync now writes nothing, and once the cache drops them the log has
  // a hole before whatever this run appends. Every write after the last one issued when all before
  // it was durable may be such a write: those bytes are written again, so the sync covers them.
  // Segments from `first` on are written again, the one at `first` from `from`.
  let first = segments.length;
  let from = 0;
  for (let s = segments.length - 1; s >= 0; s--) {
    const segment = segments[s]!;
    const at = segment === recovered.active ? recovered.activeLastWriteAfterDurableAt : lastWriteAfterDurable(segment);
    first = s;
    from = at ?? 0;
    if (at !== null) break;
  }
  segments.forEach((segment, s) => {
    const start = s === first ? from : 0;
    if (s < first) syncOrExplain(segment.path, () => files.syncExisting(segment.path));
    else if (start < segment.bytes) syncOrExplain(segment.path, () => files.rewriteExisting(segment.path, start, segment.bytes));
  });
  syncOrExplain(dir.logDir, () => syncDirectory(dir.logDir));
}

/** Node's sync errors name neither the file nor why it was being synced: the start's message must. */
function syncOrExplain(path: string, sync: () => void): void {
  try {
    sync();
  } catch (error) {
    throw new Error(
      `cannot make the recovered log durable before serving: syncing ${path} failed (${(error as Error).message}). ` +
        "Nothing acknowledged was lost, and nothing was served; check the disk, then restart",
    );
  }
}

/** Whether a stop was recorded as clean (clean-stop-file.ts), and if not, why not. */
export type CleanStopRecord =
  | { readonly kind: "recorded"; readonly lastIndex: number }
  | { readonly kind: "not-recorded"; readonly why: "refusing" | "fsync-never" }
  | { readonly kind: "write-failed"; readonly path: string; readonly error: Error };

/** The warning for a clean stop whose record could not be written, or null. */
export function describeUnrecordedCleanStop(record: CleanStopRecord): string | null {
  if (record.kind !== "write-failed") return null;
  return `could not record the clean stop in ${record.path} (${record.error.message}): the next start recovers as after a crash, which loses nothing acknowledged`;
}

/**
 * Stops compaction and closes the log, then records a clean stop (clean-stop-file.ts): the next
 * start then refuses a log that ends before this point. Not recorded when lockd was `refusing`
 * requests (a failed write, the directory gone: what is on disk is unknown, or the record would go
 * into a directory no start will find), nor under `--fsync never`, where the log's tail may still be
 * only in the page cache while the record is on disk: a power loss would then make the next start
 * refuse a log that lost nothing acknowledged as durable. A record that cannot be written (a full
 * disk) leaves the stop as a crash would: the next start recovers without the check, losing nothing.
 */
export async function closeDurableStorage(dir: DataDir, storage: DurableStorage, fsync: FsyncMode, refusing: boolean): Promise<CleanStopRecord> {
  storage.compactor.stop();
  await storage.log.close();
  await storage.compactor.idle();
  if (refusing || storage.log.hasFailed) return { kind: "not-recorded", why: "refusing" };
  if (fsync !== "always") return { kind: "not-recorded", why: "fsync-never" };
  const lastIndex = storage.log.durableIndex;
  try {
    writeCleanStop(dir, lastIndex);
  } catch (error) {
    return { kind: "write-failed", path: cleanStopPath(dir), error: error as Error };
  }
  return { kind: "recorded", lastIndex };
}
