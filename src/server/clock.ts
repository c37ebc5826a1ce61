/**
 * Where the leader's time stamps come from. The state machine never reads a clock itself.
 *
 * Leases are durations granted at a wall-clock instant, so a wall clock stepped forward (an NTP
 * step, a VM restored or migrated, an operator's `date -s`) would end every lease early by the size
 * of the step, while its holder, timing the lease on its own monotonic clock, still believes it holds
 * it: two holders. So the time handed out never runs more than `MAX_CATCH_UP_RATE` faster than the
 * monotonic clock: after a forward step it catches up with the wall clock gradually, and a lease lasts
 * at least 1 / (1 + rate) of its ttl in real time. A backward step is already safe: the pipeline never
 * lets logical time go back, so time stands still until the wall clock has caught up.
 */
export interface Clock {
  /** Wall-clock milliseconds since the unix epoch. May go backwards; the state machine never does. */
  nowMs(): number;
}

/** How much faster than real time the clock may run while it catches up with a wall clock ahead of it. */
export const MAX_CATCH_UP_RATE = 0.01;

/** A step at least this large is logged. */
const REPORTED_STEP_MS = 1000;

export interface ClockSources {
  /** Milliseconds since the unix epoch (Date.now). */
  readonly wallMs: () => number;
  /** Milliseconds on a clock that never steps (performance.now). */
  readonly monotonicMs: () => number;
  /** Told once per step of a second or more: how far the wall clock is ahead of real time (negative: behind). */
  readonly onStep: (aheadMs: number) => void;
}

export class SteadyWallClock implements Clock {
  /**
   * The latest time the clock may hand out: it grows with the monotonic clock at (1 + rate) and is
   * never more than 1 ms past the wall clock (whose readings are whole milliseconds, so real time is
   * within 1 ms after them). Any two readings j < k therefore differ by at most
   * (1 + rate) x (monotonic time between them) + 1 ms, however the wall clock moves.
   */
  private ceilingMs: number;
  private lastMonotonicMs: number;
  /** A reported step not yet absorbed: report the next one only after this. */
  private stepReported = false;

  constructor(private readonly sources: ClockSources) {
    this.ceilingMs = sources.wallMs() + 1;
    this.lastMonotonicMs = sources.monotonicMs();
  }

  nowMs(): number {
    const wall = this.sources.wallMs();
    const monotonic = this.sources.monotonicMs();
    const grown = this.ceilingMs + (monotonic - this.lastMonotonicMs) * (1 + MAX_CATCH_UP_RATE);
    this.lastMonotonicMs = monotonic;
    if (wall < grown) {
      // In step with real time, or behind it (a backward step: the pipeline holds logical time still).
      if (!this.stepReported && grown - (wall + 1) >= REPORTED_STEP_MS) this.report(wall + 1 - grown);
      else if (this.stepReported && grown - (wall + 1) < REPORTED_STEP_MS) this.stepReported = false;
      this.ceilingMs = Math.min(grown, wall + 1);
      return wall;
    }
    // Ahead of real time: a forward step, absorbed at MAX_CATCH_UP_RATE.
    if (!this.stepReported && wall - grown >= REPORTED_STEP_MS) this.report(wall - grown);
    this.ceilingMs = grown;
    return Math.floor(grown);
  }

  private report(aheadMs: number): void {
    this.stepReported = true;
    this.sources.onStep(Math.round(aheadMs));
  }
}

export function systemClock(onStep: (aheadMs: number) => void): Clock {
  return new SteadyWallClock({ wallMs: Date.now, monotonicMs: () => performance.now(), onStep });
}
