/**
 * Retry pacing: exponential backoff with jitter (pure), and a sleep that an AbortSignal cuts short.
 */
import { onAbort } from "./abort-listeners.js";
import { ClientClosedError, RequestAbortedError } from "./errors.js";

/**
 * The longest delay a Node timer takes (2^31 - 1 ms, about 24.8 days). A longer one fires after
 * 1 ms instead, with a warning: every timer of the SDK is capped here, and the code that sets one
 * re-arms it or acts early (a renewal sooner, a timeout after 24.8 days) where that matters.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerDelay(ms: number): number {
  return Math.min(ms, MAX_TIMER_MS);
}

export interface BackoffOptions {
  /** Delay before the first retry, before jitter. */
  readonly baseMs: number;
  /** Largest delay, before jitter. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 25, maxMs: 1000 };

/**
 * The delay before retry number `retry` (1 = first retry): base * 2^(retry-1), capped, then "equal
 * jitter" (a uniform draw in [d/2, d]), so clients that failed together do not retry together and
 * no retry comes back at once.
 */
export function backoffDelayMs(retry: number, options: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(retry - 1, 0), 30);
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** exponent);
  return ceiling / 2 + random() * (ceiling / 2);
}

/**
 * Resolves after `ms`; rejects at once with RequestAbortedError when `signal` aborts, or with
 * ClientClosedError when `closing` (the client's own, aborted by close()) does.
 */
export function sleep(ms: number, signal?: AbortSignal, closing?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (closing?.aborted) return reject(new ClientClosedError());
    if (signal?.aborted) return reject(new RequestAbortedError(signal.reason));
    const stop = () => {
      clearTimeout(timer);
      stopAbort?.();
      stopClose?.();
    };
    const timer = setTimeout(() => {
      stop();
      resolve();
    }, timerDelay(ms));
    const stopAbort =
      signal &&
      onAbort(signal, () => {
        stop();
        reject(new RequestAbortedError(signal.reason));
      });
    const stopClose =
      closing &&
      onAbort(closing, () => {
        stop();
        reject(new ClientClosedError());
      });
  });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new RequestAbortedError(signal.reason);
}
