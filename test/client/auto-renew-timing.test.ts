/**
 * When automatic renewals go out, and how long each attempt waits: on the lease's own deadline, with
 * the client's clock and the timers under the test's control.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BatonError, Lease } from "../../client/index.js";
import { Command } from "../../src/protocol/index.js";
import { ok, type ScriptedServer } from "./support/scripted-server.js";
import { useScriptedSession } from "./support/scripted-session.js";

const session = useScriptedSession();
beforeEach(() => {
  // Only the SDK's own timers; sockets run on Node's internal ones. Date.now is the client's clock.
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Resolves once the server has seen `count` requests (real I/O, fake timers). */
async function seen(server: ScriptedServer, count: number): Promise<void> {
  while (server.seen.length < count) await new Promise((resolve) => setImmediate(resolve));
}

async function grant(server: ScriptedServer, ttlMs: number, options: { timeoutMs?: number; attempts?: number } = {}): Promise<{ lease: Lease; warnings: BatonError[]; warnedAtMs: number[] }> {
  const client = session.client({ endpoints: [server.endpoint], clock: () => Date.now(), ...options });
  const warnings: BatonError[] = [];
  const warnedAtMs: number[] = [];
  client.on("warning", (error) => {
    warnings.push(error as BatonError);
    warnedAtMs.push(Date.now());
  });
  const result = await client.acquire("auto", { ttlMs, autoRenew: true });
  if (result.status !== "acquired") throw new Error("expected a grant");
  return { lease: result.lease, warnings, warnedAtMs };
}

describe("each automatic renewal is timed from the send of the request that set the deadline", () => {
  it("the first renewal goes out an interval after the ACQUIRE was sent, however long its answer took", async () => {
    const server = await session.serve((request) => {
      if (request.command === Command.Acquire) vi.setSystemTime(1000); // a round trip of 1 s
      return ok(41n, 99_999n);
    });
    const { lease } = await grant(server, 9000);
    expect(Date.now()).toBe(1000);
    await vi.advanceTimersByTimeAsync(1999);
    expect(server.seen).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    await seen(server, 2);
    expect(server.seen[1]!.command).toBe(Command.Renew);
    expect(Date.now()).toBe(3000); // the interval (ttl/3) after the send at 0, not after the answer at 1000
    await lease.release();
  });
});

describe("an automatic renewal's attempt waits up to half the time left before the deadline", () => {
  it("a round trip longer than a sixth of the ttl does not time every attempt out", async () => {
    const server = await session.serve((request) => (request.command === Command.Acquire ? ok(42n, 99_999n) : "silence"));
    const { lease, warnedAtMs } = await grant(server, 9000, { timeoutMs: 5000 });
    await vi.advanceTimersByTimeAsync(3000);
    await seen(server, 2);
    // At 3000 the deadline (9000 - 900) is 5100 ms away: the attempt waits 2550 ms, not ttl/6 = 1500.
    await vi.advanceTimersByTimeAsync(2549);
    expect(warnedAtMs).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(warnedAtMs).toEqual([5550]); // the attempt timed out
    expect(lease.held).toBe(true);
  });

  it("warns of every attempt of an automatic renewal that failed, while the renewal goes on", async () => {
    const server = await session.serve((request) => (request.command === Command.Acquire ? ok(44n, 99_999n) : "silence"));
    const { lease, warnings } = await grant(server, 9000, { timeoutMs: 5000 });
    await vi.advanceTimersByTimeAsync(3000);
    await seen(server, 2);
    await vi.advanceTimersByTimeAsync(2550);
    expect(warnings.map((error) => error.code)).toEqual(["BATON_TIMEOUT"]);
    expect(lease.held).toBe(true);
  });

  it("warns when an automatic renewal fails, and tries again before the deadline", async () => {
    const server = await session.serve((request) => (request.command === Command.Acquire ? ok(43n, 99_999n) : "silence"));
    const { lease, warnings } = await grant(server, 9000, { attempts: 1 });
    await vi.advanceTimersByTimeAsync(3000);
    await seen(server, 2);
    await vi.advanceTimersByTimeAsync(2550);
    expect(warnings.map((error) => error.code)).toEqual(["BATON_RETRIES_EXHAUSTED"]);
    expect(lease.held).toBe(true);
    // The next try goes out at half of what is left (2550 ms left: 1275 ms later).
    await vi.advanceTimersByTimeAsync(1275);
    await seen(server, 3);
    expect(server.seen[2]!.command).toBe(Command.Renew);
  });
});
