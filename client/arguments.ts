/**
 * Checks of what callers pass the SDK. A mistake is an InvalidArgumentError that names the argument
 * and shows the value, thrown before anything is sent: never a TypeError from deep inside, and never a
 * request the server would have to refuse.
 */
import { DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import { InvalidArgumentError } from "./errors.js";

/** Largest ttl the SDK lets through; the server applies its own --max-ttl (answering status 3). */
export const MAX_TTL_MS = Number.MAX_SAFE_INTEGER;

/** A value for a message: primitives as typed, anything else by its type (String() of an object can throw). */
export function shown(value: unknown): string {
  if (typeof value === "bigint") return `${value}n (a bigint)`;
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  if (typeof value === "function" || typeof value === "symbol") return `a ${typeof value}`;
  return String(value);
}

export function positiveNumber(value: unknown, name: string): number {
  if (typeof value !== "number" || !(Number.isFinite(value) && value > 0)) {
    throw new InvalidArgumentError(`${name} must be a positive number, got ${shown(value)}`);
  }
  return value;
}

export function nonNegativeNumber(value: unknown, name: string): number {
  if (typeof value !== "number" || !(value >= 0)) throw new InvalidArgumentError(`${name} must be a number >= 0, got ${shown(value)}`);
  return value;
}

export function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${name} must be a whole number >= 1, got ${shown(value)}`);
  }
  return value;
}

export function validTtlMs(value: unknown, name = "ttlMs"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${name} must be a whole number of milliseconds >= 1 (a number), got ${shown(value)}`);
  }
  if (value > MAX_TTL_MS) throw new InvalidArgumentError(`${name} must be at most ${MAX_TTL_MS} ms, got ${shown(value)}`);
  return value;
}

/**
 * A safety margin set by the caller, for a lease of `ttl`. It must cover the server's side (its clock
 * may run 1% fast, in whole milliseconds: protocol.md §4, "Time"), so it must exceed ttl/100 + 1 ms;
 * and it must leave some of the lease, or the lease would be lost the moment it is granted.
 */
export function validSafetyMarginMs(value: unknown, ttl: number): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new InvalidArgumentError(`safetyMarginMs must be a number of milliseconds, got ${shown(value)}`);
  }
  const least = ttl / 100 + 1;
  if (!(value > least)) {
    throw new InvalidArgumentError(`safetyMarginMs must exceed ttl/100 + 1 ms (${least} ms for a ttl of ${ttl} ms), got ${value}`);
  }
  if (!(value < ttl)) throw new InvalidArgumentError(`safetyMarginMs must be less than the ttl (${ttl} ms), got ${value}`);
  return value;
}

export function backoffOptions(value: unknown): BackoffOptions {
  if (value === undefined) return DEFAULT_BACKOFF;
  if (typeof value !== "object" || value === null) throw new InvalidArgumentError(`backoff must be an object, got ${shown(value)}`);
  const { baseMs = DEFAULT_BACKOFF.baseMs, maxMs = DEFAULT_BACKOFF.maxMs } = value as Partial<BackoffOptions>;
  const options = { baseMs: positiveNumber(baseMs, "backoff.baseMs"), maxMs: positiveNumber(maxMs, "backoff.maxMs") };
  if (options.maxMs < options.baseMs) {
    throw new InvalidArgumentError(`backoff.maxMs (${options.maxMs}) must be at least backoff.baseMs (${options.baseMs}): it caps the pauses that start at baseMs`);
  }
  return options;
}

/** `options` of a call that has required fields (acquire, renew, withLock). */
export function requiredOptions<T extends object>(value: T | undefined, call: string, needs: string): T {
  if (typeof value !== "object" || value === null) {
    throw new InvalidArgumentError(`${call} needs an options object with ${needs}, got ${shown(value)}`);
  }
  return value;
}
