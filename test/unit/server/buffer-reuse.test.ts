/**
 * The commit path reuses two kinds of memory instead of allocating per batch: a settled batch's
 * record buffer (after the log called `done`), and a connection's reply buffer (after the socket took
 * every byte). Reusing either too early would rewrite bytes still on their way to the disk or to a
 * client, so these tests keep the lent buffers and check they still hold what they held when lent.
 */
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { MAX_APPENDS_IN_FLIGHT } from "../../../src/log/commit-log.js";
import { DEFAULT_CONFIG } from "../../../src/server/config.js";
import { Connection } from "../../../src/server/connection.js";
import { InflightBudget } from "../../../src/server/inflight-budget.js";
import { Status } from "../../../src/protocol/index.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { acquire } from "../../support/frames.js";
import { DeferredLog, FakeSocket } from "../../support/fake-commit-io.js";

const SM_CONFIG = { hashSeed: 7, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("record buffers", () => {
  it("are reused only after the log is done with them", async () => {
    const log = new DeferredLog();
    const harness = new PipelineHarness(new StateMachine(SM_CONFIG), log);
    let lock = 0n;
    // Many turns of commands with appends left in flight: batches settle and get reused while later
    // ones are still lent to the log.
    for (let round = 0; round < 200; round++) {
      harness.submit(...Array.from({ length: 1 + (round % 7) }, () => acquire({ lock: lock++, owner: 1n }, 60_000n)));
      await turn();
      expect(log.pending.length).toBeLessThanOrEqual(MAX_APPENDS_IN_FLIGHT);
      if (log.pending.length === MAX_APPENDS_IN_FLIGHT || round % 3 === 0) log.completeOldest();
    }
    while (log.pending.length > 0) {
      log.completeOldest();
      await turn();
    }
    await harness.pipeline.whenIdle();
    expect(log.completed).toBeGreaterThan(100);
    expect(log.reusedEarly).toBe(0);
    // Every grant came back, in order: fencing tokens 1, 2, 3, ...
    expect(harness.sink.answers.map((a) => a.fencingToken)).toEqual(Array.from({ length: Number(lock) }, (_, i) => BigInt(i + 1)));
  });
});

describe("reply buffers", () => {
  for (const backlog of [false, true]) {
    it(`keep every answer intact ${backlog ? "while writes wait in the socket" : "when the kernel takes each write at once"}`, async () => {
      const log = new DeferredLog();
      const pipeline = new PipelineHarness(new StateMachine(SM_CONFIG), log).pipeline;
      const socket = new FakeSocket();
      socket.backlog = backlog;
      const config = { ...DEFAULT_CONFIG, maxQueuedReplyBytes: Number.MAX_SAFE_INTEGER };
      new Connection(socket as unknown as Socket, Buffer.alloc(0), pipeline, config, new InflightBudget(config.maxInflightTotal), () => 0);
      let lock = 0n;
      for (let round = 0; round < 100; round++) {
        socket.emit("data", Buffer.concat(Array.from({ length: 1 + (round % 5) }, () => acquire({ lock: lock++, owner: 1n }, 60_000n))));
        await turn();
        if (log.pending.length >= 2) log.completeOldest();
        if (backlog && round % 10 === 9) socket.drain(); // the client reads now and then
      }
      while (log.pending.length > 0) {
        log.completeOldest();
        await turn();
      }
      await pipeline.whenIdle();
      if (backlog) socket.drain();
      // Answers queued behind a waiting write go out together when it completes: fewer writes.
      expect(socket.written.length).toBeGreaterThan(backlog ? 10 : 50);
      const changed = socket.written.filter((w) => !w.lent.equals(w.copy)).length;
      // A write still queued in the socket must keep its bytes; one the kernel took has been copied
      // there, and its buffer is answered into again (so the reuse path really ran here).
      if (backlog) expect(changed).toBe(0);
      else expect(changed).toBeGreaterThan(0);
      const answers = socket.answers();
      expect(answers.every((a) => a.status === Status.Ok)).toBe(true);
      expect(answers.map((a) => a.fencingToken)).toEqual(Array.from({ length: Number(lock) }, (_, i) => BigInt(i + 1)));
    });
  }
});
