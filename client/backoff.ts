/**
 * Retry pacing: exponential backoff with jitter (pure), and a sleep that an AbortSignal cuts short.
 */
import { RequestAbortedError } from "./errors.js";

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

/** Resolves after `ms`, or rejects with RequestAbortedError as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RequestAbortedError(signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new RequestAbortedError(signal!.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new RequestAbortedError(signal.reason);
}
