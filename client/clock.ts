/**
 * The client's clock, in milliseconds from an arbitrary origin. Lease deadlines are measured on it,
 * never on the server's times, so skew between machines cannot stretch how long a client believes it
 * holds a lock. It must never run slower than real time, nor go backwards.
 */
export type MonotonicClock = () => number;

/**
 * Changes of the wall clock against the monotonic one smaller than this are taken for noise (Date.now
 * is whole milliseconds, and the two are read one after the other), never for a step back: following
 * them back and forth would make the clock gain a little at every reading.
 */
const WALL_NOISE_MS = 20;

/**
 * A clock that counts time the machine spent suspended. The monotonic clock (performance.now, which
 * is CLOCK_MONOTONIC) stands still during a suspend, while the server's leases run on; the wall
 * clock goes on. Between two readings this clock advances by the larger of the two clocks' advances,
 * so it never runs slower than either, and never goes backwards: a wall clock stepped back is ignored
 * (the monotonic clock's advance counts), and one stepped forward moves it forward, which can only
 * end leases early. Wall-clock changes against the monotonic clock within WALL_NOISE_MS are noise.
 */
export function suspendAwareClock(monotonic: () => number, wall: () => number): MonotonicClock {
  const originMs = monotonic();
  /** How far the wall clock was ahead of the monotonic one when last counted. */
  let countedOffsetMs = wall() - originMs;
  /** Time the wall clock advanced beyond the monotonic one (a suspend, a forward step). */
  let gainedMs = 0;
  let lastMs = originMs;
  return () => {
    const monotonicMs = monotonic();
    const offsetMs = wall() - monotonicMs;
    if (offsetMs > countedOffsetMs) {
      gainedMs += offsetMs - countedOffsetMs;
      countedOffsetMs = offsetMs;
    } else if (offsetMs < countedOffsetMs - WALL_NOISE_MS) {
      // Stepped back (or slewed back that far): count from here, so a suspend after it counts whole.
      countedOffsetMs = offsetMs;
    }
    lastMs = Math.max(lastMs, monotonicMs + gainedMs);
    return lastMs;
  };
}

/** The default clock of every client: the monotonic clock, plus time spent suspended. */
export const defaultClock: MonotonicClock = suspendAwareClock(
  () => performance.now(),
  () => Date.now(),
);
