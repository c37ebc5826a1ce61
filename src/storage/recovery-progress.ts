/**
 * What a long recovery says while it runs. A restart after sustained load can take tens of seconds
 * (tens of millions of remembered answers to load, and the log after them to replay), and a process
 * that says nothing for that long looks hung. So past a size, recovery says what it is about to read,
 * when the snapshot is loaded, and how far the replay has got every few seconds. A small recovery
 * says nothing until the one line lockd logs when it is done.
 */
import { ENTRY_BYTES } from "../log/record.js";
import type { Logger } from "../logging/logger.js";

/** A snapshot plus log entries of this many bytes take about a second or more to recover here. */
export const ANNOUNCED_RECOVERY_BYTES = 256 << 20;
/** How often a long replay reports how far it has got. */
export const REPLAY_PROGRESS_EVERY_MS = 2000;

export class RecoveryProgress {
  private lastReportMs: number;

  private constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly startedMs: number,
  ) {
    this.lastReportMs = startedMs;
  }

  /**
   * Announces the recovery of `root` if it is large (a `snapshotBytes` snapshot, then up to
   * `entriesToReplay` log entries), and returns the reporter to tell of its steps; null when small.
   */
  static start(
    logger: Logger,
    root: string,
    snapshotBytes: number,
    entriesToReplay: number,
    { announcedBytes = ANNOUNCED_RECOVERY_BYTES, now = () => performance.now() }: { readonly announcedBytes?: number; readonly now?: () => number } = {},
  ): RecoveryProgress | null {
    if (snapshotBytes + entriesToReplay * ENTRY_BYTES < announcedBytes) return null;
    const snapshot = snapshotBytes > 0 ? `a snapshot of ${mebibytes(snapshotBytes)} MiB, then ` : "";
    logger.info(`recovering ${root}: ${snapshot}up to ${entriesToReplay} log entries to replay`);
    return new RecoveryProgress(logger, now, now());
  }

  snapshotLoaded(lastIndex: number, entriesToReplay: number): void {
    this.lastReportMs = this.now();
    this.logger.info(`recovery: snapshot at index ${lastIndex} loaded in ${this.elapsedSeconds()} s; replaying ${entriesToReplay} log entries`);
  }

  /** Called as the replay goes: reports at most every REPLAY_PROGRESS_EVERY_MS. */
  replayed(entries: number, entriesToReplay: number): void {
    const nowMs = this.now();
    if (nowMs - this.lastReportMs < REPLAY_PROGRESS_EVERY_MS) return;
    this.lastReportMs = nowMs;
    const percent = entriesToReplay > 0 ? Math.floor((100 * entries) / entriesToReplay) : 100;
    this.logger.info(`recovery: ${entries} of ${entriesToReplay} log entries replayed (${percent}%) after ${this.elapsedSeconds()} s`);
  }

  private elapsedSeconds(): string {
    return ((this.now() - this.startedMs) / 1000).toFixed(1);
  }
}

function mebibytes(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(0);
}
