/**
 * BatonClient: one pipelined connection per endpoint, and the retry loop every request goes through.
 * A logical request gets ONE random request id when it is created; every attempt of it (after a
 * timeout, a broken connection, status 4 or status 6) resends the byte-identical frame, so the server
 * either applies it once or replays its original answer: a retry can never acquire twice.
 */
import { EventEmitter } from "node:events";
import { COMMAND_NAMES, Command, Status, bytesToHex, encodeRequest, randomId, type Response } from "../src/protocol/index.js";
import {
  backoffOptions,
  CALL_OPTION_NAMES,
  knownOptions,
  nonNegativeNumber,
  optionalOptions,
  positiveInteger,
  positiveNumber,
  requiredOptions,
  shown,
  validSafetyMarginMs,
  validTtlMs,
} from "./arguments.js";
import { backoffDelayMs, sleep, throwIfAborted, type BackoffOptions } from "./backoff.js";
import { defaultClock, type MonotonicClock } from "./clock.js";
import { Connection } from "./connection.js";
import { DEFAULT_HOST, DEFAULT_PORT, toEndpoint, type Endpoint, type EndpointInput } from "./endpoints.js";
import {
  BatonError,
  ClientClosedError,
  InvalidArgumentError,
  LeaseLostError,
  type LeaseLossReason,
  LockWaitTimeoutError,
  NotLeaderError,
  RequestAbortedError,
  RetriesExhaustedError,
  ServerUnavailableError,
} from "./errors.js";
import { randomOwner, toLockId, toOwnerBytes, type LockId, type LockRef, type OwnerRef } from "./ids.js";
import { Lease, validRenewInterval, type LeaseDriver, type LeaseInit } from "./lease.js";
import {
  acquireOutcome,
  inspectResult,
  releaseResult,
  renewResult,
  type AcquireResult,
  type InspectResult,
  type LeaseReleaseResult,
  type ReleaseResult,
  type RenewResult,
} from "./results.js";

export interface BatonClientOptions {
  /** Servers to talk to, "host:port" or Endpoint; default ["127.0.0.1:5625"]. */
  readonly endpoints?: readonly EndpointInput[];
  /**
   * The owner id of every lease this client takes, unless a call names another. When omitted, each
   * lease gets its own random owner id, and `client.owner` (random) is the id the low-level renew,
   * release and inspect use. Set it only where leases must share an id (processes that hand a lease
   * on): the server renews and releases an owner's CURRENT lease of a lock, so a late request meant
   * for an earlier lease of the same lock can then end or shorten a newer one.
   */
  readonly owner?: OwnerRef;
  /** How long one attempt waits for its reply before it is retried. Default 5000. */
  readonly timeoutMs?: number;
  /** Attempts per request (the first one included) before RetriesExhaustedError. Default 8. */
  readonly attempts?: number;
  /**
   * The server's --dedupe-window (lockd's default, 60000). A retry is never sent so late that the
   * server could see it after that long from the first attempt: it would take it for a new request.
   */
  readonly dedupeWindowMs?: number;
  /** How long dialing an endpoint may take. Default 3000. */
  readonly connectTimeoutMs?: number;
  /** Pacing of retries and reconnects. Default 25 ms doubling up to 1000 ms, with jitter. */
  readonly backoff?: Partial<BackoffOptions>;
  /** Requests in flight per connection at most; more wait locally. Default 1024. */
  readonly maxInFlightPerConnection?: number;
  /** The clock lease deadlines are measured on (tests inject one); by default one that counts suspended time. */
  readonly clock?: MonotonicClock;
}

const CLIENT_OPTION_NAMES: ReadonlySet<string> = new Set([
  "endpoints",
  "owner",
  "timeoutMs",
  "attempts",
  "dedupeWindowMs",
  "connectTimeoutMs",
  "backoff",
  "maxInFlightPerConnection",
  "clock",
]);

const AUTO_RENEW_OPTION_NAMES: ReadonlySet<string> = new Set(["intervalMs"]);

/** Options every call takes. */
export interface CallOptions {
  /** Aborts the call; it rejects with RequestAbortedError (the server may still have applied it). */
  readonly signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout. */
  readonly timeoutMs?: number;
  /** Overrides the client's attempts per request. */
  readonly attempts?: number;
  /**
   * Act as this owner instead of the client's. In acquire and withLock, the lease's owner id; by
   * default the client's `owner` option if it was given, else a new random one for each lease.
   */
  readonly owner?: OwnerRef;
}

export interface AutoRenewOptions {
  /** Renew this often. Default ttl/3. */
  readonly intervalMs?: number;
}

export interface AcquireOptions extends CallOptions {
  readonly ttlMs: number;
  /**
   * While someone else holds the lock, keep trying this long (backoff with jitter between tries),
   * each try a new request; a try whose server cannot be reached is retried, with its request id,
   * past `attempts` until the wait ends. Default 0: one try.
   */
  readonly waitMs?: number;
  /** Renew in the background until released or lost. Default false (true in withLock). */
  readonly autoRenew?: boolean | AutoRenewOptions;
  /**
   * Taken off the ttl of the grant and of every renewal to get the local deadline. Default: a tenth of
   * each one's ttl, at least 2 ms. A smaller one must still exceed ttl/100 + 1 ms (protocol.md §4).
   */
  readonly safetyMarginMs?: number;
}

export interface RenewOptions extends CallOptions {
  readonly ttlMs: number;
}

export interface WithLockOptions extends Omit<AcquireOptions, "autoRenew"> {
  /** Default true: the lease is renewed while the callback runs. */
  readonly autoRenew?: boolean | AutoRenewOptions;
}

export interface RetryEvent {
  readonly command: string;
  /** The request id every attempt of this request carries (hex). */
  readonly requestId: string;
  /** The attempt about to be made (2 = first retry). */
  readonly attempt: number;
  readonly endpoint: string;
  /** Why the previous attempt failed. */
  readonly reason: BatonError;
}

/**
 * A logical request about to be sent for the first time. Its request id is the one every attempt
 * carries, and the one to know when the caller stops waiting for it: an ACQUIRE given up on may
 * still be granted, to `owner`.
 */
export interface RequestEvent {
  readonly command: string;
  /** The request id (hex). */
  readonly requestId: string;
  /** The lock (its name where it was given one, else its id in hex). */
  readonly lock: string;
  /** The owner id the request acts as (hex). */
  readonly owner: string;
}

export type BatonClientEvents = {
  connect: [endpoint: string];
  request: [event: RequestEvent];
  disconnect: [endpoint: string, error: Error | undefined];
  retry: [event: RetryEvent];
  /** A background task (an attempt of an auto-renewal, or the renewal; withLock's release) failed; nothing was lost yet. */
  warning: [error: BatonError];
};

export const DEFAULT_TIMEOUT_MS = 5000;
export const DEFAULT_ATTEMPTS = 8;
const DEFAULT_CONNECT_TIMEOUT_MS = 3000;
const DEFAULT_DEDUPE_WINDOW_MS = 60_000;
const DEFAULT_MAX_IN_FLIGHT = 1024;
/** Waiting in withLock: a held lock is retried after 20 ms, doubling to 500 ms, with jitter. */
const WAIT_BACKOFF: BackoffOptions = { baseMs: 20, maxMs: 500 };

interface Request {
  readonly command: Command;
  readonly lock: LockId;
  readonly owner: Buffer;
  readonly ttlMs?: number;
  /** Asked before every attempt: a reason means the request is not sent (a lease's, see LeaseDriver). */
  readonly stopReason?: () => LeaseLossReason | undefined;
  /** The longest pause before a retry, asked before each one; the backoff's alone when absent. */
  readonly maxPauseMs?: () => number;
  /** The longest an attempt may wait for its reply, asked before each one; the call's timeoutMs alone when absent. */
  readonly maxAttemptMs?: (() => number) | undefined;
  /** Told of each failed attempt, when the next one is about to be made (with the `retry` event). */
  readonly attemptFailed?: ((error: BatonError) => void) | undefined;
  /**
   * Attempts go on past the call's `attempts` until this time on the client's clock (a waiting
   * ACQUIRE's wait): a server restarting within the wait must not end it early.
   */
  readonly retryUntilMs?: number;
}

/** Throws LeaseLostError if the lease `request` serves has ended (its stopReason gives why). */
function throwIfLeaseEnded(request: Request): void {
  const stopped = request.stopReason?.();
  if (stopped !== undefined) throw new LeaseLostError(stopped);
}

/** What is left of a lease as an attempt's timeout: whole milliseconds (they show in timeout messages), at least 1. */
function wholeMsAtLeast1(ms: number): number {
  return Math.max(1, Math.ceil(ms));
}

/**
 * A renewal pauses between its retries at most a quarter of what is left of its lease: the backoff
 * grows to a second, and a server back a little before the deadline must still get the renewal.
 */
const RENEWAL_PAUSE_SHARE = 1 / 4;

interface Answered {
  readonly response: Response;
  /** Monotonic time the first attempt was written: the server decided no earlier than this. */
  readonly sentAtMs: number;
  /**
   * Whether an attempt before the answered one timed out or lost its connection after it was written:
   * that attempt may still reach the server and run later (beyond the dedupe window, as a new request).
   */
  readonly uncertain: boolean;
}

export class BatonClient extends EventEmitter<BatonClientEvents> {
  /**
   * This client's owner id (hex): the one renew, release and inspect use when a call names none, and
   * the owner of every lease when the client was created with `owner` (otherwise each lease has its own).
   */
  readonly owner: string;
  readonly endpoints: readonly Endpoint[];

  private readonly ownerBytes: Buffer;
  /** Whether `owner` was given: then every lease shares it, as the caller asked. */
  private readonly ownerShared: boolean;
  private readonly connections: Connection[];
  /** Connections opened so far, to any endpoint: a retry counts each one since its first attempt as a restart of the server. */
  private connectionsOpened = 0;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly dedupeWindowMs: number;
  private readonly backoff: BackoffOptions;
  private readonly clock: MonotonicClock;
  private readonly leases = new Set<Lease>();
  private readonly leaseDriver: LeaseDriver;
  /** The endpoint requests go to first: the last one that answered as leader. */
  private current = 0;
  private closed = false;
  /** When close() was called (on `clock`). */
  private closedAtMs: number | undefined;
  /** Aborted by close(): backoff sleeps end at once. */
  private readonly closing = new AbortController();

  constructor(options: BatonClientOptions = {}) {
    super();
    if (typeof options !== "object" || options === null) throw new InvalidArgumentError(`BatonClient's options must be an object, got ${shown(options)}`);
    knownOptions(options, "BatonClient", CLIENT_OPTION_NAMES);
    const listed: unknown = options.endpoints ?? [`${DEFAULT_HOST}:${DEFAULT_PORT}`];
    if (!Array.isArray(listed)) throw new InvalidArgumentError(`endpoints must be an array of "host:port" strings or endpoints, got ${typeof listed}`);
    // Array.from, not map: map skips an array's holes, which would then be endpoints of nothing.
    const endpoints = Array.from(listed as EndpointInput[], (endpoint) => toEndpoint(endpoint));
    if (endpoints.length === 0) throw new InvalidArgumentError("endpoints must not be empty");
    this.endpoints = endpoints;
    this.ownerBytes = options.owner === undefined ? randomOwner() : toOwnerBytes(options.owner);
    this.ownerShared = options.owner !== undefined;
    this.owner = bytesToHex(this.ownerBytes);
    this.timeoutMs = positiveNumber(options.timeoutMs ?? DEFAULT_TIMEOUT_MS, "timeoutMs");
    this.attempts = positiveInteger(options.attempts ?? DEFAULT_ATTEMPTS, "attempts");
    this.dedupeWindowMs = positiveNumber(options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS, "dedupeWindowMs");
    this.backoff = backoffOptions(options.backoff);
    this.clock = options.clock ?? defaultClock;
    const connectionOptions = {
      connectTimeoutMs: positiveNumber(options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS, "connectTimeoutMs"),
      maxInFlight: positiveInteger(options.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT, "maxInFlightPerConnection"),
      clock: this.clock,
      onOpen: (connection: Connection) => {
        this.connectionsOpened++;
        this.emit("connect", connection.label);
      },
      onClose: (connection: Connection, error: Error | undefined) => this.emit("disconnect", connection.label, error),
    };
    this.connections = endpoints.map((endpoint) => new Connection(endpoint, connectionOptions));
    this.leaseDriver = {
      clock: this.clock,
      renew: async (lease, ttlMs, stopReason, callOptions, automatic) => {
        const maxPauseMs = () => Math.max(1, lease.remainingMs * RENEWAL_PAUSE_SHARE);
        const request: Request = {
          command: Command.Renew,
          lock: lease.lock,
          owner: lease.ownerBytes,
          ttlMs,
          stopReason,
          maxPauseMs,
          // An attempt waits no longer than the lease lasts: at its deadline the renewal is moot.
          maxAttemptMs: automatic ? () => automatic.attemptTimeoutMs() : () => wholeMsAtLeast1(lease.remainingMs),
          attemptFailed: automatic && ((error) => automatic.attemptFailed(error)),
        };
        const answered = await this.send(request, callOptions);
        return { result: renewResult(answered.response), sentAtMs: answered.sentAtMs, uncertain: answered.uncertain };
      },
      release: async (lease, stopReason, callOptions, untilDeadlineMs) => {
        // Not past the deadline either: no retry is sent after it, so an attempt waiting beyond it
        // could only end in `lost` later.
        const maxAttemptMs = () => wholeMsAtLeast1(untilDeadlineMs());
        const request: Request = { command: Command.Release, lock: lease.lock, owner: lease.ownerBytes, stopReason, maxAttemptMs };
        return releaseResult((await this.send(request, callOptions)).response);
      },
      // Only leases with timers or a signal are tracked, so plain acquire/release loops keep no state.
      track: (lease) => (this.closed ? lease.abandon() : this.leases.add(lease)),
      closedAtMs: () => this.closedAtMs,
      ended: (lease) => this.leases.delete(lease),
      warn: (error) => this.emit("warning", error),
    };
  }

  /**
   * Connects to the first endpoint that accepts, so configuration mistakes show at start-up.
   * Optional: every call connects on demand.
   */
  async connect(given?: { signal?: AbortSignal }): Promise<void> {
    const options: { signal?: AbortSignal } = optionalOptions(given, "connect", CALL_OPTION_NAMES);
    let lastError: unknown;
    for (let i = 0; i < this.connections.length; i++) {
      const index = (this.current + i) % this.connections.length;
      try {
        await this.connections[index]!.open(options.signal);
        this.current = index;
        return;
      } catch (error) {
        if (error instanceof RequestAbortedError || error instanceof ClientClosedError) throw error;
        lastError = error;
      }
    }
    throw lastError;
  }

  /**
   * Closes every connection at once: calls in flight reject with ClientClosedError, and leases
   * still held end (their signals abort) without being released; they expire on the server.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closedAtMs = this.clock();
    this.closing.abort();
    for (const lease of [...this.leases]) lease.abandon();
    for (const connection of this.connections) connection.close();
  }

  /**
   * Acquires the lock: granted, a Lease; held by anyone (this owner included), the holder's expiry,
   * after trying for up to `waitMs`. The lease's owner is `options.owner`, else the client's `owner`
   * option, else a new random id drawn for this call (every retry and every try of the wait uses it).
   */
  async acquire(lock: LockRef, options: AcquireOptions): Promise<AcquireResult> {
    requiredOptions(options, "acquire", "ttlMs", CALL_OPTION_NAMES);
    const ttlMs = validTtlMs(options.ttlMs);
    const lockId = toLockId(lock);
    // A lease of its own owner id: the server renews and releases an owner's current lease of a lock,
    // whatever its token, so a request of an earlier lease delivered late (a relay that held it, a
    // hung server) cannot then end or shorten this one.
    const owner = options.owner === undefined && !this.ownerShared ? randomOwner() : this.ownerOf(options);
    const waitMs = nonNegativeNumber(options.waitMs ?? 0, "waitMs");
    if (options.safetyMarginMs !== undefined) validSafetyMarginMs(options.safetyMarginMs, ttlMs);
    // Checked here, before anything is sent: misuse must not show only once a lock was granted.
    const autoRenew = autoRenewIntervalMs(options.autoRenew, ttlMs, options.safetyMarginMs);
    const giveUpAtMs = this.clock() + waitMs;
    // Bounded by the wait: every pass returns, throws, or sleeps at least WAIT_BACKOFF.baseMs / 2.
    for (let retry = 1; ; retry++) {
      const result = await this.acquireOnce(lockId, owner, ttlMs, autoRenew, options, waitMs > 0 ? giveUpAtMs : undefined);
      const leftMs = giveUpAtMs - this.clock();
      if (result.status === "acquired" || leftMs <= 0) return result;
      await sleep(Math.min(leftMs, backoffDelayMs(retry, WAIT_BACKOFF)), options.signal, this.closing.signal);
    }
  }

  private async acquireOnce(
    lockId: LockId,
    owner: Buffer,
    ttlMs: number,
    autoRenew: LeaseInit["autoRenew"],
    options: AcquireOptions,
    retryUntilMs: number | undefined,
  ): Promise<AcquireResult> {
    // Retries of one try resend its frame, request id included: a grant whose answer was lost is
    // answered again, not asked for anew (which would find the lock held by this very owner).
    const request: Request = { command: Command.Acquire, lock: lockId, owner, ttlMs, ...(retryUntilMs === undefined ? {} : { retryUntilMs }) };
    const { response, sentAtMs } = await this.send(request, options);
    const outcome = acquireOutcome(response);
    if (outcome.status === "held") return outcome;
    const lease = new Lease(this.leaseDriver, {
      lock: lockId,
      owner,
      fencingToken: outcome.fencingToken,
      expiresAt: outcome.expiresAt,
      ttlMs,
      sentAtMs,
      safetyMarginMs: options.safetyMarginMs,
      autoRenew,
      autoRenewTimeoutMs: options.timeoutMs ?? this.timeoutMs,
      autoRenewAttempts: options.attempts,
    });
    if (this.closed) lease.abandon();
    return { status: "acquired", lease, fencingToken: outcome.fencingToken, expiresAt: outcome.expiresAt };
  }

  /** Extends a lease held by this owner (or `owner`). Prefer Lease.renew, which also tracks the local deadline. */
  async renew(lock: LockRef, options: RenewOptions): Promise<RenewResult> {
    requiredOptions(options, "renew", "ttlMs", CALL_OPTION_NAMES);
    const ttlMs = validTtlMs(options.ttlMs);
    return renewResult((await this.send({ command: Command.Renew, lock: toLockId(lock), owner: this.ownerOf(options), ttlMs }, options)).response);
  }

  /** Releases a lock held by this owner (or `owner`). Prefer Lease.release. */
  async release(lock: LockRef, given?: CallOptions): Promise<ReleaseResult> {
    const options: CallOptions = optionalOptions(given, "release", CALL_OPTION_NAMES);
    return releaseResult((await this.send({ command: Command.Release, lock: toLockId(lock), owner: this.ownerOf(options) }, options)).response);
  }

  /** Reads the lock's state as this owner (or `owner`) sees it. Changes nothing. */
  async inspect(lock: LockRef, given?: CallOptions): Promise<InspectResult> {
    const options: CallOptions = optionalOptions(given, "inspect", CALL_OPTION_NAMES);
    return inspectResult((await this.send({ command: Command.Inspect, lock: toLockId(lock), owner: this.ownerOf(options) }, options)).response);
  }

  /**
   * Acquires the lock (waiting up to `waitMs` with backoff and jitter while someone else holds it),
   * runs `fn` with the lease, and always releases it, whether `fn` returns or throws. `fn` should
   * pass `lease.fencingToken` to every write it makes and stop when `lease.signal` aborts.
   * Throws LockWaitTimeoutError when the lock stayed held for the whole wait, and LeaseLostError when
   * the lease was lost (its deadline passed, also after the client was closed, or a renewal was
   * refused) before `fn` returned: the work may have overlapped another holder's. That error's `result` is what `fn` returned. An error `fn`
   * throws is rethrown as it is, lease lost or not. `signal` stops the acquire (its wait included)
   * only: the release at the end is sent even once it aborted.
   */
  async withLock<T>(lock: LockRef, options: WithLockOptions, fn: (lease: Lease) => Promise<T> | T): Promise<T> {
    requiredOptions(options, "withLock", "ttlMs", CALL_OPTION_NAMES);
    if (typeof fn !== "function") throw new InvalidArgumentError(`withLock needs a function to run while holding the lock, got ${typeof fn}`);
    const lockId = toLockId(lock);
    const result = await this.acquire(lockId, { ...options, autoRenew: options.autoRenew ?? true });
    if (result.status === "held") throw new LockWaitTimeoutError(lockId.label, options.waitMs ?? 0, result.expiresAt);
    const { lease } = result;
    // Granted, but answered after the local deadline (a slow round trip, or a ttl the margin takes
    // whole): the lock may pass to another holder at any moment, so the callback must not start.
    const lostAlready = lease.lossReason;
    if (lostAlready !== undefined) throw new LeaseLostError(lostAlready);
    let value: T;
    let lostWhileRunning: LeaseLossReason | undefined;
    try {
      value = await fn(lease);
      const reason = lease.lossReason;
      if (reason === "deadline" || reason === "refused") lostWhileRunning = reason;
      // Closing the client ends the lease without losing it: the lock stays ours until the deadline,
      // which nothing renews any more. A callback that ran past it ran when another could hold it.
      else if (reason === "client-closed" && lease.deadlinePassed) lostWhileRunning = "deadline";
    } finally {
      // The lease ends at its ttl anyway; what the release found must not mask fn's own outcome, so
      // it is a warning when it shows the lease was not held to the end.
      try {
        const endedBefore = lease.lossReason;
        const released = await lease.release({
          ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
          ...(options.attempts === undefined ? {} : { attempts: options.attempts }),
        });
        const warning = releaseWarning(released, endedBefore, lease.deadlinePassed);
        if (warning !== undefined) this.emit("warning", warning);
      } catch (error) {
        this.emit("warning", error as BatonError);
      }
    }
    // A callback that returned after its lease was lost must not look like work done under the lock.
    if (lostWhileRunning !== undefined) {
      throw new LeaseLostError(lostWhileRunning, "the lease was lost before withLock's callback returned", { result: value });
    }
    return value;
  }

  private ownerOf(options: CallOptions): Buffer {
    return options.owner === undefined ? this.ownerBytes : toOwnerBytes(options.owner);
  }

  /**
   * Sends one logical request until it gets a decided answer (any status but 4 and 6), resending the
   * same frame, with the same request id, on every attempt.
   */
  private async send(request: Request, options: CallOptions): Promise<Answered> {
    if (this.closed) throw new ClientClosedError();
    const requestId = randomId();
    // Built only when listened to: every request passes here, and hex ids cost an allocation each.
    if (this.listenerCount("request") > 0) {
      this.emit("request", { command: COMMAND_NAMES[request.command], requestId: bytesToHex(requestId), lock: request.lock.label, owner: bytesToHex(request.owner) });
    }
    const frame = encodeRequest({
      command: request.command,
      requestId,
      lockId: request.lock.bytes,
      ownerId: request.owner,
      ...(request.ttlMs === undefined ? {} : { ttlMs: BigInt(request.ttlMs) }),
    });
    const attempts = positiveInteger(options.attempts ?? this.attempts, "attempts");
    const timeoutMs = positiveNumber(options.timeoutMs ?? this.timeoutMs, "timeoutMs");
    const { signal } = options;
    let firstSentAtMs: number | undefined;
    let openedBeforeFirstSend = 0;
    let uncertain = false;
    let lastError: BatonError | undefined;
    let delayNext = false;
    // Where this request's next attempt goes. Only an answer moves where later requests start: one
    // request's failures (a short timeout of its own, say) do not send every other call elsewhere.
    let index = this.current;
    // Endpoints that answered this request "not the leader". A hint naming one of them is not
    // followed (the next endpoint, after a pause, instead): two nodes naming each other cannot use up
    // the attempts at once, nor keep the request from the others.
    let notLeaders: Set<number> | undefined;
    const retryUntilMs = request.retryUntilMs ?? Number.NEGATIVE_INFINITY;
    let attempt = 1;
    for (; attempt <= attempts || (lastError !== undefined && this.clock() < retryUntilMs); attempt++) {
      if (this.closed) throw new ClientClosedError();
      throwIfAborted(signal);
      const connection = this.connections[index]!;
      if (lastError !== undefined) {
        request.attemptFailed?.(lastError);
        if (delayNext) {
          const pauseMs = Math.min(
            backoffDelayMs(attempt - 1, this.backoff),
            request.maxPauseMs?.() ?? Infinity,
            // Past the call's attempts only the wait keeps it going: no pause beyond it.
            attempt > attempts ? Math.max(1, retryUntilMs - this.clock()) : Infinity,
          );
          await sleep(pauseMs, signal, this.closing.signal);
        }
      }
      delayNext = true;
      let written = false;
      try {
        // A dial counts against the attempt's time like the reply does.
        const attemptTimeoutMs = Math.min(timeoutMs, request.maxAttemptMs?.() ?? Infinity);
        // Asked before the attempt is announced as a retry, and again once connected (a dial takes time).
        this.checkMaySend(request, requestId, attempt, firstSentAtMs, attemptTimeoutMs, lastError, openedBeforeFirstSend);
        if (lastError !== undefined) {
          this.emit("retry", { command: COMMAND_NAMES[request.command], requestId: bytesToHex(requestId), attempt, endpoint: connection.label, reason: lastError });
        }
        await connection.open(signal, attemptTimeoutMs);
        const sendAtMs = this.checkMaySend(request, requestId, attempt, firstSentAtMs, attemptTimeoutMs, lastError, openedBeforeFirstSend);
        if (firstSentAtMs === undefined) {
          firstSentAtMs = sendAtMs;
          openedBeforeFirstSend = this.connectionsOpened;
        }
        written = true;
        const response = await connection.request(frame, attemptTimeoutMs, signal);
        if (response.status === Status.NotLeader) {
          lastError = new NotLeaderError(connection.label, response.fencingToken);
          const hinted = this.leaderHinted(index, response.fencingToken);
          (notLeaders ??= new Set()).add(index);
          const follow = hinted >= 0 && !notLeaders.has(hinted);
          delayNext = !follow;
          index = follow ? hinted : this.nextEndpoint(index);
          continue;
        }
        if (response.status === Status.Unavailable) {
          lastError = new ServerUnavailableError(connection.label);
          continue;
        }
        this.current = index;
        return { response, sentAtMs: firstSentAtMs, uncertain };
      } catch (error) {
        if (!(error instanceof BatonError) || error.code === "BATON_ABORTED" || error.code === "BATON_CLIENT_CLOSED") throw error;
        if (error.code === "BATON_CONNECTION" || error.code === "BATON_TIMEOUT") {
          lastError = error;
          // Written and unanswered: the request may be held on the way and run later.
          if (written) uncertain = true;
          // A dial that failed, a connection lost under the request, or a server that did not answer
          // (hung, or cut off from the rest of the cluster): the next attempt tries the next endpoint.
          // Every failure alike: a server that accepts and then drops connections (one at its
          // connection limit) must not hold the request, nor a hung one cost a second timeout.
          index = this.nextEndpoint(index);
          continue;
        }
        throw error;
      }
    }
    // The last attempt ran into the end of the lease it served: that is the outcome, not the attempts.
    throwIfLeaseEnded(request);
    throw new RetriesExhaustedError(COMMAND_NAMES[request.command], attempt - 1, bytesToHex(requestId), lastError);
  }

  /**
   * Throws if attempt number `attempt` must not be sent: the lease it serves has ended, or (for any
   * command but INSPECT, which changes nothing, is never remembered, and is safe to resend at any
   * time) it could reach the server after the dedupe window of the first attempt. Otherwise returns
   * the time it is sent at. The answer can only change from yes to no as time passes.
   */
  private checkMaySend(
    request: Request,
    requestId: Uint8Array,
    attempt: number,
    firstSentAtMs: number | undefined,
    attemptTimeoutMs: number,
    lastError: BatonError | undefined,
    openedBeforeFirstSend: number,
  ): number {
    throwIfLeaseEnded(request);
    const nowMs = this.clock();
    const remembered = request.command !== Command.Inspect;
    const reconnections = this.connectionsOpened - openedBeforeFirstSend;
    if (remembered && firstSentAtMs !== undefined && !this.retryStaysInWindow(nowMs - firstSentAtMs, attemptTimeoutMs, reconnections)) {
      const why = `a retry now could reach the server after its ${this.dedupeWindowMs} ms dedupe window, and run as a new request`;
      throw new RetriesExhaustedError(COMMAND_NAMES[request.command], attempt - 1, bytesToHex(requestId), lastError, why);
    }
    return nowMs;
  }

  /**
   * Whether an attempt sent `elapsedMs` after the first one reaches the server, if at all, within the
   * dedupe window of whichever attempt it executed first. The first attempt ran no sooner than it
   * was sent; this one runs within its `timeoutMs` of being sent or never, PROVIDED the reset of a
   * connection given up for silence reaches the server: so on a direct connection, where the kernel
   * drops what it had not delivered. Through a TCP-terminating relay (stunnel, HAProxy, a tunnel)
   * the reset ends only the client's side, and the relay may deliver the attempt much later; such a
   * relay must pass resets through or time out its upstream connections promptly, or no window
   * holds (a late RENEW or RELEASE then runs as a new request). Given that, the two are at most
   * `elapsedMs + timeoutMs` apart in real time, and the server's clock runs at most 1% fast, plus
   * 1 ms, and 1 ms more for each restart (protocol.md §4): at least one is allowed for, and each
   * connection opened since the first attempt beyond that counts as one more.
   */
  private retryStaysInWindow(elapsedMs: number, timeoutMs: number, reconnections: number): boolean {
    return (elapsedMs + timeoutMs) * 1.01 + 1 + Math.max(1, reconnections) < this.dedupeWindowMs;
  }

  /**
   * Status 4 from endpoint `from`: the endpoint carrying the hinted leader's node id, where the next
   * attempt may go at once; -1 when no other endpoint does (then the next one, after a pause).
   */
  private leaderHinted(from: number, leaderHint: bigint): number {
    const hinted = leaderHint === 0n ? -1 : this.endpoints.findIndex((endpoint) => endpoint.nodeId === leaderHint);
    return hinted === from ? -1 : hinted;
  }

  private nextEndpoint(index: number): number {
    return (index + 1) % this.connections.length;
  }
}

/**
 * The auto-renewal interval of a lease of `ttlMs` (undefined: no auto-renewal). An interval given by
 * the caller is kept as it is; the default (undefined here) follows each renewal's ttl (a third of it).
 * A chosen one must be shorter than the lease (ttl less the margin), or the lease would end at every
 * deadline; how much of the lease it leaves for a renewal's round trip and retries is the caller's call.
 */
function autoRenewIntervalMs(
  autoRenew: boolean | AutoRenewOptions | undefined,
  ttlMs: number,
  safetyMarginMs: number | undefined,
): LeaseInit["autoRenew"] {
  if (autoRenew === undefined || autoRenew === false) return undefined;
  if (autoRenew === true) return { intervalMs: undefined };
  if (typeof autoRenew !== "object" || autoRenew === null) {
    throw new InvalidArgumentError(`autoRenew must be true, false or { intervalMs }, got ${shown(autoRenew)}`);
  }
  knownOptions(autoRenew, "autoRenew", AUTO_RENEW_OPTION_NAMES);
  if (autoRenew.intervalMs === undefined) return { intervalMs: undefined };
  const intervalMs = positiveNumber(autoRenew.intervalMs, "autoRenew.intervalMs");
  validRenewInterval(intervalMs, ttlMs, safetyMarginMs);
  return { intervalMs };
}

/**
 * What withLock's release answer says, when it shows the lease was not held to the end or the lock
 * was not released; `endedBefore` is why the lease had ended before the release, if it had, and
 * `answeredLate` whether the answer came at or after the lease's local deadline.
 */
function releaseWarning(
  released: LeaseReleaseResult,
  endedBefore: LeaseLossReason | undefined,
  answeredLate: boolean,
): LeaseLostError | undefined {
  switch (released.status) {
    case "released":
      return undefined;
    case "lost":
      // Ended by the callback's own release or by close(): nothing to report.
      if (endedBefore === "released" || endedBefore === "client-closed") return undefined;
      if (endedBefore !== undefined) return new LeaseLostError(endedBefore, "the lease ended before withLock's callback returned");
      return new LeaseLostError("deadline", "the release was not answered before the lease's local deadline; the lock is left to expire");
    case "notHeld":
    case "expired":
      // Answered past the local deadline (a server or network that stalled): the lease may have
      // expired on the server meanwhile, which is no sign of anyone else acting with this owner id.
      if (answeredLate) {
        return new LeaseLostError("deadline", `withLock's release was answered ${released.status} after the lease's local deadline; the lease may have expired on the server first`);
      }
      return new LeaseLostError("refused", `withLock's release was answered ${released.status}, though the lease was held locally`);
  }
}
