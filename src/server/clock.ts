/**
 * Where the leader's time stamps come from. The state machine never reads a clock itself.
 *
 * The contract is `now = max(previous now, clock sample)`: after a backward step of the wall clock,
 * logical time stands still until the wall clock catches up. A forward step needs more care: leases
 * are durations granted at a wall-clock instant, so a wall clock stepped forward (an NTP step, a VM
 * restored or migrated, an operator's `date -s`) would end every lease early by the size of the step,
 * while its holder, timing the lease on its own monotonic clock, still believes it holds it: two
 * holders. So the sample never runs ahead of real time by more than `SLEW_RATE` of the time since it
 * was last in step with the wall clock: a forward step is caught up at that rate, and a lease granted
 * while the clock is in step lasts at least 1 / (1 + rate) of its ttl in real time.
 */
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
  /** Milliseconds on a clock that never steps (performance.now). */
  readonly monotonicMs: () => number;
  /**
   * Told once per step of a second or more: how far the wall clock is ahead of the clock (negative:
   * behind), and the time the clock handed out then.
   */
  readonly onStep: (aheadMs: number, atMs: number) => void;
}

/** A step the clock reported: the wall clock was `aheadMs` ahead of it when it read `atMs`. */
export interface ClockStep {
  readonly aheadMs: number;
  readonly atMs: number;
}

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
 * While the wall clock only ever steps forward, two readings j < k differ by at most (1 + rate) x
 * (monotonic time between them) + 1 ms; while it keeps real time, every reading is the wall clock's.
 */
export class SteadyWallClock implements Clock {
  /**
   * The most the sample may be: an estimate of real time from above. It grows with the monotonic
   * clock at up to (1 + rate) and is kept within 1 ms of the wall clock while that is in step (whose
   * readings are whole milliseconds, so real time is within 1 ms after them), so a forward step shows
   * as the wall clock passing it. While the wall clock is behind it (a backward step) it goes on at
   * (1 - rate): it does not follow the wall clock down, so the wall clock coming back to the right
   * time is not taken for a forward step, and it meets a wall clock that stays behind in time.
   */
  private ceilingMs: number;
  private lastMonotonicMs: number;
  /** A reported step not yet absorbed: report the next one only after this. */
  private stepReported = false;

  /**
   * `unabsorbedMs`: how much of a forward step the clock before a restart had not absorbed yet (see
   * unabsorbedStepMs); it is absorbed from here on instead of taking effect at once.
   */
  constructor(
    private readonly sources: ClockSources,
    unabsorbedMs = 0,
  ) {
    this.ceilingMs = sources.wallMs() + 1 - unabsorbedMs;
    this.lastMonotonicMs = sources.monotonicMs();
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
      // Behind: a backward step. The pipeline holds logical time still meanwhile.
      aheadMs = wall + 1 - behind;
      this.ceilingMs = behind;
      sample = wall;
    }
    if (!this.stepReported && Math.abs(aheadMs) >= REPORTED_STEP_MS) {
      this.stepReported = true;
      this.sources.onStep(Math.round(aheadMs), sample);
    } else if (this.stepReported && Math.abs(aheadMs) < REPORTED_STEP_MS / 2) {
      this.stepReported = false;
    }
    return sample;
  }
}

export function systemClock(onStep: (aheadMs: number, atMs: number) => void, unabsorbedMs = 0): Clock {
  return new SteadyWallClock({ wallMs: Date.now, monotonicMs: () => performance.now(), onStep }, unabsorbedMs);
}
