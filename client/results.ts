/**
 * The typed outcomes of each command, and the pure mapping from a decoded 17-byte reply to them.
 * Statuses 4 (not leader) and 6 (unavailable) never get here: the client retries them. Status 3 and
 * any status a command cannot have are errors, not results.
 */
import { COMMAND_NAMES, Command, Status, encodeResponse, type Response } from "../src/protocol/index.js";
import { InvalidRequestError, ProtocolError } from "./errors.js";
import type { Lease } from "./lease.js";

/** Times are the server's clock in unix milliseconds; informational only (see Lease for the local deadline). */
export type AcquireResult =
  | { readonly status: "acquired"; readonly lease: Lease; readonly fencingToken: bigint; readonly expiresAt: bigint }
  /** Someone holds the lock (this owner included, if it acquired it with another request). */
  | { readonly status: "held"; readonly expiresAt: bigint };

/** The server's answer to ACQUIRE, before the client wraps a grant in a Lease. */
export type AcquireOutcome =
  | { readonly status: "acquired"; readonly fencingToken: bigint; readonly expiresAt: bigint }
  | { readonly status: "held"; readonly expiresAt: bigint };

export type RenewResult =
  | { readonly status: "renewed"; readonly fencingToken: bigint; readonly expiresAt: bigint }
  /** Another owner holds it, or it is free and this owner was not its last holder. */
  | { readonly status: "notHeld" }
  /** This owner's lease ran out and nobody acquired since: its token and expiry. */
  | { readonly status: "expired"; readonly fencingToken: bigint; readonly expiresAt: bigint };

export type ReleaseResult =
  | { readonly status: "released"; readonly fencingToken: bigint; readonly releasedAt: bigint }
  | { readonly status: "notHeld" }
  | { readonly status: "expired"; readonly fencingToken: bigint; readonly expiresAt: bigint };

export type InspectResult =
  | { readonly status: "heldByYou"; readonly fencingToken: bigint; readonly expiresAt: bigint }
  | { readonly status: "heldByOther"; readonly expiresAt: bigint }
  | { readonly status: "free" }
  | { readonly status: "expired"; readonly fencingToken: bigint; readonly expiresAt: bigint };

/** What Lease.renew answers: a server result, or `lost` when the lease was already given up locally. */
export type LeaseRenewResult = RenewResult | { readonly status: "lost" };

/**
 * What Lease.release answers: a server result, or `lost` when the lease had already ended locally
 * (its deadline passed, a renewal was refused, or it was released before) and nothing was sent, since
 * the owner may hold a newer lease of the same lock that a RELEASE would end.
 */
export type LeaseReleaseResult = ReleaseResult | { readonly status: "lost" };

export function acquireOutcome(response: Response): AcquireOutcome {
  checkNumbers(Command.Acquire, response);
  switch (response.status) {
    case Status.Ok:
      return { status: "acquired", fencingToken: response.fencingToken, expiresAt: response.expiresAt };
    case Status.Held:
      return { status: "held", expiresAt: response.expiresAt };
    default:
      return unexpected(Command.Acquire, response);
  }
}

export function renewResult(response: Response): RenewResult {
  checkNumbers(Command.Renew, response);
  switch (response.status) {
    case Status.Ok:
      return { status: "renewed", fencingToken: response.fencingToken, expiresAt: response.expiresAt };
    case Status.NotHeld:
      return { status: "notHeld" };
    case Status.Expired:
      return { status: "expired", fencingToken: response.fencingToken, expiresAt: response.expiresAt };
    default:
      return unexpected(Command.Renew, response);
  }
}

export function releaseResult(response: Response): ReleaseResult {
  checkNumbers(Command.Release, response);
  switch (response.status) {
    case Status.Ok:
      return { status: "released", fencingToken: response.fencingToken, releasedAt: response.expiresAt };
    case Status.NotHeld:
      return { status: "notHeld" };
    case Status.Expired:
      return { status: "expired", fencingToken: response.fencingToken, expiresAt: response.expiresAt };
    default:
      return unexpected(Command.Release, response);
  }
}

export function inspectResult(response: Response): InspectResult {
  checkNumbers(Command.Inspect, response);
  switch (response.status) {
    case Status.Ok:
      return { status: "heldByYou", fencingToken: response.fencingToken, expiresAt: response.expiresAt };
    case Status.Held:
      return { status: "heldByOther", expiresAt: response.expiresAt };
    case Status.NotHeld:
      return { status: "free" };
    case Status.Expired:
      return { status: "expired", fencingToken: response.fencingToken, expiresAt: response.expiresAt };
    default:
      return unexpected(Command.Inspect, response);
  }
}

/**
 * Tokens and times are below 2^53 in every reply (protocol.md, conventions), and an answer about a
 * lease (status 0 or 5, for any command) carries its token, which is at least 1: anything else is not
 * lockd answering (a port that echoes what it is sent, or answers zeros), and must not pass for a
 * fact about the lock.
 */
function checkNumbers(command: Command, response: Response): void {
  rejectHttp(response);
  const { fencingToken, expiresAt } = response;
  const aboutLease = response.status === Status.Ok || response.status === Status.Expired;
  if (fencingToken > MAX_WIRE_NUMBER || expiresAt > MAX_WIRE_NUMBER || (aboutLease && fencingToken === 0n)) {
    throw new ProtocolError(
      `impossible answer to ${COMMAND_NAMES[command]}: status ${response.status}, token ${fencingToken}, expires_at ${expiresAt} ` +
        NOT_LOCKD_HINT,
    );
  }
}

const NOT_LOCKD_HINT = "(no lockd answers that: is the endpoint a lockd's --listen address?)";

const HTTP_PREFIX = Buffer.from("HTTP/", "latin1");

/**
 * An HTTP server answers the first bytes of a frame with its status line ("HTTP/1.1 400 ..."), which
 * reads as a reply of status 72. Said as what it is: the endpoint is an HTTP server, most likely
 * lockd's own metrics address, which answers a lock client there with a 400 that says so.
 */
function rejectHttp(response: Response): void {
  // Status 72 ("H") first: every answer passes here, and no lockd answer has it.
  if (response.status !== HTTP_PREFIX[0]) return;
  if (!encodeResponse(response).subarray(0, HTTP_PREFIX.length).equals(HTTP_PREFIX)) return;
  throw new ProtocolError("the endpoint answered in HTTP: it is an HTTP server (perhaps lockd's --metrics-listen address), not lockd's lock port (its --listen address)", true);
}

const MAX_WIRE_NUMBER = BigInt(Number.MAX_SAFE_INTEGER);

function unexpected(command: Command, response: Response): never {
  const name = COMMAND_NAMES[command];
  if (response.status === Status.Invalid) throw new InvalidRequestError(name);
  throw new ProtocolError(`unexpected status ${response.status} for ${name} ${NOT_LOCKD_HINT}`);
}
