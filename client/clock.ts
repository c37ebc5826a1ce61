/**
 * The client's monotonic clock, in milliseconds from an arbitrary origin. Lease deadlines are
 * measured on it, never on the wall clock or the server's times, so neither a wall-clock step nor
 * skew between machines can stretch how long a client believes it holds a lock.
 */
export type MonotonicClock = () => number;

export const monotonicClock: MonotonicClock = () => performance.now();
