/**
 * How lockctl prints results: one readable line, or one JSON object per command with --json; and
 * what became of the writing, since an answer its reader never got (a full disk, a pipe whose reader
 * has gone) must not pass for one delivered. A stdout closed with `>&-` cannot be told: Node opens
 * /dev/null in its place, read-write, as `subprocess.DEVNULL` and `stdio: "ignore"` open it, and
 * those are a caller's choice to discard the output.
 */
import type { LockId } from "../ids.js";

/** Whether output reached stdout, or the error that kept it from it. */
export type WriteOutcome = { readonly written: true } | { readonly written: false; readonly error: NodeJS.ErrnoException };

const WRITTEN: WriteOutcome = { written: true };

/** Whether anything was written to stdout: with nothing written, nothing can have been lost. */
let wroteAnything = false;

/**
 * Call once, before anything is written. A write error on stdout is reported to whoever awaits the
 * write (writeOut, outputSettled), never thrown from an event; one on stderr has nowhere left to go,
 * and leaves the exit code as it was.
 */
export function watchOutput(): void {
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
}

/** Writes to stdout; resolves once the text has been handed on, or has failed to be. */
export function writeOut(text: string): Promise<WriteOutcome> {
  if (text.length > 0) wroteAnything = true;
  return new Promise((resolve) => {
    process.stdout.write(text, (error) => resolve(error == null ? WRITTEN : { written: false, error: error as NodeJS.ErrnoException }));
  });
}

/**
 * Whether everything written to stdout so far got there: an empty write's callback comes after theirs,
 * with their error. Nothing written is nothing lost: an error's exit code, or the code of the command
 * `run` ran, stands whatever stdout is.
 */
export function outputSettled(): Promise<WriteOutcome> {
  return wroteAnything ? writeOut("") : Promise.resolve(WRITTEN);
}

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

export function printResult(printed: Printed, json: boolean): Promise<WriteOutcome> {
  return writeOut(json ? `${toJson(printed)}\n` : `${toLine(printed)}\n`);
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
