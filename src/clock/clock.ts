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
export interface Clock {
  /** Wall-clock milliseconds since the unix epoch, a forward step absorbed gradually. May go backwards. */
  nowMs(): number;
}

/**
 * How often the anchor is told the largest sample again while the sample stands (onSample): so that
 * from a time handed out to the anchor's monotonic reading after it there is never 1 ms / 1.01 of
 * real time, the most a restart's 1 ms of slack can take at 1% fast.
 */
export const RETELL_AFTER_MS = 0.5;

/** How much faster than real time the clock may run while it catches up with a forward step. */
export const SLEW_RATE = 0.01;

const FAST = 1 + SLEW_RATE;
const SLOW = 1 - SLEW_RATE;

/**
 * The wall clock is read first, then the monotonic clock: a pause between them (a collection, the
 * thread descheduled) makes the wall reading stale, never ahead, and the ceiling is then below real
 * time by the pause. Below it by less than 1% of a millisecond, the next reading of an honest wall
 * clock can never pass it (the wall clock's whole milliseconds leave no room), but a longer pause
 * would look like a forward step nobody made. So a second monotonic reading before the wall clock
 * measures the pause, and the reads are taken again, up to READ_TRIES times, until it is at most
 * TIGHT_READ_MS (it is a fraction of a microsecond unless something came between them). Should every
 * try be interrupted, the last is used: its pause may then add to how far time can run ahead, as it
 * did before pauses were measured.
 */
export const TIGHT_READ_MS = 0.002;
const READ_TRIES = 3;

/** The wall clock, and the monotonic clock read right after it. */
export interface ClockReading {
  readonly wallMs: number;
  readonly monotonicMs: number;
}

/** The wall clock, and the monotonic clock right after it (see TIGHT_READ_MS). */
function readClocks(sources: Pick<ClockSources, "wallMs" | "monotonicMs">): ClockReading {
  for (let tries = 1; ; tries++) {
    const before = sources.monotonicMs();
    const wallMs = sources.wallMs();
    const monotonicMs = sources.monotonicMs();
    if (monotonicMs - before <= TIGHT_READ_MS || tries === READ_TRIES) return { wallMs, monotonicMs };
  }
}

/**
 * A step at least this large is logged: one measured more than 1 ms short of it (see `offMs` in
 * nowMs), so that a step of a second is logged whichever whole milliseconds the wall clock read.
 */
const REPORTED_STEP_MS = 1000;

export interface ClockSources {
  /** Milliseconds since the unix epoch (Date.now). */
  readonly wallMs: () => number;
  /** Milliseconds on a clock that never steps (performance.now). */
  readonly monotonicMs: () => number;
  /**
   * Told once per step of a second or more, for the log: how far the wall clock is ahead of the clock
   * (negative: behind), and the time the clock handed out then.
   */
  readonly onStep: (aheadMs: number, atMs: number) => void;
  /**
   * Told whenever the wall clock is further ahead of the clock than the last record says is left
   * (see unabsorbedStepMs), however small the step, so that a restart, which can only estimate
   * from the record, never takes more of it at once than the clock had left to absorb. Returns
   * whether the record is durable; until one is, the clock asks again at every reading.
   */
  readonly onRecord: (step: ClockStep) => boolean;
  /**
   * Told of the largest sample so far, before it is handed out, whenever it grows and again after
   * RETELL_AFTER_MS of readings without growing (a wall clock frozen or running slow, which the
   * clock follows while in step): the clock anchor a restart bounds its logical time by
   * (leadSinceAnchorMs) must be at or after the last time handed out, and less than a millisecond of
   * real time before it (the anchor reads the machine's monotonic clock after it).
   */
  readonly onSample?: (sampleMs: number) => void;
}

/** A step the clock recorded: the wall clock was `aheadMs` ahead of it when it read `atMs`. */
export interface ClockStep {
  readonly aheadMs: number;
  readonly atMs: number;
}

/**
 * The monotonic clock and the clock's sample read at one moment, with the boot of the machine they
 * were read on: the monotonic clock is the machine's (CLOCK_MONOTONIC), so two readings of one boot
 * measure the real time between them whichever processes took them.
 */
export interface ClockAnchor {
  readonly bootId: string;
  readonly monotonicMs: number;
  /** What the clock handed out then (the wall clock less any step not yet absorbed). */
  readonly sampleMs: number;
}

/**
 * How much of the wall clock's lead a restart must still absorb so that its logical time starts no
 * further ahead than `anchor`, the clock's last sample before the restart, plus the real time since
 * at 1% fast (and the 1 ms the clock's start adds for the wall clock's whole milliseconds): whatever
 * the wall clock did while lockd was down (a forward step), and what was left to absorb when the
 * anchor was taken. The anchor is written before a sample is handed out, whenever it grows and at
 * least every RETELL_AFTER_MS while it stands, so it is at or after the last time handed out and
 * less than 1 ms / 1.01 of real time behind it: from there on logical time runs at most 1% faster
 * than real time (and the restart's 1 ms), as it may while lockd runs, whatever the clock did before
 * (ran slow, stood still, ran in step until a kill that leaves no trace of when it came). Zero if
 * the machine restarted in between (the monotonic clock starts over with it, so the time between is
 * unknown). Time the machine spent suspended counts as a step (the monotonic clock does not count
 * it): that only lengthens leases.
 * Not rounded: rounded up, a restart soon after a wall clock that kept time read whole milliseconds
 * past the anchor's would start up to 1 ms behind it, as after a step.
 */
export function leadSinceAnchorMs(anchor: ClockAnchor, bootId: string, monotonicMs: number, wallMs: number): number {
  // A monotonic clock behind the anchor's (a container restored elsewhere, a time namespace) says
  // nothing about the time between: unknown, as after a reboot.
  if (anchor.bootId !== bootId || monotonicMs < anchor.monotonicMs) return 0;
  return Math.max(0, wallMs - (anchor.sampleMs + (monotonicMs - anchor.monotonicMs) * (1 + SLEW_RATE)));
}

/**
 * A record says this much more than is left, so that a new one is written only once the lag has
 * grown by as much: at most one synced write per second of growth, even for a wall clock that runs
 * fast for hours. A restart then carries up to a second more than is left (leases last longer).
 * While the wall clock keeps time no reading is a forward step at all, so nothing is recorded.
 */
const RECORD_SLACK_MS = 1_000;

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

/** Where a restarted clock starts: how far behind the wall clock, and the record it starts from. */
export interface ClockResumption {
  /** What the last record says may be left of a step, rounded up. */
  readonly carriedMs: number;
  /** What the last anchor says the wall clock is ahead (same boot only; not rounded: see leadSinceAnchorMs). */
  readonly anchorLeadMs: number;
  /** The larger of the two: both bound the same lead, and neither is added to the other. */
  readonly unabsorbedMs: number;
  /** The record the clock starts from. */
  readonly record: ClockStep | null;
  /** A new record of what is left, to write before serving; null when nothing is left. */
  readonly newRecord: ClockStep | null;
}

/**
 * How a restart resumes the clock, from the last record (what the clock before may have had left of
 * a forward step, estimated at the recovered time) and the last anchor (same boot only), with the
 * machine's clocks read at `monotonicMs` and then `wallMs`.
 */
export function resumeClockAt(
  lastRecord: ClockStep | null,
  recoveredMs: number,
  lastAnchor: ClockAnchor | null,
  bootId: string | null,
  monotonicMs: number,
  wallMs: number,
): ClockResumption {
  // Rounded up: carrying over more than is left only makes leases last longer.
  const carriedMs = lastRecord === null ? 0 : Math.ceil(unabsorbedStepMs(lastRecord, recoveredMs));
  const anchorLeadMs = lastAnchor === null || bootId === null ? 0 : leadSinceAnchorMs(lastAnchor, bootId, monotonicMs, wallMs);
  const unabsorbedMs = Math.max(carriedMs, anchorLeadMs);
  if (unabsorbedMs <= 0) return { carriedMs, anchorLeadMs, unabsorbedMs, record: lastRecord, newRecord: null };
  // The clock starts exactly that far behind the wall clock: recorded as such (1 ms more for the
  // wall clock's whole milliseconds), so the next restart carries it less what this run absorbs.
  // The old record would not do: it was estimated at the recovered time, and its estimate goes on
  // falling through the downtime, which the carried amount did not; the clock's first reading
  // would then find more left than the record says and record again, with a second of slack: a
  // second more to absorb after every restart.
  const newRecord = { aheadMs: unabsorbedMs + 1, atMs: wallMs - unabsorbedMs };
  return { carriedMs, anchorLeadMs, unabsorbedMs, record: newRecord, newRecord };
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
  /**
   * While the ceiling grows at one rate reading after reading (catching up, running slow, or in step
   * with the wall clock's next millisecond further than that growth), it is
   * computed from where that run began, never by adding each reading's share: readings come every few
   * microseconds, and rounding each sum to the ceiling's precision (about 0.24 µs at today's epoch
   * times) could add up to half of it per reading, in the same direction when readings are evenly
   * spaced: up to 2% instead of 1% at 13 µs apart. `anchorRate` is 0 outside such a run.
   */
  private anchorMs = 0;
  private anchorMonotonicMs = 0;
  private anchorRate = 0;
  /** The largest sample onSample was told of, and when (the monotonic clock of that reading). */
  private toldSampleMs = Number.NEGATIVE_INFINITY;
  private toldMonotonicMs = Number.NEGATIVE_INFINITY;
  /** A reported step not yet absorbed: report the next one only after this. */
  private stepReported = false;

  /** The last record: what a restart would carry over (null: nothing). */
  private lastRecord: ClockStep | null;

  /**
   * `unabsorbedMs`: how much of a forward step the clock before a restart had not absorbed yet (see
   * unabsorbedStepMs), absorbed from here on instead of taking effect at once; `lastRecord` is the
   * record it was estimated from. `startReading`: the clocks as the restart read them to estimate
   * `unabsorbedMs` (the monotonic one on `sources`' scale), so that a step of the wall clock after
   * that reading (while the restart writes its record) is met as a step, not taken at once; without
   * it the clock starts from a reading of its own.
   */
  constructor(
    private readonly sources: ClockSources,
    unabsorbedMs = 0,
    lastRecord: ClockStep | null = null,
    startReading: ClockReading | null = null,
  ) {
    const reading = startReading ?? readClocks(sources);
    // Less the most a reading may be stale: the last reading before the restart may have hidden that
    // much of a forward step from the record (its wall reading was that old), and a restart must not
    // take it at once on top of the wall clock's 1 ms.
    this.ceilingMs = reading.wallMs + 1 - TIGHT_READ_MS - unabsorbedMs;
    this.lastMonotonicMs = reading.monotonicMs;
    this.lastRecord = lastRecord;
  }

  nowMs(): number {
    const { wallMs: wall, monotonicMs: monotonic } = readClocks(this.sources);
    const elapsed = monotonic - this.lastMonotonicMs;
    const most = this.grown(FAST, monotonic, elapsed);
    const behind = this.grown(SLOW, monotonic, elapsed);
    // How far a step moved the wall clock, for the log: measured from where an honest wall clock
    // would read now (about its last reading, the ceiling less its 1 ms of whole milliseconds, plus
    // the real time since), the same way for both directions. Whole milliseconds put that within
    // 1 ms of the step either way, which REPORTED_STEP_MS allows for.
    const offMs = wall - (this.ceilingMs - 1 + elapsed);
    let sample: number;
    let aheadMs = 0;
    if (wall >= most) {
      // A forward step: absorbed at SLEW_RATE.
      aheadMs = offMs;
      this.anchor(FAST);
      sample = this.grownFloor(FAST, monotonic);
      this.ceilingMs = most;
      const leftMs = wall - most;
      if (leftMs > (this.lastRecord === null ? 0 : unabsorbedStepMs(this.lastRecord, sample))) {
        const record = { aheadMs: leftMs + RECORD_SLACK_MS, atMs: sample };
        if (this.sources.onRecord(record)) this.lastRecord = record;
      }
    } else if (wall + 2 >= behind) {
      // In step. (Up to a millisecond behind is the wall clock's whole milliseconds, not a step.)
      // The ceiling is the wall clock's next millisecond, or grows at 1 + rate where that is less:
      // a run of such readings is computed from its start like a catch-up, or rounding would add up.
      if (most <= wall + 1) {
        this.anchor(FAST);
        this.ceilingMs = most;
      } else {
        this.anchorRate = 0;
        this.ceilingMs = wall + 1;
      }
      sample = wall;
    } else {
      // Behind: a backward step. Not followed back, and not stood still at either: a lease granted
      // meanwhile would end early when the wall clock is put right and time moved on with it. Time
      // runs on at (1 - rate) of real time until the wall clock meets it.
      aheadMs = offMs;
      this.anchor(SLOW);
      sample = this.grownFloor(SLOW, monotonic);
      this.ceilingMs = behind;
    }
    this.lastMonotonicMs = monotonic;
    if (!this.stepReported && Math.abs(aheadMs) > REPORTED_STEP_MS - 1) {
      this.stepReported = true;
      this.sources.onStep(Math.round(aheadMs), sample);
    } else if (this.stepReported && Math.abs(aheadMs) < REPORTED_STEP_MS / 2) {
      this.stepReported = false;
    }
    if (sample > this.toldSampleMs || monotonic - this.toldMonotonicMs >= RETELL_AFTER_MS) {
      this.toldSampleMs = Math.max(this.toldSampleMs, sample);
      this.toldMonotonicMs = monotonic;
      this.sources.onSample?.(this.toldSampleMs);
    }
    return sample;
  }

  /** The ceiling grown at `rate` to `monotonic`, `elapsed` after the last reading. */
  private grown(rate: number, monotonic: number, elapsed: number): number {
    if (this.anchorRate === rate) return this.anchorMs + (monotonic - this.anchorMonotonicMs) * rate;
    return this.ceilingMs + elapsed * rate;
  }

  /**
   * `grown` within a run at `rate` (after `anchor(rate)`), floored to whole milliseconds from the
   * exact sum: `grown` is rounded to the ceiling's precision (about 0.24 µs at today's epoch times),
   * and rounded up to a whole millisecond it would hand out one a fraction of a microsecond early.
   */
  private grownFloor(rate: number, monotonic: number): number {
    if (this.anchorRate !== rate) throw new Error(`clock: no run at rate ${rate} to floor`);
    return floorOfSum(this.anchorMs, (monotonic - this.anchorMonotonicMs) * rate);
  }

  /** The ceiling grows at `rate` from the last reading on: a run at that rate starts there, unless it runs already. */
  private anchor(rate: number): void {
    if (this.anchorRate === rate) return;
    this.anchorRate = rate;
    this.anchorMs = this.ceilingMs;
    this.anchorMonotonicMs = this.lastMonotonicMs;
  }
}

/**
 * floor(base + delta) for an epoch-sized `base` and a small `delta`, without rounding the sum to the
 * precision of `base` first: the whole milliseconds of `base` are split off (exactly), and the rest
 * is added at the small magnitude, where doubles are fine-grained.
 */
function floorOfSum(base: number, delta: number): number {
  const whole = Math.floor(base);
  return whole + Math.floor(base - whole + delta);
}

export function systemClock(
  onStep: ClockSources["onStep"],
  onRecord: ClockSources["onRecord"],
  onSample: NonNullable<ClockSources["onSample"]>,
  unabsorbedMs = 0,
  lastRecord: ClockStep | null = null,
  startReading: ClockReading | null = null,
): Clock {
  const sources = { wallMs: Date.now, monotonicMs: () => performance.now(), onStep, onRecord, onSample };
  return new SteadyWallClock(sources, unabsorbedMs, lastRecord, startReading);
}

/** The system's wall clock, then its monotonic clock as systemClock reads it (see TIGHT_READ_MS). */
export function readSystemClocks(): ClockReading {
  return readClocks({ wallMs: Date.now, monotonicMs: () => performance.now() });
}
