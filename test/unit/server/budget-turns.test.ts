/**
 * Connections queued for the server's in-flight budget take turns of BUDGET_TURN_REQUESTS while
 * others wait: a light client behind many deep pipeliners waits about a turn per connection ahead
 * of it, not each one's whole pipeline. Counted in commands executed, with the log completing one
 * append at a time, so nothing here depends on timing.
 */
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { DEFAULT_CONFIG } from "../../../src/server/config.js";
import { Connection } from "../../../src/server/connection.js";
import { BUDGET_TURN_REQUESTS, InflightBudget } from "../../../src/server/inflight-budget.js";
import { Status } from "../../../src/protocol/index.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { acquire, inspect } from "../../support/frames.js";
import { DeferredLog, FakeSocket } from "../../support/fake-commit-io.js";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("the in-flight budget's queue", () => {
  it("lets a light client in after about a turn of each deep pipeliner ahead of it", async () => {
    const FLOODERS = 12;
    const PIPELINE = 1000;
    const BUDGET = 256;
    const sm = new StateMachine({ hashSeed: 7, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 });
    const log = new DeferredLog();
    const pipeline = new PipelineHarness(sm, log).pipeline;
    const config = { ...DEFAULT_CONFIG, maxInflightTotal: BUDGET };
    const budget = new InflightBudget(BUDGET);
    const open = () => {
      const socket = new FakeSocket();
      new Connection(socket as unknown as Socket, Buffer.alloc(0), pipeline, config, budget, () => 0);
      return socket;
    };
    const flooders = Array.from({ length: FLOODERS }, open);
    for (const [f, socket] of flooders.entries()) {
      socket.emit("data", Buffer.concat(Array.from({ length: PIPELINE }, (_, n) => acquire({ lock: BigInt(f * PIPELINE + n), owner: 1n }, 60_000n))));
    }
    const probe = open();
    probe.emit("data", inspect({ lock: 999_999n, owner: 2n })); // the budget is spent: it queues behind them all
    const grantsBefore = sm.nextFencingToken - 1;
    expect(probe.answers()).toHaveLength(0);
    for (let appends = 0; probe.answers().length === 0 && appends < 10_000; appends++) {
      await turn();
      if (log.pending.length > 0) log.completeOldest();
    }
    expect(probe.answers()).toEqual([{ status: Status.NotHeld, fencingToken: 0n, expiresAt: 0n }]);
    const grantsWhileWaiting = sm.nextFencingToken - 1 - grantsBefore;
    // A turn of each flooder ahead, and the budget's worth already in flight: 12 x 64 + 256 = 1024.
    // Whole turns (each flooder reading on until the budget is spent) would let 12 x 256 through.
    expect(grantsWhileWaiting).toBeLessThanOrEqual(FLOODERS * BUDGET_TURN_REQUESTS + BUDGET);
  });
});
