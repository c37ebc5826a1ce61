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

const BACKOFF_OPTION_NAMES: ReadonlySet<string> = new Set(["baseMs", "maxMs"]);

export function backoffOptions(value: unknown): BackoffOptions {
  if (value === undefined) return DEFAULT_BACKOFF;
  if (typeof value !== "object" || value === null) throw new InvalidArgumentError(`backoff must be an object, got ${shown(value)}`);
  knownOptions(value, "backoff", BACKOFF_OPTION_NAMES);
  const { baseMs = DEFAULT_BACKOFF.baseMs, maxMs = DEFAULT_BACKOFF.maxMs } = value as Partial<BackoffOptions>;
  const options = { baseMs: positiveNumber(baseMs, "backoff.baseMs"), maxMs: positiveNumber(maxMs, "backoff.maxMs") };
  if (options.maxMs < options.baseMs) {
    throw new InvalidArgumentError(`backoff.maxMs (${options.maxMs}) must be at least backoff.baseMs (${options.baseMs}): it caps the pauses that start at baseMs`);
  }
  return options;
}

/**
 * Every option of any call, the lease's included. Each call takes any of them (those it has no use
 * for are ignored), so one options object can serve an acquire and the calls after it; a name
 * outside them is a mistake.
 */
export const CALL_OPTION_NAMES: ReadonlySet<string> = new Set(["signal", "timeoutMs", "attempts", "owner", "ttlMs", "waitMs", "autoRenew", "safetyMarginMs"]);

/** `options` of a call that has required fields (acquire, renew, withLock), with only options of `names`. */
export function requiredOptions<T extends object>(value: T | undefined, call: string, needs: string, names: ReadonlySet<string>): T {
  if (typeof value !== "object" || value === null) {
    throw new InvalidArgumentError(`${call} needs an options object with ${needs}, got ${shown(value)}`);
  }
  knownOptions(value, call, names);
  return value;
}

/** `options` of a call whose options may all be left out: an object with only options of `names`, if given. */
export function optionalOptions<T extends object>(value: T | undefined, call: string, names: ReadonlySet<string>): T | Record<string, never> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null) throw new InvalidArgumentError(`${call}'s options must be an object, got ${shown(value)}`);
  knownOptions(value, call, names);
  return value;
}

/**
 * Throws for an option `options` has that `call` does not take: from JavaScript a misspelt option
 * (`timeout` for `timeoutMs`, `endpoint` for `endpoints`) would otherwise be ignored, and the call
 * would run on the default without a word.
 */
export function knownOptions(options: object, call: string, names: ReadonlySet<string>): void {
  for (const key of Object.keys(options)) {
    if (names.has(key)) continue;
    const lower = key.toLowerCase();
    const near = [...names].filter((name) => name.toLowerCase().startsWith(lower) || lower.startsWith(name.toLowerCase()));
    const hint = near.length === 1 ? ` (did you mean ${near[0]}?)` : "";
    throw new InvalidArgumentError(`${call} has no option ${JSON.stringify(key)}${hint}; it takes ${[...names].join(", ")}`);
  }
}
