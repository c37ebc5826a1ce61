/**
 * The durable CommitLog: records appended to segment files under DIR/log, each append written in full
 * (short writes are continued) and fdatasync'ed before `done` reports success. Segments roll over at
 * `segmentBytes`; sealed segments are handed to the compactor, which folds them into a snapshot.
 *
 * After any write or sync error the log is poisoned: after a failed fsync the page cache no longer
 * says what is on disk, so no later append may claim durability. Restarting lockd recovers from disk.
 */
import { statSync, unlinkSync } from "node:fs";
import type { AppendResult, CommitLog } from "../log/commit-log.js";
import type { FsyncMode } from "../server/config.js";
import type { Logger } from "../server/logger.js";
import { segmentPath, type DataDir } from "./data-dir.js";
import { syncDirectory, type LogFile, type LogFileOpener } from "./log-file.js";

export interface SealedSegment {
  readonly path: string;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly bytes: number;
}

export interface SegmentLogOptions {
  readonly dir: DataDir;
  readonly files: LogFileOpener;
  readonly fsync: FsyncMode;
  readonly segmentBytes: number;
  readonly logger: Logger;
  /** The segment to keep appending to (recovered, already truncated to its last good record), if any. */
  readonly active: { readonly path: string; readonly firstIndex: number; readonly bytes: number } | null;
  /** Index of the last entry already in the log (0 when empty). */
  readonly lastIndex: number;
  /** Called with each segment once it is full and will never be written again. */
  readonly onSegmentSealed: (segment: SealedSegment) => void;
}

interface PendingAppend {
  readonly records: Buffer;
  readonly lastIndex: number;
  readonly done: (result: AppendResult) => void;
  written: number;
}

export class SegmentLog implements CommitLog {
  private file: LogFile;
  private path: string;
  private firstIndex: number;
  private position: number;
  private lastIndex: number;
  private pending: PendingAppend | null = null;
  private failure: Error | null = null;
  private closed = false;

  constructor(private readonly options: SegmentLogOptions) {
    this.lastIndex = options.lastIndex;
    if (options.active !== null) {
      this.path = options.active.path;
      this.firstIndex = options.active.firstIndex;
      this.position = options.active.bytes;
      this.file = options.files.open(this.path, false);
    } else {
      this.firstIndex = this.lastIndex + 1;
      this.path = segmentPath(options.dir, this.firstIndex);
      this.position = 0;
      this.file = options.files.open(this.path, true);
      syncDirectory(options.dir.logDir);
    }
  }

  append(records: Buffer, lastIndex: number, done: (result: AppendResult) => void): void {
    if (this.pending !== null) throw new Error("one append at a time");
    if (this.failure !== null || this.closed) {
      const error = this.failure ?? new Error("log is closed");
      setImmediate(done, { ok: false, error });
      return;
    }
    this.pending = { records, lastIndex, done, written: 0 };
    this.writeRest();
  }

  async close(): Promise<void> {
    while (this.pending !== null) await new Promise((resolve) => setImmediate(resolve));
    if (!this.closed) {
      this.closed = true;
      this.file.close();
    }
  }

  private writeRest(): void {
    const pending = this.pending!;
    this.file.write(pending.records.subarray(pending.written), this.position, this.afterWrite);
  }

  private readonly afterWrite = (error: NodeJS.ErrnoException | null, written: number): void => {
    const pending = this.pending!;
    if (error !== null) return this.fail(error, "write");
    pending.written += written;
    this.position += written;
    if (pending.written < pending.records.length) {
      if (written === 0) return this.fail(new Error("write made no progress"), "write");
      return this.writeRest(); // a short write: continue where it stopped
    }
    if (this.options.fsync === "never") return this.afterSync(null);
    this.file.sync(this.afterSync);
  };

  private readonly afterSync = (error: NodeJS.ErrnoException | null): void => {
    if (error !== null) return this.fail(error, "fdatasync");
    const pending = this.pending!;
    this.pending = null;
    this.lastIndex = pending.lastIndex;
    if (this.position >= this.options.segmentBytes) {
      try {
        this.roll();
      } catch (rollError) {
        this.failure = rollError as Error;
        this.options.logger.error(`cannot start a new log segment: ${(rollError as Error).message}`);
      }
    }
    pending.done(OK);
  };

  private fail(error: Error, operation: string): void {
    const pending = this.pending!;
    this.pending = null;
    this.failure = new Error(`${operation} of ${this.path} failed: ${error.message}`);
    pending.done({ ok: false, error: this.failure });
  }

  /** Starts the next segment; the full one is sealed and handed on. */
  private roll(): void {
    const sealed: SealedSegment = { path: this.path, firstIndex: this.firstIndex, lastIndex: this.lastIndex, bytes: this.position };
    const nextPath = segmentPath(this.options.dir, this.lastIndex + 1);
    let next: LogFile;
    try {
      next = this.options.files.open(nextPath, true);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || statSync(nextPath).size !== 0) throw error;
      unlinkSync(nextPath); // an empty leftover of an interrupted roll
      next = this.options.files.open(nextPath, true);
    }
    syncDirectory(this.options.dir.logDir);
    this.file.close();
    this.file = next;
    this.path = nextPath;
    this.firstIndex = this.lastIndex + 1;
    this.position = 0;
    this.options.onSegmentSealed(sealed);
  }
}

const OK: AppendResult = { ok: true };
