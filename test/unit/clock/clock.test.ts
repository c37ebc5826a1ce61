/**
 * The leader's clock: an honest wall clock is followed exactly; one stepped forward can never make
 * logical time run more than 1% faster than real time, so no lease ends early because of it; after a
 * backward step logical time runs on 1% slow until the wall clock meets it, as specified.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { resumeClockAt, SLEW_RATE, SteadyWallClock, TIGHT_READ_MS, unabsorbedStepMs, type ClockAnchor, type ClockReading, type ClockStep } from "../../../src/clock/clock.js";
import { randomFromSeed, testSeed } from "../../support/seeded-random.js";

const seed = Number(testSeed("leader clock under wall-clock steps")) | 0;
const START_MS = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/** A machine whose real time advances by `advance`, with a wall clock that can be stepped. */
class FakeMachine {
  realMs = 1_000.25; // monotonic, fractional like performance.now()
  wallOffsetMs = START_MS - 1_000;
  readonly steps: number[] = [];
  /** The clock anchor as lockd keeps it: the last sample told, and the monotonic clock after it. */
  anchor: ClockAnchor | null = null;
  /** Every sample the clock told of, in order. */
  readonly told: number[] = [];
  /** What the clock asked to record for a restart, in order. */
  readonly records: ClockStep[] = [];
  /** Whether a record the clock asks for is written (a disk that fails: false). */
  recordsDurable = true;
  /** The last record written: what a restart reads. */
  private lastDurable: ClockStep | null = null;
  /** Real time that passes right before and right after each wall-clock read (a pause between the clock reads). */
  pauseAroundWallRead: (() => { readonly beforeMs: number; readonly afterMs: number }) | null = null;
  clock: SteadyWallClock;

  constructor(unabsorbedMs = 0) {
    this.clock = this.startClock(unabsorbedMs, null);
  }

  /** A clock as lockd starts it, on this machine's clocks. */
  startClock(unabsorbedMs: number, lastRecord: ClockStep | null, startReading: ClockReading | null = null): SteadyWallClock {
    this.clock = new SteadyWallClock(
      {
        wallMs: () => {
          const pause = this.pauseAroundWallRead?.() ?? { beforeMs: 0, afterMs: 0 };
          this.realMs += pause.beforeMs;
          const wall = Math.floor(this.realMs + this.wallOffsetMs);
          this.realMs += pause.afterMs;
          return wall;
        },
        monotonicMs: () => this.realMs,
        onStep: (aheadMs) => this.steps.push(aheadMs),
        onSample: (sampleMs) => {
          this.told.push(sampleMs);
          this.anchor = { bootId: "boot-a", monotonicMs: this.realMs, sampleMs };
        },
        onRecord: (step) => {
          this.records.push(step);
          if (this.recordsDurable) this.lastDurable = step;
          return this.recordsDurable;
        },
      },
      unabsorbedMs,
      lastRecord,
      startReading,
    );
    return this.clock;
  }

  /** A restart as lockd does it without an anchor of this boot: what is left is estimated from the last record and the logical time. */
  restart(): void {
    this.resume(null);
  }

  /**
   * A restart on the same boot: the anchor bounds the start too. `whileStarting`: real time passing,
   * and the wall clock stepped, after the restart read the clocks and before the clock starts (lockd
   * writes the new record in between).
   */
  restartOnSameBoot(whileStarting?: { readonly advanceMs: number; readonly stepMs: number }): void {
    this.resume(this.anchor, whileStarting);
  }

  /** What lockd does at a restart (resumeClockAt), with the last record written and this machine's anchor, if any. */
  private resume(anchor: ClockAnchor | null, whileStarting?: { readonly advanceMs: number; readonly stepMs: number }): void {
    const reading = { wallMs: this.wallMs, monotonicMs: this.realMs };
    const resumed = resumeClockAt(this.lastDurable, this.logicalMs, anchor, "boot-a", this.realMs, reading.wallMs);
    if (resumed.newRecord !== null) this.lastDurable = resumed.newRecord;
    if (whileStarting !== undefined) {
      this.advance(whileStarting.advanceMs);
      this.stepWall(whileStarting.stepMs);
    }
    this.startClock(resumed.unabsorbedMs, resumed.record, reading);
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

  /** `read`, with the real time at its start and end (pauses around the wall-clock read fall between). */
  timedRead(): { readonly logical: number; readonly startMs: number; readonly endMs: number } {
    const startMs = this.realMs;
    const logical = this.read();
    return { logical, startMs, endMs: this.realMs };
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

  it("does not follow a wall clock stepped back: runs on 1% slow until the wall clock meets it", () => {
    const machine = new FakeMachine();
    machine.advance(10);
    const before = machine.read();
    machine.stepWall(-30_000);
    machine.advance(1_000);
    expect(machine.read() - before).toBeGreaterThanOrEqual(989);
    expect(machine.read() - before).toBeLessThanOrEqual(991);
    expect(machine.steps).toHaveLength(1);
    expect(machine.steps[0]).toBeLessThanOrEqual(-29_980); // the 30 s, less the 10 ms it fell behind in the second
    // 30 s behind, met at 1% of real time: after 3 000 s, and in step from then on.
    machine.advance(2_990_000);
    expect(machine.read()).toBeGreaterThan(machine.wallMs);
    machine.advance(20_000);
    expect(machine.read()).toBe(machine.wallMs);
    machine.advance(5);
    expect(machine.read()).toBe(machine.wallMs);
  });

  it("tells the anchor the largest sample before handing it out, and again every half millisecond while it stands", () => {
    const machine = new FakeMachine();
    const handedOut: number[] = [];
    const readAndCheck = () => {
      const sample = machine.clock.nowMs();
      handedOut.push(sample);
      expect(machine.anchor!.sampleMs).toBe(Math.max(...handedOut)); // told before it was returned
      expect(machine.realMs - machine.anchor!.monotonicMs).toBeLessThan(1 / (1 + SLEW_RATE));
    };
    for (const ms of [0, 0.3, 0.3, 0.5, 1, 1, 250]) {
      machine.advance(ms);
      readAndCheck();
    }
    machine.stepWall(60_000); // catching up at 1%
    for (let n = 0; n < 50; n++) {
      machine.advance(0.4);
      readAndCheck();
    }
    machine.stepWall(-120_000); // running slow
    for (let n = 0; n < 50; n++) {
      machine.advance(0.4);
      readAndCheck();
    }
    machine.stepWall(120_000 - 60_000);
    for (let n = 0; n < 50; n++) {
      machine.advance(0.4);
      machine.stepWall(-0.4); // frozen: in step with it, the sample stands
      readAndCheck();
    }
    expect(machine.told).toEqual([...machine.told].sort((a, b) => a - b));
  });

  it("keeps a lease granted under a frozen wall clock at least ttl / 1.01 - 1 ms long across a kill and a restart", () => {
    // Read every half millisecond, a frozen wall clock keeps the sample where it is; the anchor is
    // told again all the same, so it is never more than that behind the last time handed out.
    const machine = new FakeMachine();
    machine.read();
    for (let n = 0; n < 2_000; n++) {
      machine.advance(0.5);
      machine.stepWall(-0.5);
      machine.read();
    }
    const granted = machine.timedRead();
    // Killed; while lockd is down the wall clock is put right (a second ahead), and it restarts 10 ms later.
    machine.advance(10);
    machine.stepWall(1_000);
    machine.restartOnSameBoot();
    const restarted = machine.timedRead();
    expect(restarted.logical - granted.logical).toBeLessThanOrEqual((restarted.endMs - granted.startMs) * (1 + SLEW_RATE) + 2);
  });

  it("keeps its rates to the millisecond over thousands of evenly spaced readings, which rounding could bias", () => {
    // Intervals that are exact binary fractions, so the machine's real time is summed without error.
    for (const intervalMs of [5 / 1024, 13 / 1024, 29 / 1024, 61 / 1024, 130 / 1024]) {
      for (const [stepMs, rate] of [
        [3_600_000, 1 + SLEW_RATE],
        [-3_600_000, 1 - SLEW_RATE],
      ] as const) {
        const machine = new FakeMachine();
        machine.advance(1);
        machine.stepWall(stepMs);
        machine.advance(intervalMs);
        const from = machine.read();
        const realFrom = machine.realMs;
        const readings = Math.floor(5_000 / intervalMs);
        for (let n = 0; n < readings; n++) {
          machine.advance(intervalMs);
          machine.read();
        }
        const expected = (machine.realMs - realFrom) * rate;
        const moved = machine.logicalMs - from;
        if (Math.abs(moved - expected) > 1) {
          throw new Error(`${readings} readings ${intervalMs} ms apart after a ${stepMs} ms step: moved ${moved} ms, ${expected} at ${rate}`);
        }
      }
    }
  });

  it("follows a wall clock running fast at no more than 1%, and an honest one exactly, however evenly spaced the readings", () => {
    for (const intervalMs of [0.001, 0.0015, 0.0025, 5 / 1024, 0.0125, 13 / 1024]) {
      for (const wallRate of [1, 1.015]) {
        const machine = new FakeMachine();
        const realStart = machine.realMs;
        const offsetStart = machine.wallOffsetMs;
        const from = machine.read();
        const readings = Math.floor(Math.min(2_000, 20_000_000 * intervalMs) / intervalMs);
        for (let n = 1; n <= readings; n++) {
          // Both computed afresh, so the machine itself adds no rounding.
          machine.realMs = realStart + n * intervalMs;
          machine.wallOffsetMs = offsetStart + (wallRate - 1) * n * intervalMs;
          machine.read();
        }
        const real = machine.realMs - realStart;
        const moved = machine.logicalMs - from;
        if (wallRate === 1 && (machine.records.length > 0 || machine.logicalMs !== machine.wallMs)) {
          throw new Error(`an honest wall clock read every ${intervalMs} ms: ${machine.records.length} records, logical ${machine.logicalMs} against ${machine.wallMs}`);
        }
        if (moved > real * (1 + SLEW_RATE) + 1) throw new Error(`a wall clock ${wallRate}x fast read every ${intervalMs} ms: moved ${moved} ms in ${real} ms`);
      }
    }
  });

  it("takes no pause between its clock reads for a step of an honest wall clock", () => {
    const generator = randomFromSeed(`pauses between clock reads:${seed}`);
    const random = () => generator.next();
    const machine = new FakeMachine();
    // Mostly the fraction of a microsecond a read takes; now and then, never twice in a row, a
    // collection or a descheduled thread.
    let pausedLast = false;
    const pause = () => {
      pausedLast = !pausedLast && random() < 0.05;
      return pausedLast ? random() * 3 : random() * 0.001;
    };
    machine.pauseAroundWallRead = () => (random() < 0.5 ? { beforeMs: pause(), afterMs: 0.0002 } : { beforeMs: 0.0002, afterMs: pause() });
    for (let n = 0; n < 20_000; n++) {
      machine.advance(random() < 0.5 ? random() * 0.05 : random() * 5);
      const sample = machine.clock.nowMs();
      if (sample < machine.wallMs - 3 || sample > machine.wallMs) throw new Error(`reading ${n}: sampled ${sample}, the wall clock reads ${machine.wallMs}`);
    }
    expect(machine.records).toEqual([]);
    expect(machine.steps).toEqual([]);
  });

  it("takes a brief backward glitch's correction quietly, not for a forward step", () => {
    const machine = new FakeMachine();
    const before = machine.read();
    machine.stepWall(-3_600_000);
    for (let n = 1; n <= 10; n++) {
      machine.advance(100);
      // 1% slow, from the start's ceiling: the wall clock's whole millisecond, less the longest pause a read may hide
      expect(machine.read() - before).toBe(Math.floor(n * 100 * (1 - SLEW_RATE) + 1 - TIGHT_READ_MS));
    }
    machine.stepWall(3_600_000); // corrected a second later
    expect(machine.wallMs - machine.read()).toBeLessThanOrEqual(11); // in step again, but for 1% of the second
    machine.advance(2_000);
    expect(machine.read()).toBe(machine.wallMs);
    expect(machine.steps).toHaveLength(1); // the glitch; its correction is small enough to absorb quietly
  });

  it("does not end early a lease granted while the wall clock was behind, when the wall clock is put right", () => {
    const machine = new FakeMachine();
    machine.read();
    machine.stepWall(-30_000);
    machine.advance(6_000);
    const grantedAt = machine.read();
    const realAtGrant = machine.realMs;
    const ttlMs = 5_000;
    machine.stepWall(30_000); // put right
    while (machine.read() < grantedAt + ttlMs) machine.advance(1);
    expect(machine.realMs - realAtGrant).toBeGreaterThanOrEqual((ttlMs - 1) / (1 + SLEW_RATE));
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

  it("records the lag a backward period leaves once the wall clock is put right, so a restart does not take it at once", () => {
    const machine = new FakeMachine();
    machine.read();
    machine.stepWall(-60_000);
    for (let n = 0; n < 600; n++) {
      machine.advance(250);
      machine.read(); // 150 s at 99%: 1.5 s behind real time
    }
    machine.stepWall(60_000); // put right: 1.5 s left to absorb, under the 1 s report's hysteresis
    machine.read();
    expect(machine.records.at(-1)!.aheadMs).toBeGreaterThanOrEqual(1_499);
    const grantedAt = machine.read();
    const realAtGrant = machine.realMs;
    const ttlMs = 3_000;
    machine.advance(100);
    machine.read();
    machine.restart();
    while (machine.read() < grantedAt + ttlMs) machine.advance(1);
    expect(machine.realMs - realAtGrant).toBeGreaterThanOrEqual((ttlMs - 1) / (1 + SLEW_RATE));
  });

  it("asks again at the next reading when a record could not be written", () => {
    const machine = new FakeMachine();
    machine.recordsDurable = false;
    machine.read();
    machine.stepWall(60_000);
    machine.advance(10);
    machine.read();
    expect(machine.records).toHaveLength(1);
    machine.advance(10);
    machine.recordsDurable = true;
    machine.read();
    expect(machine.records).toHaveLength(2);
    machine.advance(10);
    machine.read();
    expect(machine.records).toHaveLength(2); // recorded: nothing more until the lag outgrows the record
  });

  it("logs a step of a second either way, measured from where the wall clock would read without it", () => {
    for (const [stepMs, logged] of [
      [1_000, true],
      [-1_000, true],
      [1_001, true],
      [-1_001, true],
      [998, false],
      [-998, false],
    ] as const) {
      const machine = new FakeMachine();
      for (let n = 0; n < 50; n++) {
        machine.advance(n % 3 === 0 ? 0.4 : 13);
        machine.read();
      }
      machine.stepWall(stepMs);
      machine.advance(10);
      machine.read();
      expect(machine.steps, `a step of ${stepMs} ms`).toHaveLength(logged ? 1 : 0);
      if (logged) expect(Math.abs(machine.steps[0]! - stepMs), `a step of ${stepMs} ms`).toBeLessThanOrEqual(1);
    }
  });

  it("records a step under a second too, and writes no record while the wall clock keeps time", () => {
    const machine = new FakeMachine();
    for (let n = 0; n < 1_000; n++) {
      machine.advance(n % 7 === 0 ? 0.3 : 13);
      machine.read();
    }
    expect(machine.records).toEqual([]);
    machine.stepWall(900);
    machine.advance(1);
    machine.read();
    expect(machine.records).toHaveLength(1);
    expect(machine.records[0]!.aheadMs).toBeGreaterThanOrEqual(899);
    expect(machine.steps).toEqual([]); // logged only from a second up
    // Absorbing it needs no new record: the record's estimate falls as fast as what is left.
    for (let n = 0; n < 1_000; n++) {
      machine.advance(97);
      machine.read();
    }
    expect(machine.records).toHaveLength(1);
  });

  it("never runs logical time more than 1% fast (+1 ms) over any interval, whatever the wall clock does, and never samples ahead of a wall clock that only steps forward", () => {
    const moves = (minStepMs: number) =>
      fc.array(
        fc.record({
          advanceMs: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 100_000 })),
          stepMs: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: minStepMs, max: 7_200_000 }), fc.integer({ min: Math.max(minStepMs, -3), max: 3 })),
          pause: pauses,
        }),
        { minLength: 1, maxLength: 80 },
      );
    // Real time passing right before or after the wall-clock read of a reading's first tries (a
    // collection, a descheduled thread), then a read without a pause.
    const pauses = fc.oneof(
      fc.constant({ beforeMs: 0, afterMs: 0, tries: 0 }),
      fc.record({ beforeMs: fc.double({ min: 0, max: 3, noNaN: true }), afterMs: fc.double({ min: 0, max: 3, noNaN: true }), tries: fc.integer({ min: 1, max: 2 }) }),
    );
    type Pause = { beforeMs: number; afterMs: number; tries: number };
    type Down = { advanceMs: number; stepMs: number; whileStarting: { advanceMs: number; stepMs: number } | null };
    type Move = { advanceMs: number; stepMs: number; pause: Pause; restart?: boolean; down?: Down | null; frozen?: boolean };
    const pausing = (pause: Pause) => {
      let paused = 0;
      return () => (paused++ < pause.tries ? pause : { beforeMs: 0, afterMs: 0 });
    };
    const run = (list: Move[], forwardOnly: boolean): void => {
      const machine = new FakeMachine();
      let restarts = 0;
      const seen: { logical: number; startMs: number; endMs: number; restarts: number }[] = [{ ...machine.timedRead(), restarts }];
      for (const { advanceMs, stepMs, pause, restart, down, frozen } of list) {
        machine.advance(advanceMs);
        machine.stepWall(stepMs);
        if (frozen === true) machine.stepWall(-advanceMs); // the wall clock stood still meanwhile
        machine.pauseAroundWallRead = pausing(pause);
        const start = machine.realMs;
        const out = machine.clock.nowMs();
        if (forwardOnly && out > machine.wallMs) throw new Error(`sampled ${out}, ahead of the wall clock ${machine.wallMs}`);
        machine.pauseAroundWallRead = pausing(pause);
        const read = machine.timedRead();
        seen.push({ ...read, startMs: start, restarts });
        machine.pauseAroundWallRead = null;
        if (restart === true) {
          machine.restart(); // after the step was seen: a step while lockd is down takes effect at once
          restarts++;
          seen.push({ ...machine.timedRead(), restarts });
        }
        if (down !== undefined && down !== null) {
          // Killed after that reading; down for a while, the wall clock stepped meanwhile.
          machine.advance(down.advanceMs);
          machine.stepWall(down.stepMs);
          machine.restartOnSameBoot(down.whileStarting ?? undefined);
          restarts++;
          seen.push({ ...machine.timedRead(), restarts });
        }
      }
      // Logical time, whatever the wall clock did: no lease granted at j ends before ttl / 1.01 - 1 ms
      // (less 1 ms per restart). A lease is timed from before reading j (its request was sent then)
      // to after reading k (the next grant comes after it).
      for (let j = 0; j < seen.length; j++) {
        for (let k = j + 1; k < seen.length; k++) {
          const moved = seen[k]!.logical - seen[j]!.logical;
          const real = seen[k]!.endMs - seen[j]!.startMs;
          // A restart starts from the wall clock's whole milliseconds again: up to 1 ms more each.
          if (moved > real * (1 + SLEW_RATE) + 1 + (seen[k]!.restarts - seen[j]!.restarts) + 1e-6) {
            throw new Error(`readings ${j} and ${k}: logical time moved ${moved} ms in ${real} ms of real time`);
          }
        }
      }
    };
    // Found by a seed (2049956242): a catch-up 52 s long whose ceiling, an epoch-sized double,
    // rounded up to the next whole millisecond by 0.12 µs, which the sample then took.
    const roundedUp: Move[] = [
      { advanceMs: 1, stepMs: 0, pause: { beforeMs: 0, afterMs: 0, tries: 1 } },
      { advanceMs: 0, stepMs: 1, pause: { beforeMs: 0.002445032100979461, afterMs: 0, tries: 2 } },
      { advanceMs: 10376, stepMs: 514, pause: { beforeMs: 0, afterMs: 0, tries: 1 } },
      { advanceMs: 41323, stepMs: 2, pause: { beforeMs: 0, afterMs: 0, tries: 0 } },
      { advanceMs: 0, stepMs: 1, pause: { beforeMs: 0, afterMs: 0, tries: 1 } },
    ];
    fc.assert(
      fc.property(moves(0), (list) => run(list, true)),
      { seed, numRuns: 300, examples: [[roundedUp]] },
    );
    fc.assert(
      fc.property(moves(-7_200_000), (list) => run(list, false)),
      { seed, numRuns: 300 },
    );
    // With restarts in between, each estimating what is left from the last record.
    const withRestarts = fc.array(
      fc.record({
        advanceMs: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 100_000 })),
        stepMs: fc.oneof(fc.constant(0), fc.integer({ min: -7_200_000, max: 7_200_000 }), fc.integer({ min: -3_000, max: 3_000 })),
        pause: pauses,
        restart: fc.boolean(),
      }),
      { minLength: 1, maxLength: 80 },
    );
    fc.assert(
      fc.property(withRestarts, (list) => run(list, false)),
      { seed, numRuns: 500 },
    );
    // Killed and restarted on the same boot, the wall clock stepped while lockd was down: the
    // restart bounds its start by the anchor. The wall clock also drifts (small steps between close
    // readings: running slow or fast), which a clock in step follows.
    const withDowntimes = fc.array(
      fc.record({
        advanceMs: fc.oneof(fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 2_000 })),
        stepMs: fc.oneof(fc.constant(0), fc.integer({ min: -3, max: 3 }), fc.integer({ min: -5_000, max: 5_000 })),
        pause: fc.constant({ beforeMs: 0, afterMs: 0, tries: 0 }),
        down: fc.option(
          fc.record({
            advanceMs: fc.oneof(fc.double({ min: 0, max: 20, noNaN: true }), fc.integer({ min: 0, max: 5_000 })),
            stepMs: fc.integer({ min: -10_000, max: 10_000 }),
            // The wall clock stepped while the restart writes its record, after it read the clocks.
            whileStarting: fc.option(fc.record({ advanceMs: fc.double({ min: 0, max: 3, noNaN: true }), stepMs: fc.integer({ min: -5_000, max: 5_000 }) }), { freq: 3 }),
          }),
          { freq: 4 },
        ),
        frozen: fc.boolean(),
      }),
      { minLength: 1, maxLength: 120 },
    );
    fc.assert(
      fc.property(withDowntimes, (list) => run(list, false)),
      { seed, numRuns: 500 },
    );
  });
});
