/**
 * The leader's clock: an honest wall clock is followed exactly; one stepped forward can never make
 * logical time run more than 1% faster than real time, so no lease ends early because of it; after a
 * backward step the pipeline holds logical time still until the wall clock catches up, as specified.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SLEW_RATE, SteadyWallClock, unabsorbedStepMs } from "../../../src/server/clock.js";
import { testSeed } from "../../support/seeded-random.js";

const seed = Number(testSeed("leader clock under wall-clock steps")) | 0;
const START_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/** A machine whose real time advances by `advance`, with a wall clock that can be stepped. */
class FakeMachine {
  realMs = 1_000.25; // monotonic, fractional like performance.now()
  wallOffsetMs = START_MS - 1_000;
  readonly steps: number[] = [];
  readonly clock: SteadyWallClock;

  constructor(unabsorbedMs = 0) {
    this.clock = new SteadyWallClock(
      { wallMs: () => Math.floor(this.realMs + this.wallOffsetMs), monotonicMs: () => this.realMs, onStep: (aheadMs) => this.steps.push(aheadMs) },
      unabsorbedMs,
    );
  }

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
    expect(machine.realMs - realAtGrant).toBeGreaterThanOrEqual((ttlMs - 1) / (1 + SLEW_RATE));
    expect(machine.realMs - realAtGrant).toBeLessThan(ttlMs);
    // Reported once, as the step (within the wall clock's whole milliseconds).
    expect(machine.steps).toHaveLength(1);
    expect(Math.abs(machine.steps[0]! - 3_600_000)).toBeLessThanOrEqual(1);
    // It catches up after step / rate of real time, and then follows the wall clock again.
    for (let minutes = 0; minutes < 6_100 && machine.read() < machine.wallMs; minutes++) machine.advance(60_000);
    expect(machine.read()).toBe(machine.wallMs);
    machine.advance(5);
    expect(machine.clock.nowMs()).toBe(machine.wallMs);
    expect(machine.realMs - realAtGrant).toBeGreaterThan(3_600_000 / SLEW_RATE);
  });

  it("follows a wall clock stepped back, so the pipeline holds logical time still until it catches up", () => {
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
    machine.advance(5);
    expect(machine.read()).toBe(machine.wallMs);
  });

  it("takes a brief backward glitch's correction at once, not for a forward step", () => {
    const machine = new FakeMachine();
    const before = machine.read();
    machine.stepWall(-3_600_000);
    for (let n = 0; n < 10; n++) {
      machine.advance(100);
      expect(machine.read()).toBe(before); // standing still
    }
    machine.stepWall(3_600_000); // corrected a second later
    expect(machine.wallMs - machine.read()).toBeLessThanOrEqual(11); // in step again, but for 1% of the second
    machine.advance(2_000);
    expect(machine.read()).toBe(machine.wallMs);
    expect(machine.steps).toHaveLength(1); // the glitch; its correction is small enough to absorb quietly
  });

  it("goes on absorbing what a clock before a restart left of a forward step", () => {
    const step = { aheadMs: 3_600_000, atMs: START_MS };
    expect(unabsorbedStepMs(step, START_MS)).toBe(3_600_000);
    // 101 s of logical time since the step is at least 100 s of real time, so at most 1 s absorbed.
    expect(unabsorbedStepMs(step, START_MS + 101_000)).toBeCloseTo(3_599_000, 6);
    expect(unabsorbedStepMs(step, START_MS + 400_000_000)).toBe(0);
    expect(unabsorbedStepMs({ aheadMs: -5_000, atMs: START_MS }, START_MS)).toBe(0);

    const machine = new FakeMachine(3_000_000);
    expect(machine.clock.nowMs() - (machine.wallMs - 3_000_000)).toBeLessThanOrEqual(1); // within the clock's 1 ms
    machine.advance(10_000);
    const later = machine.clock.nowMs();
    expect(machine.wallMs - later).toBeGreaterThanOrEqual(3_000_000 - 101);
    expect(machine.steps).toHaveLength(1); // reported again, so the next restart knows of it too
  });

  it("never runs more than 1% fast (+1 ms) over any interval while the wall clock only steps forward, and never ahead of the wall clock", () => {
    const moves = (minStepMs: number) =>
      fc.array(
        fc.record({
          advanceMs: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 100_000 })),
          stepMs: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: minStepMs, max: 7_200_000 }), fc.integer({ min: Math.max(minStepMs, -3), max: 3 })),
        }),
        { minLength: 1, maxLength: 80 },
      );
    const run = (list: { advanceMs: number; stepMs: number }[], forwardOnly: boolean): void => {
      const machine = new FakeMachine();
      const seen: { out: number; real: number }[] = [{ out: machine.clock.nowMs(), real: machine.realMs }];
      for (const { advanceMs, stepMs } of list) {
        machine.advance(advanceMs);
        machine.stepWall(stepMs);
        const out = machine.clock.nowMs();
        if (out > machine.wallMs) throw new Error(`sampled ${out}, ahead of the wall clock ${machine.wallMs}`);
        seen.push({ out, real: machine.realMs });
      }
      if (!forwardOnly) return;
      for (let j = 0; j < seen.length; j++) {
        for (let k = j + 1; k < seen.length; k++) {
          const moved = seen[k]!.out - seen[j]!.out;
          const real = seen[k]!.real - seen[j]!.real;
          if (moved > real * (1 + SLEW_RATE) + 1 + 1e-6 || moved < 0) {
            throw new Error(`readings ${j} and ${k}: the clock moved ${moved} ms in ${real} ms of real time`);
          }
        }
      }
    };
    fc.assert(
      fc.property(moves(0), (list) => run(list, true)),
      { seed, numRuns: 300 },
    );
    fc.assert(
      fc.property(moves(-7_200_000), (list) => run(list, false)),
      { seed, numRuns: 300 },
    );
  });
});
