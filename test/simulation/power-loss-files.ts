/**
 * Simulated storage with power-loss semantics over real files: writes reach the file at once (like
 * the page cache), but only a completed sync makes them durable. The simulator decides when queued
 * syncs complete; `powerLoss()` then reverts every write that no completed sync covered, keeping of
 * each nothing, a random prefix or random sectors: what a machine losing power may leave behind.
 * Segments are preallocated with zeros and written once, so "reverting" a write means zeroing it.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { nodeLogFiles, type LogFile, type LogFileOpener } from "../../src/storage/log-file.js";
import type { SeededRandom } from "../support/seeded-random.js";

interface WriteRange {
  readonly path: string;
  readonly position: number;
  readonly length: number;
}

export class PowerLossFiles implements LogFileOpener {
  /** Writes not yet covered by a completed sync, oldest first. */
  private unsynced: WriteRange[] = [];
  private queuedSyncs: { covers: Set<WriteRange>; done: (error: NodeJS.ErrnoException | null) => void }[] = [];
  /** Handles of an earlier boot stop working after a power loss. */
  private generation = 0;
  /** Set by the test: power fails during the next blocking sync. */
  failPowerInNextSyncNow = false;
  /** A blocking sync was cut short by a power failure: the test must call powerLoss() now. */
  powerFailedInSync = false;

  /**
   * Writes whose writeback failed: Linux keeps their pages cached and marks them clean, so the file
   * reads them, no later sync writes them, and a power loss (or the cache dropping them) loses them.
   * Only writing them again makes them durable.
   */
  private failedWriteback: WriteRange[] = [];

  syncExisting(path: string): void {
    // Of a file no live handle writes: durable at once.
    this.unsynced = this.unsynced.filter((range) => range.path !== path);
  }

  rewriteExisting(path: string, from: number, to: number): void {
    nodeLogFiles.rewriteExisting(path, from, to);
    // Writes start at records, and `from` is the start of one: a range is either all before it or all in.
    const rewritten = (range: WriteRange) => range.path === path && range.position >= from && range.position < to;
    this.failedWriteback = this.failedWriteback.filter((range) => !rewritten(range));
    this.unsynced = this.unsynced.filter((range) => range.path !== path);
  }

  /** The device fails every queued sync (EIO): their writes' writeback failed (see failedWriteback). */
  failSyncs(): void {
    const queued = this.queuedSyncs;
    this.queuedSyncs = [];
    for (const sync of queued) {
      this.failedWriteback.push(...sync.covers);
      this.unsynced = this.unsynced.filter((range) => !sync.covers.has(range));
    }
    for (const sync of queued) sync.done(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
  }

  open(path: string, create: boolean): LogFile {
    const real = nodeLogFiles.open(path, create);
    const generation = this.generation;
    const alive = () => {
      if (generation !== this.generation) throw new Error("write after power loss");
    };
    return {
      write: (bytes, position) => {
        alive();
        const written = real.write(bytes, position);
        this.unsynced.push({ path, position, length: written });
        return written;
      },
      sync: (done) => {
        alive();
        this.queuedSyncs.push({ covers: new Set(this.unsynced.filter((range) => range.path === path)), done });
      },
      syncNow: () => {
        // A blocking sync completes before the caller goes on: durable at once. Unless power fails
        // while it runs: the process would see nothing more, and the test loses power next (the
        // error only stops this process's log; its answers are never collected).
        alive();
        if (this.failPowerInNextSyncNow) {
          this.failPowerInNextSyncNow = false;
          this.powerFailedInSync = true;
          throw Object.assign(new Error("power failed during fdatasync"), { code: "EIO" });
        }
        this.unsynced = this.unsynced.filter((range) => range.path !== path);
      },
      close: () => real.close(),
    };
  }

  get syncsQueued(): number {
    return this.queuedSyncs.length;
  }

  /** The device finishes every queued sync: their writes become durable, then the callers hear of it. */
  completeSyncs(): void {
    const queued = this.queuedSyncs;
    this.queuedSyncs = [];
    for (const sync of queued) this.unsynced = this.unsynced.filter((range) => !sync.covers.has(range));
    for (const sync of queued) sync.done(null);
  }

  /**
   * The process is killed (kill -9) and the machine stays up: its unsynced writes stay in the page
   * cache, where the next boot reads them, until a sync makes them durable or power fails. A sync the
   * process had issued is never heard of; whether the disk finished it counts as not known.
   */
  processCrash(): void {
    this.generation++;
    this.failPowerInNextSyncNow = false;
    this.powerFailedInSync = false;
    this.queuedSyncs = [];
  }

  /**
   * The machine loses power: queued syncs never complete, and of every unsynced write the disk kept
   * nothing, a prefix, or (persisting sectors out of order) any of its 512-byte sectors.
   */
  powerLoss(random: SeededRandom): { tornBytes: number; lostBytes: number } {
    this.generation++;
    this.failPowerInNextSyncNow = false;
    this.powerFailedInSync = false;
    this.queuedSyncs = [];
    let tornBytes = 0;
    let lostBytes = 0;
    for (const range of this.failedWriteback) {
      const fd = openSync(range.path, "r+");
      try {
        writeSync(fd, Buffer.alloc(range.length), 0, range.length, range.position);
        lostBytes += range.length;
      } finally {
        closeSync(fd);
      }
    }
    this.failedWriteback = [];
    for (const range of this.unsynced) {
      const roll = random.next();
      const end = range.position + range.length;
      const lost: [number, number][] = [];
      if (roll < 0.4) {
        lost.push([range.position, end]);
      } else if (roll < 0.7) {
        lost.push([range.position + random.int(0, range.length), end]);
      } else {
        for (let sector = range.position - (range.position % SECTOR_BYTES); sector < end; sector += SECTOR_BYTES) {
          if (random.next() < 0.5) lost.push([Math.max(sector, range.position), Math.min(sector + SECTOR_BYTES, end)]);
        }
      }
      const fd = openSync(range.path, "r+");
      try {
        for (const [from, to] of lost) {
          writeSync(fd, Buffer.alloc(to - from), 0, to - from, from);
          lostBytes += to - from;
        }
      } finally {
        closeSync(fd);
      }
      tornBytes += range.length - lost.reduce((sum, [from, to]) => sum + to - from, 0);
    }
    this.unsynced = [];
    return { tornBytes, lostBytes };
  }
}

/** The unit a disk writes atomically: a power loss keeps or loses each whole. */
const SECTOR_BYTES = 512;
