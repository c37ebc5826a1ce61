/**
 * Where the leader's time stamps come from. The state machine never reads a clock itself.
 *
 * The contract is `now = max(previous now, clock sample)`, so logical time never goes back (after a
 * restart with the wall clock behind the recovered time, it stands still until the wall clock catches
 * up). Steps of the wall clock while the leader runs need more care. Leases are durations granted
 * at a wall-clock instant, so a wall clock stepped forward (an NTP step, a VM
 * restored or migrated, an operator's `date -s`) would end every lease early by the size of the step,
 * while its holder, timing the lease on its own monotonic clock, still believes it holds it: two
 * holders. So the sample never runs ahead of real time by more than `SLEW_RATE` of the time since it
 * was last in step with the wall clock: a forward step is caught up at that rate. A backward step is
 * met the other way: the sample runs on at (1 - rate) of real time until the wall clock catches up,
 * rather than standing still and jumping when the wall clock is put right. Either way logical time
 * never moves more than (1 + rate) x real time + 1 ms, so every lease lasts at least 1 / (1 + rate)
 * of its ttl (less 1 ms) in real time, whatever the wall clock does while the leader runs.
 */
import { readFileSync } from "node:fs";

export interface Clock {
  /** Wall-clock milliseconds since the unix epoch, a forward step absorbed gradually. May go backwards. */
  nowMs(): number;
}

/** How much faster than real time the clock may run while it catches up with a forward step. */
export const SLEW_RATE = 0.01;

/** A step at least this large is logged. */
const REPORTED_STEP_MS = 1000;

export interface ClockSources {
  /** Milliseconds since the unix epoch (Date.now). */
  readonly wallMs: () => number;
  /**
   * Milliseconds on a clock that never steps. The server's counts from the machine's boot
   * (CLOCK_MONOTONIC), so that a restart within the same boot can resume the clock (ClockAnchor).
   */
  readonly monotonicMs: () => number;
  /**
   * Told once per step of a second or more: how far the wall clock is ahead of the clock (negative:
   * behind), the time the clock handed out then, and the clock's state then.
   */
  readonly onStep: (aheadMs: number, atMs: number, anchor: ClockAnchor) => void;
}

/** A step the clock reported: the wall clock was `aheadMs` ahead of it when it read `atMs`. */
export interface ClockStep {
  readonly aheadMs: number;
  readonly atMs: number;
}

/**
 * The clock's whole state at one moment: its ceiling, and the monotonic reading then. A clock started
 * from it behaves as if it had run on without being read, provided its monotonic clock is the same
 * one (same machine, same boot), which then measures the time in between exactly, downtime included.
 */
export interface ClockAnchor {
  readonly ceilingMs: number;
  readonly monotonicMs: number;
}

/**
 * How a clock starts: fresh from the wall clock, with what a previous clock left of a forward step to
 * absorb (an estimate, see unabsorbedStepMs), or resumed from an anchor of the same monotonic clock.
 */
export type ClockStart = { readonly kind: "fresh"; readonly unabsorbedMs: number } | { readonly kind: "resumed"; readonly anchor: ClockAnchor };

/**
 * At most what is left of a forward step once logical time has reached `nowMs`: logical time never
 * runs more than 1% faster than real time, so at least (now - at) / 1.01 of real time has passed since
 * the step was seen, and the clock absorbs 1% of real time while a step is left. Carrying over more
 * than is left only makes leases last longer. Zero when nothing is left (or the step was backwards).
 */
export function unabsorbedStepMs(step: ClockStep, nowMs: number): number {
  const realMs = Math.max(0, nowMs - step.atMs) / (1 + SLEW_RATE);
  return Math.max(0, step.aheadMs - realMs * SLEW_RATE);
}

/**
 * Whatever the wall clock does, the largest readings up to j and up to k > j (the logical times the
 * pipeline keeps) differ by at most (1 + rate) x (monotonic time between them) + 1 ms; while the wall
 * clock keeps real time, every reading is the wall clock's.
 */
export class SteadyWallClock implements Clock {
  /**
   * The most the sample may be: an estimate of real time from above. It grows with the monotonic
   * clock at up to (1 + rate) and is kept within 1 ms of the wall clock while that is in step (whose
   * readings are whole milliseconds, so real time is within 1 ms after them), so a forward step shows
   * as the wall clock passing it. While the wall clock is behind it (a backward step) it goes on at
   * (1 - rate), and so does the sample: it does not follow the wall clock down, so the wall clock
   * coming back to the right time is not taken for a forward step, and it meets a wall clock that
   * stays behind in time. The sample is never more than 1 ms below it, so no later sample can jump.
   */
  private ceilingMs: number;
  private lastMonotonicMs: number;
  /** A reported step not yet absorbed: report the next one only after this. */
  private stepReported = false;

  /**
   * Fresh, `unabsorbedMs` is how much of a forward step the clock before a restart had not absorbed
   * yet (see unabsorbedStepMs): it is absorbed from here on instead of taking effect at once. Resumed,
   * the clock goes on from the anchor, and reports what it finds at its first reading like any step.
   */
  constructor(
    private readonly sources: ClockSources,
    start: ClockStart = { kind: "fresh", unabsorbedMs: 0 },
  ) {
    if (start.kind === "resumed") {
      this.ceilingMs = start.anchor.ceilingMs;
      this.lastMonotonicMs = start.anchor.monotonicMs;
    } else {
      this.ceilingMs = sources.wallMs() + 1 - start.unabsorbedMs;
      this.lastMonotonicMs = sources.monotonicMs();
    }
  }

  nowMs(): number {
    // The wall clock first: a pause between the two reads then makes the wall reading stale, never
    // ahead of the monotonic reading.
    const wall = this.sources.wallMs();
    const monotonic = this.sources.monotonicMs();
    const elapsed = monotonic - this.lastMonotonicMs;
    this.lastMonotonicMs = monotonic;
    const most = this.ceilingMs + elapsed * (1 + SLEW_RATE);
    const behind = this.ceilingMs + elapsed * (1 - SLEW_RATE);
    let sample: number;
    let aheadMs = 0;
    if (wall >= most) {
      // A forward step: absorbed at SLEW_RATE.
      aheadMs = wall - (this.ceilingMs + elapsed);
      this.ceilingMs = most;
      sample = Math.floor(most);
    } else if (wall + 2 >= behind) {
      // In step. (Up to a millisecond behind is the wall clock's whole milliseconds, not a step.)
      this.ceilingMs = Math.min(most, wall + 1);
      sample = wall;
    } else {
      // Behind: a backward step. Not followed back, and not stood still at either: a lease granted
      // meanwhile would end early when the wall clock is put right and time moved on with it. Time
      // runs on at (1 - rate) of real time until the wall clock meets it.
      aheadMs = wall + 1 - behind;
      this.ceilingMs = behind;
      sample = Math.floor(behind);
    }
    if (!this.stepReported && Math.abs(aheadMs) >= REPORTED_STEP_MS) {
      this.stepReported = true;
      this.sources.onStep(Math.round(aheadMs), sample, { ceilingMs: this.ceilingMs, monotonicMs: monotonic });
    } else if (this.stepReported && Math.abs(aheadMs) < REPORTED_STEP_MS / 2) {
      this.stepReported = false;
    }
    return sample;
  }
}

/** This boot of the machine (Linux), or null where it cannot be told: then no clock is resumed. */
export function currentBootId(): string | null {
  try {
    const id = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    return id === "" ? null : id;
  } catch {
    return null;
  }
}

/** Milliseconds since the machine booted (CLOCK_MONOTONIC on Linux): the same clock for every process of one boot. */
export function bootMonotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000n) / 1_000;
}

export function systemClock(onStep: ClockSources["onStep"], start?: ClockStart): Clock {
  return new SteadyWallClock({ wallMs: Date.now, monotonicMs: bootMonotonicMs, onStep }, start);
}
