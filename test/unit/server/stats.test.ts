/**
 * The stats line (`--stats-every`): the pipeline counts every request and every committed batch, and
 * each line reports what changed since the one before.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { ImmediateLog } from "../../support/fake-commit-io.js";
import { CommitCounters, reportStats, statsLine, type StatsSample } from "../../../src/server/stats.js";
import { Status } from "../../../src/protocol/index.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { acquire, release } from "../../support/frames.js";

const SM_CONFIG = { hashSeed: 7, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };
const LIMITS = { maxConnections: 100, maxInflightTotal: 4096, maxLocks: 1000, maxDedupeEntries: 5000 };

const ZERO: StatsSample = {
  atMs: 1000,
  requests: 0,
  logIndex: 40,
  batches: 0,
  commitMsTotal: 0,
  commitMsMax: 0,
  connections: 0,
  requestsInFlight: 0,
  lockRecords: 0,
  rememberedAnswers: 0,
  nextFencingToken: 1,
};

describe("statsLine", () => {
  it("reports the interval's changes, the current sizes against their limits, and the log index", () => {
    const current: StatsSample = {
      atMs: 11_000,
      requests: 1234,
      logIndex: 1240,
      batches: 40,
      commitMsTotal: 20,
      commitMsMax: 1.5,
      connections: 7,
      requestsInFlight: 112,
      lockRecords: 12,
      rememberedAnswers: 1200,
      nextFencingToken: 13,
    };
    expect(statsLine(ZERO, current, LIMITS)).toBe(
      "stats seconds=10.0 requests=1234 requests_per_s=123 logged=1200 batches=40 commit_avg_ms=0.50 commit_max_ms=1.50 " +
        "connections=7/100 in_flight=112/4096 lock_records=12/1000 remembered_answers=1200/5000 log_index=1240",
    );
  });

  it("reports a quiet interval as zeros, not as a division by zero", () => {
    expect(statsLine(ZERO, { ...ZERO, atMs: 2000 }, LIMITS)).toBe(
      "stats seconds=1.0 requests=0 requests_per_s=0 logged=0 batches=0 commit_avg_ms=0.00 commit_max_ms=0.00 " +
        "connections=0/100 in_flight=0/4096 lock_records=0/1000 remembered_answers=0/5000 log_index=40",
    );
  });
});

describe("CommitCounters", () => {
  it("keeps totals, and the slowest commit only until it is taken", () => {
    const counters = new CommitCounters();
    counters.recordCommit(2);
    counters.recordCommit(5);
    counters.recordCommit(1);
    const taken = () => ({ requests: counters.requests, batches: counters.batches, commitMsTotal: counters.commitMsTotal, commitMsMax: counters.takeCommitMsMax() });
    expect(taken()).toEqual({ requests: 0, batches: 3, commitMsTotal: 8, commitMsMax: 5 });
    counters.recordCommit(3);
    expect(taken()).toEqual({ requests: 0, batches: 4, commitMsTotal: 11, commitMsMax: 3 });
    expect(taken().commitMsMax).toBe(0);
  });
});

describe("the pipeline's counters", () => {
  it("count every request answered, invalid and refused ones too, and each committed batch once", async () => {
    const log = new ImmediateLog();
    const harness = new PipelineHarness(new StateMachine(SM_CONFIG), log);
    const counters = harness.pipeline.counters;

    const first = await harness.run(acquire({ lock: 1n, owner: 1n }, 60_000n), acquire({ lock: 2n, owner: 1n }, 0n));
    expect(first.map((answer) => answer.status)).toEqual([Status.Ok, Status.Invalid]);
    expect(counters.requests).toBe(2);
    expect(counters.batches).toBe(1);

    // A batch of 3s only has nothing to commit: answered, not committed.
    await harness.run(acquire({ lock: 3n, owner: 1n }, 0n));
    expect(counters.requests).toBe(3);
    expect(counters.batches).toBe(1);

    await harness.run(release({ lock: 1n, owner: 1n }), acquire({ lock: 4n, owner: 1n }, 60_000n));
    expect(counters.requests).toBe(5);
    expect(counters.batches).toBe(2);
    expect(harness.pipeline.durableIndex).toBe(3);

    // A failed append commits nothing; the requests after it are answered 6 and still counted.
    log.failing = true;
    const failed = await harness.run(acquire({ lock: 5n, owner: 1n }, 60_000n));
    expect(failed.map((answer) => answer.status)).toEqual([Status.Unavailable]);
    const refused = await harness.run(acquire({ lock: 6n, owner: 1n }, 60_000n));
    expect(refused.map((answer) => answer.status)).toEqual([Status.Unavailable]);
    expect(counters.requests).toBe(7);
    expect(counters.batches).toBe(2);
    // The failed batch's entry took an index, but it is not in the log.
    expect(harness.pipeline.lastIndex).toBe(4);
    expect(harness.pipeline.durableIndex).toBe(3);
  });
});

describe("reportStats", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("logs one line per interval, each against the sample before it, until stopped", () => {
    vi.useFakeTimers();
    let requests = 0;
    const lines: string[] = [];
    const stop = reportStats(1000, () => ({ ...ZERO, atMs: Date.now(), requests }), LIMITS, (line) => lines.push(line));
    requests = 10;
    vi.advanceTimersByTime(1000);
    requests = 15;
    vi.advanceTimersByTime(1000);
    stop();
    requests = 100;
    vi.advanceTimersByTime(5000);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain("seconds=1.0 requests=10 requests_per_s=10 ");
    expect(lines[1]).toContain("seconds=1.0 requests=5 requests_per_s=5 ");
  });
});

describe("the commit-time histogram", () => {
  it("counts each commit in the first bucket whose bound it does not exceed, cumulatively, the slowest past every bound", () => {
    const counters = new CommitCounters();
    for (const ms of [0.05, 0.1, 0.3, 7, 7, 2000]) counters.recordCommit(ms);
    // bounds (ms): 0.1 0.25 0.5 1 2.5 5 10 25 50 100 250 1000, then everything
    expect(counters.cumulativeBuckets()).toEqual([2, 2, 3, 3, 3, 3, 5, 5, 5, 5, 5, 5, 6]);
    expect(counters.commitMsTotal).toBeCloseTo(2014.45, 9);
  });
});
