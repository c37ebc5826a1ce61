/**
 * The durable CommitLog: records appended to segment files under DIR/log, each append written in full
 * (short writes are continued) and fdatasync'ed before `done` reports success. Segments roll over at
 * `segmentBytes`; sealed segments are handed to the compactor, which folds them into a snapshot.
 *
 * Segments are preallocated with zeros (the next one is prepared in the background while the current
 * one fills), because fdatasync of a write inside already-allocated space does not have to commit
 * file-size metadata: it is measurably cheaper than a sync of an append that grows the file.
 *
 * After any write or sync error the log is poisoned: after a failed fsync the page cache no longer
 * says what is on disk, so no later append may claim durability. Restarting lockd recovers from disk.
 * An append whose records do not continue the log at the next index is refused the same way.
 */
import { close as closeAsync, fdatasync, open as openAsync, renameSync, statfs, statSync, unlinkSync, write as writeAsync } from "node:fs";
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { MAX_APPENDS_IN_FLIGHT, type AppendResult, type CommitLog } from "../log/commit-log.js";
import { RECORD_HEADER_BYTES, recordFirstIndex } from "../log/record.js";
import type { Logger } from "../logging/logger.js";
import { segmentPath, type DataDir } from "./data-dir.js";
import { removeIfThere } from "./file-removal.js";
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
  /** The segment to keep appending to (recovered, positioned after its last good record), if any. */
  readonly active: { readonly path: string; readonly firstIndex: number; readonly bytes: number } | null;
  /** Index of the last entry already in the log (0 when empty). */
  readonly lastIndex: number;
  /** Called with each segment once it is full and will never be written again. */
  readonly onSegmentSealed: (segment: SealedSegment) => void;
  /** Batches of at most this many entries fdatasync inline, in quiet stretches (default INLINE_SYNC_MAX_ENTRIES). */
  readonly inlineSyncMaxEntries?: number;
  /** Bytes free to lockd on the file system holding `dir` (null: unknown); `statfs` by default. */
  readonly freeBytes?: FreeBytes;
}

/** Reports the bytes an unprivileged writer may still take on the file system holding `path`. */
/** Whether each batch is made durable (fdatasync) before its commands are answered. */
export type FsyncMode = "always" | "never";

export type FreeBytes = (path: string, done: (bytes: number | null) => void) => void;

const statfsFreeBytes: FreeBytes = (path, done) =>
  statfs(path, (error, stats) => done(error === null ? stats.bavail * stats.bsize : null));

/** The zero-filled file that becomes the next segment; its name matches no segment pattern. */
const SPARE_NAME = "next-segment.prealloc";
const ZERO_CHUNK = Buffer.alloc(1 << 20);
/**
 * Batches up to this many entries are synced inline by default, while the recent batches average no
 * more than that either; every other batch on the thread pool. By default every batch that is alone
 * in flight: on the 2-core VM lockd is measured on, handing a sync to the thread pool and being woken
 * back from it cost more than the overlap it buys (c=50 durable, seven alternating 5 s runs against a
 * limit of 4 entries, medians: 44k ops/s against 30k at 1 request in flight per connection, 429k
 * against 371k at 16). On a kernel where cross-thread wake-ups were cheaper, the limit of 4 was 5-10%
 * faster at 16 in flight: `--inline-sync-max` sets it.
 */
export const INLINE_SYNC_MAX_ENTRIES = Infinity;
/** How many batches the average batch size that also gates inline syncs looks back over. */
const RECENT_BATCHES = 8;

/** An append not yet acknowledged: through which index, and whom to tell. */
interface Pending {
  readonly lastIndex: number;
  readonly done: (result: AppendResult) => void;
}

/** Held back until the full segment's syncs drain. */
interface Waiting extends Pending {
  readonly records: Buffer;
}

/** Written, its sync under way. */
interface InFlight extends Pending {
  /** Its own fdatasync returned success (it completes once every earlier append's has too). */
  synced: boolean;
}

export class SegmentLog implements CommitLog {
  private file: LogFile;
  private path: string;
  private firstIndex: number;
  private position: number;
  /** Index of the last entry made durable (and reported done). */
  private lastIndex: number;
  /** Appends written and being synced, oldest first; they complete in this order. */
  private inFlight: InFlight[] = [];
  /** Appends that arrived while the full segment drains its syncs before rolling over. */
  private waiting: Waiting[] = [];
  private failure: Error | null = null;
  private closed = false;
  /** close() or abandon() was called: no spare is started from then on. */
  private closing = false;
  private readonly sparePath: string;
  private spareReady = false;
  private spareInProgress: Promise<void> | null = null;
  /** The last check found too little space for a spare beside a growing segment (warned once). */
  private lowOnSpace = false;
  private readonly inlineSyncMaxEntries: number;
  /** Entries per batch, averaged over about the last RECENT_BATCHES batches. */
  private recentBatchEntries = 0;

  constructor(private readonly options: SegmentLogOptions) {
    this.inlineSyncMaxEntries = options.inlineSyncMaxEntries ?? INLINE_SYNC_MAX_ENTRIES;
    this.lastIndex = options.lastIndex;
    this.sparePath = join(options.dir.logDir, SPARE_NAME);
    if (options.active !== null) {
      this.path = options.active.path;
      this.firstIndex = options.active.firstIndex;
      this.position = options.active.bytes;
      this.file = options.files.open(this.path, false);
    } else {
      this.firstIndex = this.lastIndex + 1;
      this.path = segmentPath(options.dir, this.firstIndex);
      this.position = 0;
      preallocateSync(this.sparePath, options.segmentBytes);
      renameSync(this.sparePath, this.path);
      syncDirectory(options.dir.logDir);
      this.file = options.files.open(this.path, false);
    }
    this.prepareSpare();
  }

  /**
   * Several appends may be in flight (at most MAX_APPENDS_IN_FLIGHT): each is written at once and
   * gets its own fdatasync on the thread pool, and the device works on them concurrently (about 2x the
   * syncs per second here at a depth of 4). They complete in order, each on its own sync (see
   * `synced`).
   */
  append(records: Buffer, lastIndex: number, done: (result: AppendResult) => void): void {
    if (this.failure !== null || this.closed) {
      setImmediate(done, { ok: false, error: this.failure ?? new Error("log is closed") });
      return;
    }
    if (this.waiting.length > 0 || (this.position >= this.options.segmentBytes && this.inFlight.length > 0)) {
      // The segment is full: its syncs must drain before the next one starts (a sync covers one file).
      this.waiting.push({ records, lastIndex, done });
      return;
    }
    if (this.position >= this.options.segmentBytes && !this.rollOver()) {
      setImmediate(done, { ok: false, error: this.failure! });
      return;
    }
    const lastWritten = this.lastIndexWritten();
    const entries = lastIndex - lastWritten;
    const append: InFlight = { lastIndex, done, synced: false };
    this.inFlight.push(append);
    const firstIndex = records.length >= RECORD_HEADER_BYTES ? recordFirstIndex(records, 0) : NaN;
    if (this.inFlight.length > MAX_APPENDS_IN_FLIGHT) {
      // Recovery tells a write that never finished from damage by this bound: writing past it would
      // let a later start drop acknowledged records as a torn write.
      this.failSoon(new Error(`more than ${MAX_APPENDS_IN_FLIGHT} appends in flight`), "append");
      return;
    }
    if (firstIndex !== lastWritten + 1 || entries < 1) {
      // The log only ever grows by the next index. Bytes that do not continue it come from a bug
      // upstream, and written they would stop the next start (recovery refuses a gap or a repeated
      // index rather than skip acknowledged state): refuse them now and stop, as after a failed
      // write, with the log on disk intact up to the last acknowledged batch.
      const found = `records for indexes ${firstIndex} to ${lastIndex}`;
      this.failSoon(new Error(`${found} do not continue the log at index ${lastWritten + 1}`), "append");
      return;
    }
    try {
      let written = 0;
      while (written < records.length) {
        const n = this.file.write(written === 0 ? records : records.subarray(written), this.position);
        if (n <= 0) throw new Error("write made no progress");
        written += n; // a short write: continue where it stopped
        this.position += n;
      }
    } catch (error) {
      this.failSoon(error as Error, "write");
      return;
    }
    if (this.options.fsync === "never") return this.synced(null, append);
    this.recentBatchEntries += (entries - this.recentBatchEntries) / RECENT_BATCHES;
    if (this.inFlight.length === 1 && entries <= this.inlineSyncMaxEntries && this.recentBatchEntries <= this.inlineSyncMaxEntries) {
      // Nothing else in flight: the thread-pool round trip (queue, wake a worker, wake the loop)
      // may cost the waiting clients more than the loop loses by blocking for one fdatasync, while
      // every request that arrives meanwhile waits in the kernel to join the next batch. With a
      // finite limit, a lone small batch in a busy stretch still goes to the pool: where wake-ups
      // are cheap, overlapping the sync with the next batch's work is worth more there.
      let syncError: NodeJS.ErrnoException | null = null;
      try {
        this.file.syncNow();
      } catch (error) {
        syncError = error as NodeJS.ErrnoException;
      }
      return this.synced(syncError, append);
    }
    this.file.sync((error) => this.synced(error, append));
  }

  async close(): Promise<void> {
    this.closing = true;
    while (this.inFlight.length > 0 || this.waiting.length > 0) await new Promise((resolve) => setImmediate(resolve));
    if (this.spareInProgress !== null) await this.spareInProgress;
    if (!this.closed) {
      this.closed = true;
      this.file.close();
    }
  }

  /**
   * Stops at once, as a crash would: appends in flight never complete, nothing more is written.
   * Waits only for the background preallocation so no write of this log outlives the call.
   */
  async abandon(): Promise<void> {
    this.closing = true;
    this.closed = true;
    this.inFlight = [];
    this.waiting = [];
    if (this.spareInProgress !== null) await this.spareInProgress;
    this.file.close();
  }

  /** Index of the last entry made durable; after `close`, the log's last entry unless it failed. */
  get durableIndex(): number {
    return this.lastIndex;
  }

  /** Whether a write or sync failed: what is on disk past `durableIndex` is then unknown. */
  get hasFailed(): boolean {
    return this.failure !== null;
  }

  private lastIndexWritten(): number {
    return this.inFlight.length > 0 ? this.inFlight[this.inFlight.length - 1]!.lastIndex : this.lastIndex;
  }

  /**
   * An append completes only on its own sync's success, and only after every earlier one has: never
   * through a later sync. With syncs overlapping on one descriptor, Linux reports a writeback error to
   * one fdatasync only, and possibly not the one whose pages failed; a later sync returning first
   * with success says nothing about them. Any error fails everything not yet acknowledged.
   */
  private synced(error: NodeJS.ErrnoException | null, append: InFlight): void {
    if (!this.inFlight.includes(append)) return; // failed already, or abandoned
    if (error !== null) return this.fail(error, "fdatasync");
    append.synced = true;
    let upTo = 0;
    while (upTo < this.inFlight.length && this.inFlight[upTo]!.synced) upTo++;
    if (upTo === 0) return;
    const completed = this.inFlight.splice(0, upTo);
    this.lastIndex = completed[completed.length - 1]!.lastIndex;
    for (const each of completed) each.done(OK);
    if (this.inFlight.length === 0 && this.waiting.length > 0) this.resumeWaiting();
  }

  /** The full segment has drained: roll over, then write what waited, in order. */
  private resumeWaiting(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const each of waiting) this.append(each.records, each.lastIndex, each.done);
  }

  private rollOver(): boolean {
    try {
      this.roll();
      return true;
    } catch (rollError) {
      this.failure = new Error(`cannot start a new log segment: ${(rollError as Error).message}`);
      this.options.logger.error(this.failure.message);
      return false;
    }
  }

  /**
   * A failure found inside `append`: the log refuses every later append from this moment, and what is
   * in flight fails on the next turn (not inside the caller's own call). Were the refusal left to the
   * next turn as well, a batch settling in between would flush the next append, and its records,
   * written after the failed ones, would leave a gap that stops the next start.
   */
  private failSoon(error: Error, operation: string): void {
    this.markFailed(error, operation);
    setImmediate(this.fail, error, operation);
  }

  /** The first failure is the one every later append is refused with; returns it. */
  private markFailed(error: Error, operation: string): Error {
    this.failure ??= new Error(`${operation} of ${this.path} failed: ${error.message}`);
    return this.failure;
  }

  private readonly fail = (error: Error, operation: string): void => {
    const failure = this.markFailed(error, operation);
    const failed = [...this.inFlight, ...this.waiting];
    this.inFlight = [];
    this.waiting = [];
    for (const each of failed) each.done({ ok: false, error: failure });
  };

  /** Starts the next segment from the prepared spare (or a plain new file if it is not ready yet). */
  private roll(): void {
    const sealed: SealedSegment = { path: this.path, firstIndex: this.firstIndex, lastIndex: this.lastIndex, bytes: this.position };
    const nextPath = segmentPath(this.options.dir, this.lastIndex + 1);
    if (sizeIfThere(nextPath) === 0) unlinkSync(nextPath); // an empty leftover of an interrupted roll
    let next: LogFile;
    if (this.spareReady) {
      this.spareReady = false;
      renameSync(this.sparePath, nextPath);
      next = this.options.files.open(nextPath, false);
    } else {
      next = this.options.files.open(nextPath, true);
    }
    syncDirectory(this.options.dir.logDir);
    this.file.close();
    this.file = next;
    this.path = nextPath;
    this.firstIndex = this.lastIndex + 1;
    this.position = 0;
    this.options.onSegmentSealed(sealed);
    this.prepareSpare();
  }

  /** Prepares the spare segment in the background, if the file system has room for it (roomForSpare). */
  private prepareSpare(): void {
    if (this.spareReady || this.spareInProgress !== null) return;
    const size = this.options.segmentBytes;
    let done!: () => void;
    this.spareInProgress = new Promise<void>((resolve) => (done = resolve));
    (this.options.freeBytes ?? statfsFreeBytes)(this.options.dir.logDir, (free) => {
      if (this.closing) {
        this.spareInProgress = null;
        return done();
      }
      if (this.roomForSpare(free)) return this.fillSpare(size, done);
      // A spare left by an earlier run is not wanted either: it would hold a segment's worth of space.
      removeIfThere(this.sparePath);
      this.spareInProgress = null;
      done();
    });
  }

  /**
   * Whether the file system has room for a spare and a whole segment more. The segment being written
   * may be one that grows as written (its own preallocation failed, or was skipped), and a spare
   * zero-filled beside it would race it for the last free blocks: the fill can win, the log's write
   * then fails, and lockd answers 6 until restarted, with space still free once the part-written spare
   * is removed. Below that, segments grow as written until a later roll finds room again (compaction
   * deletes the segments a snapshot covers).
   */
  private roomForSpare(free: number | null): boolean {
    if (free === null) return true;
    const needed = 2 * this.options.segmentBytes;
    // A spare left by an earlier run is refilled in place: its space counts as free.
    const leftover = sizeIfThere(this.sparePath) ?? 0;
    if (free + leftover >= needed) {
      this.lowOnSpace = false;
      return true;
    }
    if (!this.lowOnSpace) {
      this.lowOnSpace = true;
      // In MiB, unless the two would read the same ("only 2.0 MiB free, less than 2.0 MiB"): then in bytes.
      const inMiB = formatMiB(free) !== formatMiB(needed);
      const size = (bytes: number) => (inMiB ? formatMiB(bytes) : `${bytes} bytes`);
      this.options.logger.warn(
        `only ${size(free)} free in ${this.options.dir.logDir}, less than two log segments (${size(needed)}, ` +
          `2 x --segment-bytes): the next segment is not preallocated, so the current one keeps the space; ` +
          `segments grow as written until more is free. Free space soon: when it runs out lockd answers 6`,
      );
    }
    return false;
  }

  /**
   * Zero-fills the spare segment on the thread pool, syncing each MiB so its blocks are allocated.
   * One sync of the whole segment at the end put 32 MiB in the device's queue at once, and the log's
   * own syncs waited behind it: at c=50 P=16 that was the p99.9 (15-21 ms against 7-9 ms with a sync
   * per MiB, four 10 s runs each, throughput unchanged), and it stalled the log's writes on the event
   * loop for 12-19 ms shortly after most segment rolls.
   */
  private fillSpare(size: number, resolve: () => void): void {
    const finish = (error: Error | null, fd: number | null) => {
      const done = () => {
        this.spareInProgress = null;
        if (error === null) this.spareReady = true;
        else {
          // The part written would only hold on to space that may have run out.
          removeIfThere(this.sparePath);
          this.options.logger.warn(`could not preallocate the next log segment (${error.message}); it will grow as written`);
        }
        resolve();
      };
      if (fd === null) done();
      else closeAsync(fd, done);
    };
    openAsync(this.sparePath, "w", (openError, fd) => {
      if (openError !== null) return finish(openError, null);
      const fill = (offset: number): void => {
        if (offset >= size) return finish(null, fd);
        const length = Math.min(ZERO_CHUNK.length, size - offset);
        writeAsync(fd, ZERO_CHUNK, 0, length, offset, (writeError) => {
          if (writeError !== null) return finish(writeError, fd);
          fdatasync(fd, (syncError) => (syncError !== null ? finish(syncError, fd) : fill(offset + length)));
        });
      };
      fill(0);
    });
  }
}

function formatMiB(bytes: number): string {
  return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
}

/** Writes `size` zeros to `path`; on failure removes what it wrote and says which file and size. */
function preallocateSync(path: string, size: number): void {
  try {
    const fd = openSync(path, "w");
    try {
      for (let offset = 0; offset < size; offset += ZERO_CHUNK.length) {
        writeSync(fd, ZERO_CHUNK, 0, Math.min(ZERO_CHUNK.length, size - offset), offset);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    removeIfThere(path); // a part-written spare would only hold on to the space that ran out
    throw new Error(`cannot preallocate a log segment of ${size} bytes (--segment-bytes) at ${path}: ${(error as Error).message}`);
  }
}

/**
 * The file's size, or null when it cannot be looked at (most likely it is not there). Both callers
 * are safe either way: an unexpected file is then left alone, and its space not counted as free.
 */
function sizeIfThere(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

const OK: AppendResult = { ok: true };
