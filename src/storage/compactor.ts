/**
 * Decides when to compact and cleans up after it: once the sealed segments since the last snapshot
 * hold `snapshotEveryBytes`, and at least as many bytes as that snapshot, it runs a compaction job (on a worker thread in production), then deletes
 * the segments and older snapshots the new snapshot covers. The second condition bounds the work:
 * a snapshot rewrites the whole state, so with a large state (millions of remembered request ids
 * under heavy load) a fixed threshold would rewrite far more than the log it replaces, back to back.
 * Waiting for as much log as the last snapshot holds keeps snapshot writing at most equal to log
 * writing, and recovery at most one snapshot plus that much log. One job at a time; a failed job is logged
 * and retried at the next sealed segment, and nothing is deleted unless a snapshot covers it.
 */
import { statSync, unlinkSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type { StateMachineConfig } from "../core/state-machine.js";
import type { Logger } from "../server/logger.js";
import type { CompactionJob, CompactionResult } from "./compaction.js";
import { listSnapshots, type DataDir } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";
import type { SealedSegment } from "./segment-log.js";

export type CompactionRunner = (job: CompactionJob) => Promise<CompactionResult>;

export class Compactor {
  private readonly sealed: { path: string; lastIndex: number; bytes: number }[] = [];
  private running: Promise<void> | null = null;
  private stopped = false;
  private snapshotPath: string | null;
  private snapshotBytes: number;

  constructor(
    private readonly dir: DataDir,
    private readonly config: StateMachineConfig,
    private readonly snapshotEveryBytes: number,
    private readonly run: CompactionRunner,
    private readonly logger: Logger,
    initial: { snapshotPath: string | null; sealed: readonly { path: string; lastIndex: number; bytes: number }[] },
  ) {
    this.snapshotPath = initial.snapshotPath;
    this.snapshotBytes = initial.snapshotPath === null ? 0 : statSync(initial.snapshotPath).size;
    this.sealed.push(...initial.sealed);
  }

  readonly onSegmentSealed = (segment: SealedSegment): void => {
    this.sealed.push({ path: segment.path, lastIndex: segment.lastIndex, bytes: segment.bytes });
    this.maybeStart();
  };

  maybeStart(): void {
    if (this.running !== null || this.stopped) return;
    const bytes = this.sealed.reduce((sum, segment) => sum + segment.bytes, 0);
    if (bytes < this.snapshotEveryBytes || bytes < this.snapshotBytes || this.sealed.length === 0) return;
    const segments = this.sealed.slice();
    const job: CompactionJob = { dir: this.dir, config: this.config, snapshotPath: this.snapshotPath, segments };
    const startedMs = performance.now();
    this.running = this.run(job).then(
      (result) => {
        this.afterSnapshot(result, segments.length);
        this.logger.info(
          `snapshot at index ${result.lastIndex} (${result.locks} locks, ${result.dedupeEntries} dedupe entries) ` +
            `written in ${Math.round(performance.now() - startedMs)} ms; ${segments.length} segments removed`,
        );
        this.running = null;
        this.maybeStart(); // segments sealed meanwhile may already be due
      },
      (error: Error) => {
        // Not retried at once (it would likely fail the same way, in a loop): the next sealed
        // segment tries again. The log keeps everything meanwhile.
        this.logger.error(`snapshot failed, log segments kept: ${error.message}`);
        this.running = null;
      },
    );
  }

  /** Waits for a job in progress (shutdown). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** Stops starting new jobs (shutdown). */
  stop(): void {
    this.stopped = true;
  }

  private afterSnapshot(result: CompactionResult, covered: number): void {
    for (const segment of this.sealed.splice(0, covered)) unlinkSync(segment.path);
    syncDirectory(this.dir.logDir);
    for (const old of listSnapshots(this.dir)) {
      if (old.lastIndex < result.lastIndex) unlinkSync(old.path);
    }
    this.snapshotPath = result.snapshotPath;
    this.snapshotBytes = result.bytes;
  }
}

/** Runs each job on a fresh worker thread (the built compaction-worker.js beside this module). */
export const workerCompactionRunner: CompactionRunner = (job) =>
  new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./compaction-worker.js", import.meta.url), { workerData: job });
    worker.once("message", (message: { ok: true; result: CompactionResult } | { ok: false; message: string }) => {
      if (message.ok) resolve(message.result);
      else reject(new Error(message.message));
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`compaction worker exited with ${code}`));
    });
  });
