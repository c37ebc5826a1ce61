/**
 * Many listeners on one AbortSignal, at constant cost each. EventTarget checks every listener added
 * against all those already there, so thousands of calls waiting on one signal (an application's
 * shutdown signal passed to every call, or the client's own close) cost time quadratic in their
 * number: 20,000 of them froze the event loop for seconds, long enough for leases to pass their
 * deadlines. Here a signal has one real listener while anyone waits on it, and it calls a Set.
 */
class Waiters {
  readonly listeners = new Set<() => void>();
  private readonly fire = (): void => {
    waitersOf.delete(this.signal);
    // As EventTarget does: one stopped by an earlier one while the signal calls them is not called,
    // and one that throws does not keep the others from being called (its error is thrown after).
    for (const listener of [...this.listeners]) {
      if (!this.listeners.has(listener)) continue;
      try {
        listener();
      } catch (error) {
        process.nextTick(() => {
          throw error;
        });
      }
    }
  };

  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener("abort", this.fire, { once: true });
  }

  remove(listener: () => void): void {
    if (!this.listeners.delete(listener) || this.listeners.size > 0) return;
    // Nobody waits any more: a long-lived signal keeps nothing of the calls that ended.
    this.signal.removeEventListener("abort", this.fire);
    if (waitersOf.get(this.signal) === this) waitersOf.delete(this.signal);
  }
}

const waitersOf = new WeakMap<AbortSignal, Waiters>();

/**
 * Calls `listener` once, when `signal` aborts; returns the function that stops waiting. The caller
 * checks `signal.aborted` first: a signal already aborted never fires.
 */
export function onAbort(signal: AbortSignal, listener: () => void): () => void {
  let waiters = waitersOf.get(signal);
  if (waiters === undefined) {
    waiters = new Waiters(signal);
    waitersOf.set(signal, waiters);
  }
  const registered = waiters;
  registered.listeners.add(listener);
  return () => registered.remove(listener);
}
