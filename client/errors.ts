/**
 * Errors the SDK throws. Expected outcomes (a lock held by someone else, a lease that is not yours,
 * one that expired) are typed results, never errors; errors are for misuse, for connections that
 * fail, and for requests whose retries ran out. Every class has a stable `code` to branch on, and the
 * underlying error, when there is one, is kept in `cause`.
 */

export type BatonErrorCode =
  | "BATON_INVALID_ARGUMENT"
  | "BATON_INVALID_REQUEST"
  | "BATON_CLIENT_CLOSED"
  | "BATON_ABORTED"
  | "BATON_TIMEOUT"
  | "BATON_CONNECTION"
  | "BATON_NOT_LEADER"
  | "BATON_UNAVAILABLE"
  | "BATON_RETRIES_EXHAUSTED"
  | "BATON_PROTOCOL"
  | "BATON_LEASE_LOST"
  | "BATON_LOCK_WAIT_TIMEOUT";

export class BatonError extends Error {
  readonly code: BatonErrorCode;

  constructor(code: BatonErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The caller passed something the SDK cannot use: a malformed id, a ttl out of range, no endpoints. */
export class InvalidArgumentError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("BATON_INVALID_ARGUMENT", message, options);
  }
}

/** The server answered status 3: the request was malformed or out of its limits (e.g. ttl above --max-ttl). */
export class InvalidRequestError extends BatonError {
  constructor(readonly command: string) {
    super("BATON_INVALID_REQUEST", `the server rejected the ${command} request as invalid (status 3)${command === "ACQUIRE" || command === "RENEW" ? ": check the ttl against the server's --max-ttl" : ""}`);
  }
}

/** The client was closed; no further requests are possible on it. */
export class ClientClosedError extends BatonError {
  constructor() {
    super("BATON_CLIENT_CLOSED", "the client is closed");
  }
}

/** The caller's AbortSignal fired. The request may still have been applied by the server. */
export class RequestAbortedError extends BatonError {
  constructor(reason: unknown) {
    super("BATON_ABORTED", "the request was aborted", { cause: reason });
  }
}

/** One attempt got no reply within `timeoutMs`. Retried; surfaces as the cause of RetriesExhaustedError. */
export class RequestTimeoutError extends BatonError {
  constructor(
    readonly endpoint: string,
    readonly timeoutMs: number,
  ) {
    super("BATON_TIMEOUT", `no reply from ${endpoint} within ${timeoutMs} ms`);
  }
}

/** Connecting failed, or the connection broke with requests in flight. Retried like a timeout. */
export class ConnectionError extends BatonError {
  constructor(
    readonly endpoint: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("BATON_CONNECTION", `${endpoint}: ${message}`, options);
  }
}

/** The endpoint answered status 4: it is not the leader. Followed transparently; seen only as a cause. */
export class NotLeaderError extends BatonError {
  constructor(
    readonly endpoint: string,
    readonly leaderHint: bigint,
  ) {
    super("BATON_NOT_LEADER", `${endpoint} is not the leader (hint: node ${leaderHint === 0n ? "unknown" : leaderHint})`);
  }
}

/** The server answered status 6: it cannot decide now. Retried with the same request id; seen only as a cause. */
export class ServerUnavailableError extends BatonError {
  constructor(readonly endpoint: string) {
    // What status 6 means (protocol.md, statuses), so that the message points at where to look: the
    // server is up and answering, but a limit of its own or its storage stops it from deciding.
    super("BATON_UNAVAILABLE", `${endpoint} is unavailable (status 6: a capacity limit of the server is reached, or its storage failed; see lockd's log)`);
  }
}

/**
 * Every attempt of one request failed. `cause` is the last attempt's error. The request may or may
 * not have been applied; retrying it later is safe only with a NEW request, which is a new decision.
 */
export class RetriesExhaustedError extends BatonError {
  constructor(
    readonly command: string,
    readonly attempts: number,
    readonly requestId: string,
    cause: unknown,
    /** Why the retries stopped before `attempts` ran out, when they did. */
    stoppedEarly?: string,
  ) {
    const last = cause instanceof Error ? `: ${cause.message}` : "";
    const early = stoppedEarly === undefined ? "" : ` (${stoppedEarly})`;
    super("BATON_RETRIES_EXHAUSTED", `${command} failed after ${attempts} attempt(s)${early}${last}`, { cause });
  }
}

/** The server broke the protocol (a status a command cannot have, a reply nobody asked for). */
export class ProtocolError extends BatonError {
  /** `fromHttpServer`: the answer was an HTTP status line, so the endpoint is no lockd's lock port at all. */
  constructor(
    message: string,
    readonly fromHttpServer = false,
  ) {
    super("BATON_PROTOCOL", message);
  }
}

/** Why a lease may no longer be held. */
export type LeaseLossReason =
  /** The server refused a renewal (the lease is not ours any more, or it expired). */
  | "refused"
  /** The local deadline passed without a successful renewal. */
  | "deadline"
  /** The lease was released by this client. */
  | "released"
  /** The client was closed, so nothing renews the lease any more. */
  | "client-closed";

/** The reason `lease.signal` aborts with. */
export class LeaseLostError extends BatonError {
  /**
   * What withLock's callback returned, when withLock throws this because the lease was lost while the
   * callback ran; undefined otherwise.
   */
  readonly result: unknown;

  constructor(
    readonly reason: LeaseLossReason,
    detail?: string,
    options: { readonly result?: unknown } = {},
  ) {
    super("BATON_LEASE_LOST", `the lease may no longer be held (${reason})${detail === undefined ? "" : `: ${detail}`}`);
    this.result = options.result;
  }
}

/** withLock could not acquire the lock within `waitMs`. */
export class LockWaitTimeoutError extends BatonError {
  constructor(
    readonly lock: string,
    readonly waitMs: number,
    /** The holder's expiry (server time, unix ms) in the last refusal. */
    readonly holderExpiresAt: bigint,
  ) {
    super("BATON_LOCK_WAIT_TIMEOUT", `lock ${lock} is still held after waiting ${waitMs} ms`);
  }
}
