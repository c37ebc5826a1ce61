/**
 * Drives the real CommitPipeline without sockets: a ReplySink that collects answers, and helpers that
 * submit request frames the way a connection does (validate, then submit).
 */
import { CommitPipeline, type ReplySink } from "../../src/server/commit-pipeline.js";
import { StateMachine } from "../../src/core/state-machine.js";
import type { CommitLog } from "../../src/log/commit-log.js";
import { isWellFormedRequestBody } from "../../src/protocol/request.js";
import { decodeResponse, Status, type Response } from "../../src/protocol/index.js";
import { writeResponse } from "../../src/protocol/response.js";
import { silentLogger } from "../../src/logging/logger.js";
import { ImmediateLog } from "./fake-commit-io.js";

export class CollectingSink implements ReplySink {
  openReplies: Uint8Array = new Uint8Array(17 * 8192);
  inOpenBatch = false;
  private openLength = 0;
  private readonly sealed: Uint8Array[] = [];
  /** Every answer released so far, in order. */
  readonly answers: Response[] = [];

  reserveReply(): number {
    const at = this.openLength;
    this.openLength += 17;
    return at;
  }

  sealReplies(): void {
    this.sealed.push(this.openReplies.slice(0, this.openLength));
    this.openLength = 0;
  }

  releaseReplies(failed: boolean): void {
    const sealed = this.sealed.shift()!;
    for (let at = 0; at < sealed.length; at += 17) {
      if (failed) writeResponse(sealed, at, Status.Unavailable, 0, 0);
      this.answers.push(decodeResponse(sealed, at));
    }
  }
}

export class PipelineHarness {
  readonly pipeline: CommitPipeline;
  readonly sink = new CollectingSink();
  nowMs: number;

  constructor(
    readonly stateMachine: StateMachine,
    log: CommitLog,
    options: { nextIndex?: number; startMs?: number; maxTtlMs?: number; maxRecordEntries?: number } = {},
  ) {
    this.nowMs = options.startMs ?? 1_000_000;
    this.pipeline = new CommitPipeline({
      stateMachine,
      log,
      limits: { maxLocks: 1_000_000, maxDedupeEntries: 1_000_000, maxTtlMs: options.maxTtlMs ?? 3_600_000 },
      clock: { nowMs: () => this.nowMs },
      logger: silentLogger,
      term: 1,
      nextIndex: options.nextIndex ?? 1,
      ...(options.maxRecordEntries === undefined ? {} : { maxRecordEntries: options.maxRecordEntries }),
    });
  }

  /** Submits whole frames (length prefix included) at the current clock. */
  submit(...frames: Buffer[]): void {
    const stamp = this.pipeline.stamp();
    for (const frame of frames) {
      const length = frame.readUInt32BE(0);
      if (isWellFormedRequestBody(frame, 4, length)) this.pipeline.submit(this.sink, frame, 4, length, stamp);
      else this.pipeline.answerWithoutState(this.sink, Status.Invalid);
    }
  }

  /** Submits and waits until every answer is released; returns the new answers. */
  async run(...frames: Buffer[]): Promise<Response[]> {
    const before = this.sink.answers.length;
    this.submit(...frames);
    await this.pipeline.whenIdle();
    return this.sink.answers.slice(before);
  }
}

/** A pipeline over a fresh state machine, a log that completes every append at once and a clock that stands still. */
export function immediatePipeline(): CommitPipeline {
  return new CommitPipeline({
    stateMachine: new StateMachine({ dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 9 }),
    log: new ImmediateLog(),
    limits: { maxLocks: 1_000, maxDedupeEntries: 1_000, maxTtlMs: 3_600_000 },
    clock: { nowMs: () => 1_000_000 },
    logger: silentLogger,
    term: 1,
    nextIndex: 1,
  });
}
