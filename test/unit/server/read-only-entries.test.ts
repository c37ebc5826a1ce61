/**
 * The log keeps a read-only command (an INSPECT, a retry answered from memory) only when no entry
 * before it carries its time stamp: replaying one only moves the clock to that stamp. Without that,
 * read-only traffic filled the disk faster than compaction folded it. Its answer still waits until
 * the entry that carries its time is durable.
 */
import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { ENTRY_BYTES } from "../../../src/log/record.js";
import { BODY_CMD, Command, Status } from "../../../src/protocol/index.js";
import { acquire, inspect, release } from "../../support/frames.js";
import { DeferredLog } from "../../support/fake-commit-io.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";

const SM_CONFIG = { hashSeed: 5, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The commands and stamps of the entries in the log's n-th pending append. */
function entriesOf(log: DeferredLog, n: number): { cmd: number; stampMs: number }[] {
  return log.records(n).flatMap(({ header, entriesAt, bytes }) =>
    Array.from({ length: header.count }, (_, i) => ({ cmd: bytes[entriesAt + i * ENTRY_BYTES + BODY_CMD]!, stampMs: header.stampMs })),
  );
}

describe("read-only commands in the log", () => {
  it("are left out when an entry already carries their time, and answered only once that entry is durable", async () => {
    const log = new DeferredLog();
    const harness = new PipelineHarness(new StateMachine(SM_CONFIG), log, { startMs: 5_000 });
    const grant = acquire({ lock: 1n, owner: 1n, request: 100n }, 60_000n);
    harness.submit(grant, inspect({ lock: 1n, owner: 1n, request: 101n }), grant);
    await turn();
    expect(log.pending.length).toBe(1);
    expect(entriesOf(log, 0)).toEqual([{ cmd: Command.Acquire, stampMs: 5_000 }]);

    // Same millisecond, a batch of nothing but read-only commands: nothing to write, but its answers
    // wait for the batch before it, which carries their time.
    harness.submit(inspect({ lock: 1n, owner: 2n, request: 102n }), grant);
    await turn();
    await turn();
    expect(log.pending.length).toBe(1);
    expect(harness.sink.answers).toEqual([]);
    log.completeOldest();
    await harness.pipeline.whenIdle();
    expect(harness.sink.answers.map((answer) => answer.status)).toEqual([Status.Ok, Status.Ok, Status.Ok, Status.Held, Status.Ok]);
    expect(harness.pipeline.lastIndex).toBe(1);
  });

  it("are kept when they are the first to carry a later time, so that time is durable before they answer", async () => {
    const log = new DeferredLog();
    const harness = new PipelineHarness(new StateMachine(SM_CONFIG), log, { startMs: 5_000 });
    const grant = acquire({ lock: 1n, owner: 1n, request: 100n }, 60_000n);
    harness.submit(grant);
    harness.nowMs = 5_001;
    harness.submit(inspect({ lock: 1n, owner: 2n, request: 101n }), inspect({ lock: 1n, owner: 3n, request: 102n }));
    harness.nowMs = 5_002;
    harness.submit(grant, release({ lock: 1n, owner: 1n, request: 103n }));
    await turn();
    expect(entriesOf(log, 0)).toEqual([
      { cmd: Command.Acquire, stampMs: 5_000 },
      { cmd: Command.Inspect, stampMs: 5_001 },
      { cmd: Command.Acquire, stampMs: 5_002 }, // the retry, first at 5002
      { cmd: Command.Release, stampMs: 5_002 },
    ]);
    log.completeOldest();
    await harness.pipeline.whenIdle();
    expect(harness.sink.answers.map((answer) => answer.status)).toEqual([Status.Ok, Status.Held, Status.Held, Status.Ok, Status.Ok]);
  });

  it("a restarted pipeline counts the recovered clock as logged (recovery synced the log it came from): a read-only command at that time is not written", async () => {
    const sm = new StateMachine(SM_CONFIG);
    const first = new PipelineHarness(sm, new DeferredLog(), { startMs: 5_000 });
    first.submit(acquire({ lock: 1n, owner: 1n, request: 100n }, 60_000n));
    // Recovered: the state machine at 5000; the wall clock behind it, so commands are stamped 5000.
    const log = new DeferredLog();
    const restarted = new PipelineHarness(sm, log, { startMs: 4_000, nextIndex: 2 });
    restarted.submit(inspect({ lock: 1n, owner: 1n, request: 101n }));
    await turn();
    expect(log.pending.length).toBe(0);
    expect(restarted.pipeline.lastIndex).toBe(1);
    await restarted.pipeline.whenIdle();
    expect(restarted.sink.answers).toMatchObject([{ status: Status.Ok }]);
  });
});
