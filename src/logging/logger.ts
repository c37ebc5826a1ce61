import { fstatSync } from "node:fs";

/** Operational messages go to stderr, one line each; stdout carries only the "listening" line. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** When stderr lines start with the time: `auto` is always, except into the systemd journal. */
export type LogTimestamps = "auto" | "always" | "never";

/**
 * Whether stderr is the systemd journal, which stamps every line itself. systemd names the stream
 * it connects as `JOURNAL_STREAM=device:inode`; a variable inherited from a parent whose stderr
 * was the journal names another file, so the descriptor is compared, not just the variable's presence.
 */
export function stderrIsJournal(journalStream: string | undefined = process.env.JOURNAL_STREAM): boolean {
  if (journalStream === undefined || journalStream === "") return false;
  try {
    // As bigints: inode numbers may pass 2^53, where a double would round them.
    const stderr = fstatSync(2, { bigint: true });
    return journalStream === `${stderr.dev}:${stderr.ino}`;
  } catch {
    return false;
  }
}

/** Dates go up to ±8.64e15 ms (the year 275,760); lockd's clock, and so its wall clock, may go further. */
const LATEST_DATE_MS = 8.64e15;

/**
 * A line's time: ISO 8601 UTC to the millisecond, or the unix milliseconds themselves for a wall
 * clock set past what a date can show (a log line must never be what stops lockd).
 */
export function stampText(unixMs: number): string {
  return Math.abs(unixMs) <= LATEST_DATE_MS ? new Date(unixMs).toISOString() : `unix-ms:${unixMs}`;
}

/**
 * Lines on stderr: `lockd: message`, after the UTC time to the millisecond when `stamped` (so that
 * a log file says when a clock step, a disk error or a refusal happened).
 */
export function stderrLogger(stamped: boolean): Logger {
  const write = stamped
    ? (prefix: string, message: string) => process.stderr.write(`${stampText(Date.now())} ${prefix}${message}\n`)
    : (prefix: string, message: string) => process.stderr.write(`${prefix}${message}\n`);
  return {
    info: (message) => write("lockd: ", message),
    warn: (message) => write("lockd: warning: ", message),
    error: (message) => write("lockd: error: ", message),
  };
}

export function shouldStamp(when: LogTimestamps): boolean {
  return when === "always" || (when === "auto" && !stderrIsJournal());
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
