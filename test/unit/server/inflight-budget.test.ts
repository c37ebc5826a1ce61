/**
 * --max-inflight-total: requests in flight on all connections together stay within the budget, the
 * connections that find it spent stop reading and resume in the order they queued, and no request
 * is lost or answered out of order on the way.
 */
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { Status } from "../../../src/protocol/index.js";
import { DEFAULT_CONFIG } from "../../../src/server/config.js";
import { Connection } from "../../../src/server/connection.js";
import { InflightBudget } from "../../../src/server/inflight-budget.js";
import { DeferredLog, FakeSocket } from "../../support/fake-commit-io.js";
import { acquire } from "../../support/frames.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";

const SM_CONFIG = { hashSeed: 7, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Answers handed out resume the waiting connections on the next tick, whose batch flushes a turn later. */
const settled = async () => {
  await turn();
  await turn();
};

describe("the budget of requests in flight on all connections", () => {
  it("holds every connection to it, and answers everything in order once room comes back", async () => {
    const log = new DeferredLog();
    const pipeline = new PipelineHarness(new StateMachine(SM_CONFIG), log).pipeline;
    const budget = new InflightBudget(3);
    const sockets = [new FakeSocket(), new FakeSocket()];
    for (const socket of sockets) {
      new Connection(socket as unknown as Socket, Buffer.alloc(0), pipeline, DEFAULT_CONFIG, budget, () => 0);
    }
    // Five grants asked on each connection, all in one read: the per-connection limit (1024) is far.
    sockets.forEach((socket, c) => {
      socket.emit("data", Buffer.concat(Array.from({ length: 5 }, (_, i) => acquire({ lock: BigInt(c * 10 + i), owner: 1n }, 60_000n))));
    });
    await turn();
    expect(budget.inFlight).toBe(3);
    expect(sockets.every((socket) => socket.paused)).toBe(true);

    const appendSizes: number[] = [];
    for (let step = 0; step < 20 && log.pending.length > 0; step++) {
      expect(budget.inFlight).toBeLessThanOrEqual(3);
      appendSizes.push((log.pending[0]!.lent.length - 36) / 57); // a record's header, then its 57-byte entries
      log.completeOldest();
      await settled();
    }
    await pipeline.whenIdle();
    expect(log.pending).toEqual([]);
    expect(budget.inFlight).toBe(0);

    // The first connection queued first and resumed first; the second then took what was left, each
    // time: batches of 3, 3 (two of the first's, one of the second's), 3 and 1.
    expect(appendSizes).toEqual([3, 3, 3, 1]);
    const [first, second] = sockets.map((socket) => socket.answers());
    expect(first!.map((a) => [a.status, a.fencingToken])).toEqual([1n, 2n, 3n, 4n, 5n].map((t) => [Status.Ok, t]));
    expect(second!.map((a) => [a.status, a.fencingToken])).toEqual([6n, 7n, 8n, 9n, 10n].map((t) => [Status.Ok, t]));
    expect(sockets.every((socket) => !socket.paused)).toBe(true);
  });

  it("resumes only connections still open: one reset while it waited runs none of what it sent", async () => {
    const log = new DeferredLog();
    const pipeline = new PipelineHarness(new StateMachine(SM_CONFIG), log).pipeline;
    const budget = new InflightBudget(2);
    const holder = new FakeSocket();
    const reset = new FakeSocket();
    const waiting = new FakeSocket();
    for (const socket of [holder, reset, waiting]) {
      new Connection(socket as unknown as Socket, Buffer.alloc(0), pipeline, DEFAULT_CONFIG, budget, () => 0);
    }
    holder.emit("data", Buffer.concat([acquire({ lock: 1n, owner: 1n }, 60_000n), acquire({ lock: 2n, owner: 1n }, 60_000n)]));
    reset.emit("data", acquire({ lock: 3n, owner: 2n }, 60_000n));
    waiting.emit("data", acquire({ lock: 4n, owner: 3n }, 60_000n));
    await turn();
    reset.destroyed = true; // its client gave up while the frame was held back
    for (let step = 0; step < 20 && log.pending.length > 0; step++) {
      log.completeOldest();
      await settled();
    }
    await pipeline.whenIdle();
    expect(holder.answers().map((a) => a.fencingToken)).toEqual([1n, 2n]);
    expect(reset.written).toEqual([]);
    // Lock 3 was never taken: the waiting connection's grant is the third token, not the fourth.
    expect(waiting.answers().map((a) => [a.status, a.fencingToken])).toEqual([[Status.Ok, 3n]]);
  });
});
