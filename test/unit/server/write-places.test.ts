/**
 * The pipeline marks each batch's records with their place among the log's writes: recovery trusts
 * "first-after-durable" to mean that every record before that write was durable when it was issued,
 * so the mark must never be set while an earlier batch is still in flight.
 */
import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import type { WritePlace } from "../../../src/log/record.js";
import { acquire } from "../../support/frames.js";
import { DeferredLog } from "../../support/fake-commit-io.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";

const SM_CONFIG = { hashSeed: 5, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The places of the records in the log's n-th pending append. */
function places(log: DeferredLog, n: number): WritePlace[] {
  return log.records(n).map((record) => record.header.place);
}

describe("write places the pipeline seals into its records", () => {
  it("marks a batch's first record, and says 'after durable' only when no earlier batch is in flight", async () => {
    const log = new DeferredLog();
    const harness = new PipelineHarness(new StateMachine(SM_CONFIG), log);
    let lock = 0n;
    const grant = () => acquire({ lock: lock++, owner: 1n }, 60_000n);

    // One batch, three stamps: three records, one write.
    harness.submit(grant());
    harness.nowMs += 1;
    harness.submit(grant(), grant());
    harness.nowMs += 1;
    harness.submit(grant());
    await turn();
    expect(log.pending.length).toBe(1);
    expect(places(log, 0)).toEqual(["first-after-durable", "later", "later"]);

    // A second batch while the first is in flight, then a third flushed as the first settles, with
    // the second still in flight: neither may claim that everything before it was durable.
    harness.submit(grant());
    await turn();
    harness.submit(grant());
    log.completeOldest();
    await turn();
    expect(log.pending.length).toBe(2);
    expect(places(log, 0)).toEqual(["first"]);
    expect(places(log, 1)).toEqual(["first"]);

    // Everything settled: the next write comes after durable records only.
    log.completeOldest();
    log.completeOldest();
    await turn();
    harness.submit(grant());
    await turn();
    expect(log.pending.length).toBe(1);
    expect(places(log, 0)).toEqual(["first-after-durable"]);
    log.completeOldest();
    await harness.pipeline.whenIdle();
    expect(harness.sink.answers.map((a) => a.fencingToken)).toEqual(Array.from({ length: Number(lock) }, (_, i) => BigInt(i + 1)));
  });
});

describe("a record holds at most the entries a reader accepts", () => {
  it("splits a run of one stamp longer than that into records of that many, in one write", async () => {
    const log = new DeferredLog();
    const harness = new PipelineHarness(new StateMachine(SM_CONFIG), log, { maxRecordEntries: 4 });
    harness.submit(...Array.from({ length: 10 }, (_, n) => acquire({ lock: BigInt(n), owner: 1n }, 60_000n)));
    await turn();
    expect(log.pending.length).toBe(1);
    const records = log.records(0).map(({ header }) => [header.firstIndex, header.count, header.stampMs, header.place]);
    const stamp = harness.nowMs;
    expect(records).toEqual([
      [1, 4, stamp, "first-after-durable"],
      [5, 4, stamp, "later"],
      [9, 2, stamp, "later"],
    ]);
    log.completeOldest();
    await harness.pipeline.whenIdle();
    expect(harness.sink.answers.map((a) => a.fencingToken)).toEqual(Array.from({ length: 10 }, (_, i) => BigInt(i + 1)));
  });
});
