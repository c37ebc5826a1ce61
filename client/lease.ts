/**
 * A granted lock, as the holder sees it. The lease is held until its LOCAL deadline: the monotonic
 * time at which the granting (or latest renewing) request was first sent, plus the ttl, minus a
 * safety margin. The server started its ttl no earlier than that send, so the server's lease outlives
 * the local deadline whatever the two wall clocks say; the margin covers clock-rate drift and timer
 * lateness. `signal` aborts the moment the lease may no longer be held: at that deadline, when a
 * renewal is refused, when the lease is released, or when the client closes.
 */
import { CALL_OPTION_NAMES, optionalOptions, validSafetyMarginMs, validTtlMs } from "./arguments.js";
import { timerDelay } from "./backoff.js";
import type { MonotonicClock } from "./clock.js";
import { InvalidArgumentError, LeaseLostError, type BatonError, type LeaseLossReason } from "./errors.js";
import type { LockId } from "./ids.js";
import type { LeaseReleaseResult, LeaseRenewResult, ReleaseResult, RenewResult } from "./results.js";

/** Per-call options of Lease.renew and Lease.release. */
export interface LeaseCallOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  readonly attempts?: number;
}

export interface LeaseRenewOptions extends LeaseCallOptions {
  /** A new ttl for this and later renewals; the lease's current ttl otherwise. */
  readonly ttlMs?: number;
}

/** A renewal's answer, when its first attempt was sent, and whether an earlier attempt of it may still run later. */
export interface RenewOutcome {
  readonly result: RenewResult;
  readonly sentAtMs: number;
  readonly uncertain: boolean;
}

/** How an automatic renewal's attempts differ from a renewal asked for by hand. */
export interface AutomaticRenewal {
  /** Asked before each attempt: the longest it may wait for its reply (also at most the call's timeoutMs). */
  attemptTimeoutMs(): number;
  /** Told of each attempt that failed, when the next one is about to be made. */
  attemptFailed(error: BatonError): void;
}

/** What a Lease needs from its client: sending requests on its behalf, and bookkeeping. */
export interface LeaseDriver {
  readonly clock: MonotonicClock;
  /**
   * Renewals and releases are asked `stopReason` before every attempt, first or again, and are not
   * sent once it gives one (they throw LeaseLostError with it): a renewal once the lease has ended
   * (released, lost), a release once the lease's local deadline has passed. The server acts on the
   * owner's current lease of the lock, whatever its token, and by then that may be a newer lease of
   * the same owner.
   */
  renew(
    lease: Lease,
    ttlMs: number,
    stopReason: () => LeaseLossReason | undefined,
    options: LeaseCallOptions,
    automatic?: AutomaticRenewal,
  ): Promise<RenewOutcome>;
  /** `untilDeadlineMs`: what was left of the lease's local deadline when it was released, now. */
  release(lease: Lease, stopReason: () => LeaseLossReason | undefined, options: LeaseCallOptions, untilDeadlineMs: () => number): Promise<ReleaseResult>;
  /** The lease has timers or a signal to end when the client closes. */
  track(lease: Lease): void;
  /** When the client was closed (on `clock`), or undefined while it is open: a lease it does not track ends when next looked at. */
  closedAtMs(): number | undefined;
  /** The lease ended (released, lost): the client stops tracking it. */
  ended(lease: Lease): void;
  /** A background renewal failed without ending the lease. */
  warn(error: BatonError): void;
}

export interface LeaseInit {
  readonly lock: LockId;
  readonly owner: Buffer;
  readonly fencingToken: bigint;
  readonly expiresAt: bigint;
  readonly ttlMs: number;
  /** Monotonic time the granting request was first sent. */
  readonly sentAtMs: number;
  /** Taken off each grant's or renewal's ttl; undefined: `defaultSafetyMarginMs` of that ttl. */
  readonly safetyMarginMs: number | undefined;
  /**
   * Renew automatically (undefined: only when renew() is called), every `intervalMs`, or a third of
   * the lease's current ttl when that is undefined.
   */
  readonly autoRenew: { readonly intervalMs: number | undefined } | undefined;
  /** Per-attempt timeout of automatic renewals (each is also at most half the time left before the deadline). */
  readonly autoRenewTimeoutMs: number;
  /** Attempts of each automatic renewal; undefined: the client's. */
  readonly autoRenewAttempts: number | undefined;
}

/**
 * The default safety margin: a tenth of the ttl, and at least 2 ms. It must cover the server's side,
 * whose clock may run up to 1% fast (after a wall-clock step) in whole milliseconds, so a lease lasts
 * at least ttl/1.01 - 1 ms of real time (protocol.md §4, "Time"), with room left for the drift of this
 * machine's clock rate and timers that fire late. It follows each renewal's ttl: a margin fitted to a
 * short first ttl would be too thin for a long renewal.
 */
export function defaultSafetyMarginMs(ttlMs: number): number {
  return Math.max(ttlMs / 10, 2);
}

/**
 * An auto-renewal interval chosen by the caller must be shorter than the lease it renews (the ttl
 * less the safety margin): a longer one would let the lease end at every local deadline.
 */
export function validRenewInterval(intervalMs: number, ttlMs: number, safetyMarginMs: number | undefined): void {
  const leaseMs = ttlMs - (safetyMarginMs ?? defaultSafetyMarginMs(ttlMs));
  if (!(intervalMs < leaseMs)) {
    throw new InvalidArgumentError(
      `autoRenew.intervalMs must be shorter than the lease it renews (the ttl ${ttlMs} ms less the safety margin: ${leaseMs} ms), got ${intervalMs}`,
    );
  }
}

/**
 * The longest the deadline timer waits before looking at the clock again. Timers run on the monotonic
 * clock, which stands still while the machine is suspended, but the lease's clock counts that time
 * (clock.ts): after a resume, `held` is right at once, and the signal aborts within this long.
 */
const DEADLINE_RECHECK_MS = 1000;

type LeaseState = { readonly kind: "held" } | { readonly kind: "ended"; readonly reason: LeaseLossReason };

export class Lease {
  readonly lock: LockId;
  /** The owner id (hex) the lease was granted to; renewals and the release use it. */
  readonly owner: string;
  readonly ownerBytes: Buffer;
  /** Strictly greater than every token granted before it, for any lock: pass it to every write it guards. */
  readonly fencingToken: bigint;

  private expiresAtValue: bigint;
  private ttlValueMs: number;
  /**
   * The shortest ttl among this lease's renewals whose outcome was uncertain (an attempt timed out or
   * lost its connection, so the request may run on the server later, whenever a relay or a hung
   * server lets it). Every deadline after it is computed with at most this ttl: such a request, run
   * after a later renewal was sent, ends the server's lease at its own ttl from then.
   */
  private uncertainTtlMs = Infinity;
  private deadlineMs: number;
  /** When the request that set the current deadline (the grant, or the latest renewal) was first sent. */
  private deadlineSentAtMs: number;
  private state: LeaseState = { kind: "held" };
  private controller: AbortController | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** Renewals run one at a time, so a slow reply can never overwrite the deadline of a newer one. */
  private renewals: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly driver: LeaseDriver,
    private readonly init: LeaseInit,
  ) {
    this.lock = init.lock;
    this.ownerBytes = init.owner;
    this.owner = init.owner.toString("hex");
    this.fencingToken = init.fencingToken;
    this.expiresAtValue = init.expiresAt;
    this.ttlValueMs = init.ttlMs;
    this.deadlineMs = init.sentAtMs + init.ttlMs - this.marginFor(init.ttlMs);
    this.deadlineSentAtMs = init.sentAtMs;
    if (init.autoRenew !== undefined) {
      this.driver.track(this);
      if (this.state.kind === "held") {
        this.armDeadline();
        this.scheduleNextRenewal();
      }
    }
  }

  /** The server's expiry of the latest grant or renewal (server clock, unix ms). Informational only. */
  get expiresAt(): bigint {
    return this.expiresAtValue;
  }

  get ttlMs(): number {
    return this.ttlValueMs;
  }

  /** Whether the lease is still held by the local deadline (and was neither refused nor released). */
  get held(): boolean {
    this.checkDeadline();
    return this.state.kind === "held";
  }

  /** Why the lease ended, or undefined while it is held. */
  get lossReason(): LeaseLossReason | undefined {
    this.checkDeadline();
    return this.state.kind === "ended" ? this.state.reason : undefined;
  }

  /**
   * Whether the local deadline of the latest grant or renewal has passed, however the lease ended.
   * After `client.close()` ended it (`client-closed`) the lock stays this owner's until then, and
   * may pass to another holder after: this tells which.
   */
  get deadlinePassed(): boolean {
    return this.driver.clock() >= this.deadlineMs;
  }

  /** Milliseconds left before the local deadline (0 once it ended). */
  get remainingMs(): number {
    if (!this.held) return 0;
    return Math.max(0, this.deadlineMs - this.driver.clock());
  }

  /**
   * Aborts, with a LeaseLostError as its reason, the moment the lease may no longer be held. Each read
   * looks at the clock first: after a pause of the process (SIGSTOP, a debugger, a suspended machine)
   * Node may run other due callbacks before the deadline timer, and a signal read then is aborted
   * already. One read before the pause aborts only when that timer runs.
   */
  get signal(): AbortSignal {
    this.checkDeadline();
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.state.kind === "ended") {
        this.controller.abort(new LeaseLostError(this.state.reason));
      } else {
        this.driver.track(this);
        this.armDeadline();
      }
    }
    return this.controller.signal;
  }

  /**
   * Extends the lease by its ttl (or `ttlMs`) from now. A refusal (`notHeld`, `expired`) ends the
   * lease; `lost` means it had already ended locally and nothing was sent. Throws only what requests
   * throw (retries exhausted, aborted, client closed); the lease then stays held. A shorter ttl asked
   * for shortens the local deadline as the request is sent, since the server may apply it from
   * then on, whether or not an answer comes. A renewal
   * that failed, or had an attempt time out or lose its connection, may still run on the server
   * later: every later deadline of the lease is computed with at most its ttl.
   */
  async renew(given?: LeaseRenewOptions): Promise<LeaseRenewResult> {
    return this.queueRenewal(optionalOptions(given, "lease.renew", CALL_OPTION_NAMES), undefined);
  }

  /** Runs a renewal after those before it. */
  private queueRenewal(options: LeaseRenewOptions, automatic: AutomaticRenewal | undefined): Promise<LeaseRenewResult> {
    const next = this.renewals.then(() => this.renewNow(options, automatic));
    this.renewals = next.catch(() => undefined);
    return next;
  }

  /**
   * Ends the lease (the signal aborts at once) and releases the lock on the server. A lease that had
   * already ended locally answers `lost` and sends nothing, and no retry is sent past the lease's
   * local deadline (`lost` too): the server releases the owner's current lease of the lock, whatever
   * its token, and by then that may be a newer lease this owner took since.
   */
  async release(given?: LeaseCallOptions): Promise<LeaseReleaseResult> {
    const options: LeaseCallOptions = optionalOptions(given, "lease.release", CALL_OPTION_NAMES);
    if (!this.held) return { status: "lost" };
    const deadlineMs = this.deadlineMs;
    this.end("released");
    try {
      const untilDeadlineMs = () => deadlineMs - this.driver.clock();
      return await this.driver.release(this, () => (untilDeadlineMs() <= 0 ? "deadline" : undefined), options, untilDeadlineMs);
    } catch (error) {
      if (error instanceof LeaseLostError) return { status: "lost" };
      throw error;
    }
  }

  /** Ends the lease locally without telling the server (the client is closing), unless its deadline ended it first. */
  abandon(): void {
    if (this.checkDeadline()) this.end("client-closed");
  }

  private async renewNow(options: LeaseRenewOptions, automatic: AutomaticRenewal | undefined): Promise<LeaseRenewResult> {
    if (options.ttlMs !== undefined) {
      validTtlMs(options.ttlMs);
      if (this.init.safetyMarginMs !== undefined) validSafetyMarginMs(this.init.safetyMarginMs, options.ttlMs);
      const chosenInterval = this.init.autoRenew?.intervalMs;
      if (chosenInterval !== undefined) validRenewInterval(chosenInterval, options.ttlMs, this.init.safetyMarginMs);
    }
    if (!this.held) return { status: "lost" };
    const ttlMs = options.ttlMs ?? this.ttlValueMs;
    const askedAtMs = this.driver.clock();
    // Once sent, the renewal may be processed at any moment, answered or not: a shorter ttl ends the
    // server's lease sooner from then on (protocol.md §4), so the local deadline is shortened now,
    // not when the answer comes. (Sent at or after askedAtMs, so this deadline is never too late.)
    this.shortenDeadline(askedAtMs + ttlMs - this.marginFor(ttlMs));
    let outcome: RenewOutcome;
    try {
      outcome = await this.driver.renew(this, ttlMs, () => this.lossReason, options, automatic);
    } catch (error) {
      if (error instanceof LeaseLostError) {
        // The lease ended (its deadline, or a release) before the renewal could be sent (again).
        this.checkDeadline();
        return { status: "lost" };
      }
      // Not known whether the server applied it, nor whether it will later: the deadline shortened
      // above stands, and if it runs later, every deadline after it is bounded too.
      this.uncertainTtlMs = Math.min(this.uncertainTtlMs, ttlMs);
      throw error;
    }
    const { result, sentAtMs, uncertain } = outcome;
    // An attempt that timed out may still run, after this answer and after later renewals.
    if (uncertain) this.uncertainTtlMs = Math.min(this.uncertainTtlMs, ttlMs);
    // An answer after the local deadline finds the lease ended, even if the server renewed it: the
    // holder was told to stop at the deadline, and a lease that ended stays ended. The server's
    // lease then runs out at its renewed expiry.
    if (!this.checkDeadline()) return { status: "lost" };
    if (result.status === "renewed") {
      this.ttlValueMs = ttlMs;
      this.expiresAtValue = result.expiresAt;
      // A renewal of uncertain outcome run late, after this one was sent, ends the server's lease no
      // sooner than this one's send plus the shorter of the two ttls.
      const boundMs = Math.min(ttlMs, this.uncertainTtlMs);
      this.deadlineMs = sentAtMs + boundMs - this.marginFor(boundMs);
      this.deadlineSentAtMs = sentAtMs;
      if (this.deadlineTimer !== undefined) this.armDeadline();
      // The next automatic renewal is due an interval after this one, at the interval of the new ttl.
      if (this.renewTimer !== undefined) {
        clearTimeout(this.renewTimer);
        this.scheduleNextRenewal();
      }
      this.checkDeadline();
    } else {
      this.end("refused");
    }
    return result;
  }

  private shortenDeadline(deadlineMs: number): void {
    if (this.state.kind !== "held" || deadlineMs >= this.deadlineMs) return;
    this.deadlineMs = deadlineMs;
    if (this.deadlineTimer !== undefined) this.armDeadline();
    this.checkDeadline();
  }

  private marginFor(ttlMs: number): number {
    return this.init.safetyMarginMs ?? defaultSafetyMarginMs(ttlMs);
  }

  /**
   * The auto-renewal interval now: the one chosen, or a third of the current ttl; at most a third of
   * the ttl the deadlines are bounded by after a renewal of uncertain outcome.
   */
  private renewIntervalMs(): number {
    const intervalMs = this.init.autoRenew?.intervalMs ?? this.ttlValueMs / 3;
    return this.uncertainTtlMs < this.ttlValueMs ? Math.min(intervalMs, this.uncertainTtlMs / 3) : intervalMs;
  }

  /**
   * Schedules the next automatic renewal an interval after the request that set the deadline was
   * first sent, not after its answer came: the deadline counts from that send, so a slow round trip
   * must not eat into the time left for the renewal and its retries.
   */
  private scheduleNextRenewal(): void {
    this.scheduleRenewal(Math.max(0, this.deadlineSentAtMs + this.renewIntervalMs() - this.driver.clock()));
  }

  private scheduleRenewal(delayMs: number): void {
    // Capped like every timer (a renewal sooner than asked is harmless); see MAX_TIMER_MS.
    // Not unref'd: like the client's connections, a lease that renews itself keeps the process alive
    // until it is released, lost or its client closed (an outage must not end the process under it).
    this.renewTimer = setTimeout(() => void this.autoRenew(), timerDelay(delayMs));
  }

  private async autoRenew(): Promise<void> {
    this.renewTimer = undefined;
    if (!this.held) return;
    const interval = this.renewIntervalMs();
    try {
      const automatic: AutomaticRenewal = {
        // Half the time left before the deadline at most, asked anew for each attempt: one that times
        // out leaves the other half for the next (on another endpoint, after a pause of at most a
        // quarter of what is left), and that one half of the rest, and so on. Not a share of the
        // interval: a round trip longer than that would time out every attempt, and lose a lease the
        // server renewed each time.
        // Whole milliseconds: the figure shows in timeout messages.
        attemptTimeoutMs: () => Math.max(1, Math.floor(this.remainingMs / 2)),
        // Every failed attempt is a warning: with many attempts the renewal as a whole may fail only
        // at the deadline, too late to tell anyone while the lease is still held.
        attemptFailed: (error) => {
          if (this.held) this.driver.warn(error);
        },
      };
      const result = await this.queueRenewal(
        {
          signal: this.signal,
          timeoutMs: this.init.autoRenewTimeoutMs,
          ...(this.init.autoRenewAttempts === undefined ? {} : { attempts: this.init.autoRenewAttempts }),
        },
        automatic,
      );
      // A renewal made meanwhile (renew() by hand) may have scheduled the next one already.
      if (result.status === "renewed" && this.renewTimer === undefined) this.scheduleNextRenewal();
    } catch (error) {
      if (!this.held) return;
      this.driver.warn(error as BatonError);
      // Try again soon: the local deadline, not this loop, decides when the lease is lost.
      if (this.renewTimer === undefined) this.scheduleRenewal(Math.min(interval, Math.max(1, this.remainingMs / 2)));
    }
  }

  private armDeadline(): void {
    clearTimeout(this.deadlineTimer);
    if (this.state.kind !== "held") return;
    const delayMs = Math.max(0, this.deadlineMs - this.driver.clock());
    this.deadlineTimer = setTimeout(
      () => {
        this.deadlineTimer = undefined;
        // A timer may fire a little early, and a deadline past MAX_TIMER_MS takes several: re-arm.
        if (this.checkDeadline()) this.armDeadline();
      },
      timerDelay(Math.min(Math.ceil(delayMs), DEADLINE_RECHECK_MS)),
    );
  }

  /** Ends the lease if its deadline passed or its client was closed, whichever came first; true while it is still held. */
  private checkDeadline(): boolean {
    if (this.state.kind !== "held") return false;
    const closedAtMs = this.driver.closedAtMs();
    if (closedAtMs !== undefined && closedAtMs < this.deadlineMs) {
      this.end("client-closed");
      return false;
    }
    if (this.driver.clock() < this.deadlineMs) return true;
    this.end("deadline");
    return false;
  }

  private end(reason: LeaseLossReason): void {
    if (this.state.kind !== "held") return;
    this.state = { kind: "ended", reason };
    clearTimeout(this.deadlineTimer);
    clearTimeout(this.renewTimer);
    this.deadlineTimer = undefined;
    this.renewTimer = undefined;
    this.controller?.abort(new LeaseLostError(reason));
    this.driver.ended(this);
  }
}
