/**
 * The leader's clock: an honest wall clock is followed exactly; a stepped one can never make logical
 * time run more than 1% faster than real time, so no lease ends early because the wall clock jumped.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_CATCH_UP_RATE, SteadyWallClock } from "../../../src/server/clock.js";
import { testSeed } from "../../support/seeded-random.js";

const seed = Number(testSeed("leader clock under wall-clock steps")) | 0;
const START_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/** A machine whose real time advances by `advance`, with a wall clock that can be stepped. */
class FakeMachine {
  realMs = 1_000.25; // monotonic, fractional like performance.now()
  wallOffsetMs = START_MS - 1_000;
  readonly steps: number[] = [];
  readonly clock = new SteadyWallClock({
    wallMs: () => Math.floor(this.realMs + this.wallOffsetMs),
    monotonicMs: () => this.realMs,
    onStep: (aheadMs) => this.steps.push(aheadMs),
  });
  /** The logical time as the pipeline keeps it: never behind what it handed out before. */
  logicalMs = 0;

  advance(ms: number): void {
    this.realMs += ms;
  }

  stepWall(ms: number): void {
    this.wallOffsetMs += ms;
  }

  get wallMs(): number {
    return Math.floor(this.realMs + this.wallOffsetMs);
  }

  read(): number {
    this.logicalMs = Math.max(this.logicalMs, this.clock.nowMs());
    return this.logicalMs;
  }
}

describe("the leader's clock", () => {
  it("is the wall clock while the wall clock keeps real time", () => {
    const machine = new FakeMachine();
    for (const ms of [0, 0.01, 0.3, 0.99, 1, 1.5, 7, 250, 0.001, 60_000, 3.25]) {
      machine.advance(ms);
      expect(machine.clock.nowMs()).toBe(machine.wallMs);
    }
    expect(machine.steps).toEqual([]);
  });

  it("absorbs a wall clock stepped an hour ahead at 1%, so a lease granted before the step keeps its length", () => {
    const machine = new FakeMachine();
    const grantedAt = machine.read();
    const ttlMs = 10_000;
    machine.advance(1_000);
    machine.stepWall(3_600_000);
    // Had time followed the wall clock, the lease would have ended at once. It ends only when
    // logical time reaches grantedAt + ttl: no sooner than ttl / 1.01 of real time.
    const realAtGrant = machine.realMs - 1_000;
    while (machine.read() < grantedAt + ttlMs) machine.advance(1);
    expect(machine.realMs - realAtGrant).toBeGreaterThanOrEqual((ttlMs - 1) / (1 + MAX_CATCH_UP_RATE));
    expect(machine.realMs - realAtGrant).toBeLessThan(ttlMs);
    // Reported once: ahead of where time may be by the step, less 1% of the second before it (and 1 ms).
    expect(machine.steps).toHaveLength(1);
    expect(machine.steps[0]).toBeGreaterThanOrEqual(3_600_000 - 11);
    expect(machine.steps[0]).toBeLessThanOrEqual(3_600_000 - 9);
    // It catches up after step / rate of real time, and then follows the wall clock again.
    for (let minutes = 0; minutes < 6_100 && machine.read() < machine.wallMs; minutes++) machine.advance(60_000);
    expect(machine.read()).toBe(machine.wallMs);
    machine.advance(5);
    expect(machine.clock.nowMs()).toBe(machine.wallMs);
    expect(machine.realMs - realAtGrant).toBeGreaterThan(3_600_000 / MAX_CATCH_UP_RATE);
  });

  it("follows a wall clock stepped back, and the pipeline holds logical time still until it catches up", () => {
    const machine = new FakeMachine();
    machine.advance(10);
    const before = machine.read();
    machine.stepWall(-30_000);
    machine.advance(1);
    expect(machine.clock.nowMs()).toBe(machine.wallMs);
    expect(machine.read()).toBe(before);
    expect(machine.steps).toHaveLength(1);
    expect(machine.steps[0]).toBeLessThanOrEqual(-29_998);
    machine.advance(30_000);
    expect(machine.read()).toBe(machine.wallMs);
  });

  it("never runs more than 1% fast over any interval (+1 ms), and never ahead of the wall clock, however the wall clock steps", () => {
    const moves = fc.array(
      fc.record({
        advanceMs: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 100_000 })),
        stepMs: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -7_200_000, max: 7_200_000 }), fc.integer({ min: -3, max: 3 })),
      }),
      { minLength: 1, maxLength: 80 },
    );
    fc.assert(
      fc.property(moves, (list) => {
        const machine = new FakeMachine();
        const seen: { logical: number; real: number }[] = [{ logical: machine.read(), real: machine.realMs }];
        for (const { advanceMs, stepMs } of list) {
          machine.advance(advanceMs);
          machine.stepWall(stepMs);
          const out = machine.clock.nowMs();
          if (out > machine.wallMs) throw new Error(`handed out ${out}, ahead of the wall clock ${machine.wallMs}`);
          machine.logicalMs = Math.max(machine.logicalMs, out);
          seen.push({ logical: machine.logicalMs, real: machine.realMs });
        }
        for (let j = 0; j < seen.length; j++) {
          for (let k = j + 1; k < seen.length; k++) {
            const allowed = (seen[k]!.real - seen[j]!.real) * (1 + MAX_CATCH_UP_RATE) + 1;
            if (seen[k]!.logical - seen[j]!.logical > allowed + 1e-6) {
              throw new Error(`logical time moved ${seen[k]!.logical - seen[j]!.logical} ms in ${seen[k]!.real - seen[j]!.real} ms of real time`);
            }
          }
        }
      }),
      { seed, numRuns: 400 },
    );
  });
});
