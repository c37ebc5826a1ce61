/**
 * Where the leader's time stamps come from. The state machine never reads a clock itself.
 *
 * Leases are durations granted at a wall-clock instant, so a wall clock stepped forward (an NTP
 * step, a VM restored or migrated, an operator's `date -s`) would end every lease early by the size
 * of the step, while its holder, timing the lease on its own monotonic clock, still believes it holds
 * it: two holders. So the time handed out runs at the monotonic clock's rate and only slews towards
 * the wall clock, at most `SLEW_RATE` faster or slower: after a forward step it catches up gradually,
 * and a lease lasts at least 1 / (1 + rate) of its ttl in real time. After a backward step it keeps
 * moving at 99% of real time until the wall clock has caught up, rather than standing still: time
 * that stood still and then caught up would run fast, and shorten the leases granted meanwhile.
 */
export interface Clock {
  /** Wall-clock milliseconds since the unix epoch, slewed as above; never goes backwards. */
  nowMs(): number;
}

/** How much faster or slower than real time the clock may run while it converges on the wall clock. */
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
 * What is left of a forward step, at the latest, once the clock has reached `nowMs`: since the step
 * it ran at least 99% of real time, so at most (now - at) / 0.99 of real time passed, and it absorbed
 * at most 1% of that. Zero when nothing is left (or the step was backwards).
 */
export function unabsorbedStepMs(step: ClockStep, nowMs: number): number {
  const realMs = Math.max(0, nowMs - step.atMs) / (1 - SLEW_RATE);
  return Math.max(0, step.aheadMs - realMs * SLEW_RATE);
}

/**
 * Two readings j < k of this clock differ by at most (1 + rate) x (monotonic time between them) + 1 ms
 * and by at least (1 - rate) x that time - 1 ms, however the wall clock moves; while the wall clock
 * keeps real time, every reading is the wall clock's.
 */
export class SteadyWallClock implements Clock {
  /** The time handed out, with its fraction: never behind the wall clock's reading, never decreasing. */
  private timeMs: number;
  /**
   * The most the clock may reach: it grows at (1 + rate) of the monotonic clock and is kept within
   * 1 ms of the time handed out or of the wall clock (whose readings are whole milliseconds, so real
   * time is within 1 ms after them), whichever is later. So it bounds how fast the clock can run,
   * and a forward step of the wall clock shows as the wall clock passing it.
   */
  private ceilingMs: number;
  private lastMonotonicMs: number;
  /** A reported step not yet absorbed: report the next one only after this. */
  private stepReported = false;

  /**
   * `startMs`: where time resumes (the recovered logical time) if the wall clock is behind it.
   * `unabsorbedMs`: how much of a forward step the clock before a restart had not absorbed yet
   * (see unabsorbedStepMs); it is absorbed from here on instead of taking effect at once.
   */
  constructor(
    private readonly sources: ClockSources,
    startMs = 0,
    unabsorbedMs = 0,
  ) {
    this.timeMs = Math.max(sources.wallMs() - unabsorbedMs, startMs);
    this.ceilingMs = this.timeMs + 1;
    this.lastMonotonicMs = sources.monotonicMs();
  }

  nowMs(): number {
    // The wall clock first: a pause between the two reads then makes the wall reading stale (the
    // clock moves on at least 99% of the pause, which is still real time), never ahead of real time.
    const wall = this.sources.wallMs();
    const monotonic = this.sources.monotonicMs();
    const elapsed = monotonic - this.lastMonotonicMs;
    this.lastMonotonicMs = monotonic;
    const most = this.ceilingMs + elapsed * (1 + SLEW_RATE);
    const least = this.timeMs + elapsed * (1 - SLEW_RATE);
    const aheadMs = wall - (this.timeMs + elapsed);
    this.timeMs = Math.min(most, Math.max(wall, least));
    const handedOut = Math.floor(this.timeMs);
    this.ceilingMs = Math.min(most, Math.max(wall, handedOut) + 1);
    if (!this.stepReported && Math.abs(aheadMs) >= REPORTED_STEP_MS) {
      this.stepReported = true;
      this.sources.onStep(Math.round(aheadMs), handedOut);
    } else if (this.stepReported && Math.abs(aheadMs) < REPORTED_STEP_MS / 2) {
      this.stepReported = false;
    }
    return handedOut;
  }
}

export function systemClock(onStep: (aheadMs: number, atMs: number) => void, startMs = 0, unabsorbedMs = 0): Clock {
  return new SteadyWallClock({ wallMs: Date.now, monotonicMs: () => performance.now(), onStep }, startMs, unabsorbedMs);
}
