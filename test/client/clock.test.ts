/**
 * The client's default clock counts time the machine spent suspended, and never goes backwards.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { type LeaseLostError } from "../../client/index.js";
import { suspendAwareClock } from "../../client/clock.js";
import { ok } from "./support/scripted-server.js";
import { useScriptedSession } from "./support/scripted-session.js";

const session = useScriptedSession();
afterEach(() => {
  vi.restoreAllMocks();
});

/** A suspend-aware clock over a monotonic and a wall clock the test moves. */
function clocks(): { monotonicMs: number; wallMs: number; read: () => number } {
  const state = { monotonicMs: 500, wallMs: 1_700_000_000_000, read: () => 0 };
  state.read = suspendAwareClock(
    () => state.monotonicMs,
    () => state.wallMs,
  );
  return state;
}

describe("elapsed time is the larger of the monotonic and the wall clock's advance", () => {
  it("counts a suspend, during which only the wall clock advances", () => {
    const clock = clocks();
    const startMs = clock.read();
    clock.monotonicMs += 100;
    clock.wallMs += 100;
    expect(clock.read()).toBe(startMs + 100);
    clock.wallMs += 60_000; // suspended for a minute
    expect(clock.read()).toBe(startMs + 60_100);
    clock.monotonicMs += 50;
    clock.wallMs += 50;
    expect(clock.read()).toBe(startMs + 60_150);
  });

  it("ignores a wall clock stepped back, and counts a suspend after it whole", () => {
    const clock = clocks();
    const startMs = clock.read();
    clock.monotonicMs += 10;
    clock.wallMs -= 3_600_000;
    expect(clock.read()).toBe(startMs + 10);
    clock.wallMs += 5000; // suspended for 5 s
    expect(clock.read()).toBe(startMs + 5010);
  });

  it("moves forward with a wall clock stepped forward, the direction that only ends leases early", () => {
    const clock = clocks();
    const startMs = clock.read();
    clock.wallMs += 2000;
    expect(clock.read()).toBe(startMs + 2000);
  });

  it("does not run fast on the wall clock's whole milliseconds", () => {
    const clock = clocks();
    const startMs = clock.read();
    // Readings every 0.25 ms for 1 s, the wall clock truncated to whole milliseconds.
    const wallStartMs = clock.wallMs;
    for (let i = 1; i <= 4000; i++) {
      clock.monotonicMs += 0.25;
      clock.wallMs = wallStartMs + Math.floor(i * 0.25);
      clock.read();
    }
    expect(clock.read()).toBe(startMs + 1000);
  });
});

describe("a lease held across a suspend of the machine", () => {
  it("is no longer held after a suspend longer than its deadline, on the default clock", async () => {
    const server = await session.serve(() => ok(21n, 99_999n));
    const client = session.client({ endpoints: [server.endpoint] });
    const result = await client.acquire("suspended", { ttlMs: 60_000 });
    if (result.status !== "acquired") throw new Error("expected a grant");
    expect(result.lease.held).toBe(true);
    const wallMs = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(wallMs + 120_000); // the wall clock went on for 2 minutes; performance.now did not
    expect(result.lease.held).toBe(false);
    expect(result.lease.lossReason).toBe("deadline");
  });

  it("aborts its signal when the next deadline check runs, not only when the monotonic deadline comes", async () => {
    const server = await session.serve(() => ok(22n, 99_999n));
    const clock = { nowMs: 0 };
    const client = session.client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const result = await client.acquire("resumed", { ttlMs: 3_600_000 });
    if (result.status !== "acquired") throw new Error("expected a grant");
    const { signal } = result.lease;
    const aborted = new Promise<unknown>((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
    clock.nowMs = 7_200_000; // resumed two hours later: no timer of the hour's deadline has fired
    expect(((await aborted) as LeaseLostError).reason).toBe("deadline");
  });
});
