/** How lockctl prints results: one readable line, or one JSON object per command with --json. */
import type { LockId } from "../ids.js";

export interface Printed {
  readonly command: string;
  readonly lock: LockId;
  readonly owner: string;
  readonly status: string;
  readonly fencingToken?: bigint;
  /** Server time (unix ms). */
  readonly expiresAt?: bigint;
  /** A release's server time (unix ms): the wire's expires_at, named as the SDK names it. */
  readonly releasedAt?: bigint;
  /** acquire: why a granted lease is not held (the grant came after its local deadline). */
  readonly leaseLost?: string;
}

export function printResult(printed: Printed, json: boolean): void {
  process.stdout.write(json ? `${toJson(printed)}\n` : `${toLine(printed)}\n`);
}

function toJson(printed: Printed): string {
  return JSON.stringify(
    {
      command: printed.command,
      lock: printed.lock.label,
      lockId: printed.lock.hex,
      owner: printed.owner,
      status: printed.status,
      ...(printed.fencingToken === undefined ? {} : { fencingToken: printed.fencingToken }),
      ...(printed.expiresAt === undefined ? {} : { expiresAt: printed.expiresAt }),
      ...(printed.releasedAt === undefined ? {} : { releasedAt: printed.releasedAt }),
      ...(printed.leaseLost === undefined ? {} : { leaseLost: printed.leaseLost }),
    },
    // Tokens and times stay below 2^53 (protocol.md); a larger one is printed as a string, never rounded.
    (_key, value: unknown) => (typeof value === "bigint" ? (value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString()) : value),
  );
}

function toLine(p: Printed): string {
  const lock = p.lock.label;
  const token = p.fencingToken === undefined ? "" : ` token=${p.fencingToken}`;
  const when = p.expiresAt === undefined ? "" : time(p.expiresAt);
  switch (p.status) {
    case "acquired":
      return `acquired ${lock}${token} expires=${when} owner=${p.owner}${p.leaseLost === undefined ? "" : ` lease-lost=${p.leaseLost}`}`;
    case "renewed":
      return `renewed ${lock}${token} expires=${when} owner=${p.owner}`;
    case "released":
      return `released ${lock}${token}`;
    case "held":
      return `held ${lock}: held until ${when} (not granted)`;
    case "heldByYou":
      return `held ${lock}${token} expires=${when} by you (owner=${p.owner})`;
    case "heldByOther":
      return `held ${lock} by another owner until ${when}`;
    case "notHeld":
      return `not-held ${lock}: owner ${p.owner} does not hold it`;
    case "free":
      return `free ${lock}`;
    case "expired":
      return `expired ${lock}${token}: owner ${p.owner}'s lease ran out at ${when}`;
    default:
      return `${p.status} ${lock}`;
  }
}

function time(unixMs: bigint): string {
  const ms = Number(unixMs);
  return Number.isFinite(ms) && ms < 8.64e15 ? `${new Date(ms).toISOString()}` : `${unixMs}`;
}
