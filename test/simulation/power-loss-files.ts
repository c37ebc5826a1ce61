/**
 * Simulated storage with power-loss semantics over real files: writes reach the file at once (like
 * the page cache), but only a completed sync makes them durable. The simulator decides when queued
 * syncs complete; `powerLoss()` then reverts every write that no completed sync covered, keeping a
 * random prefix of the first one (a torn write): what a machine losing power may leave behind.
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
        // A blocking sync completes before the caller goes on: durable at once.
        alive();
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

  /** The machine loses power: queued syncs never complete and unsynced writes are undone (the first one torn). */
  powerLoss(random: SeededRandom): { tornBytes: number; lostBytes: number } {
    this.generation++;
    this.queuedSyncs = [];
    let tornBytes = 0;
    let lostBytes = 0;
    for (const [n, range] of this.unsynced.entries()) {
      const kept = n === 0 && random.next() < 0.5 ? random.int(0, range.length) : 0;
      const zeros = Buffer.alloc(range.length - kept);
      const fd = openSync(range.path, "r+");
      try {
        writeSync(fd, zeros, 0, zeros.length, range.position + kept);
      } finally {
        closeSync(fd);
      }
      tornBytes += kept;
      lostBytes += zeros.length;
    }
    this.unsynced = [];
    return { tornBytes, lostBytes };
  }
}
