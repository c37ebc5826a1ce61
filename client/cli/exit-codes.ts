/**
 * lockctl's exit codes. For acquire, renew, release and inspect the exit code is the protocol status
 * of the answer (0, 1, 2 or 5); failures use the sysexits.h numbers; `run` adds two of its own and
 * otherwise exits with its command's code.
 */
export const ExitCode = {
  /** acquired, renewed, released; inspect: held by you. */
  Ok: 0,
  /** acquire: held (by another owner, or by you through an earlier acquire); inspect: held by another owner. */
  Held: 1,
  /** renew, release: this owner does not hold the lock; inspect: the lock is free. */
  NotHeld: 2,
  /** renew, release, inspect: this owner's lease expired and nobody acquired since. */
  Expired: 5,
  /** Bad flags or arguments, or the server rejected the request as invalid (e.g. ttl above its --max-ttl). */
  Usage: 64,
  /** No server could be reached, or every retry of the request failed. */
  Unavailable: 69,
  /** The server broke the protocol, or lockctl failed unexpectedly. */
  Software: 70,
  /**
   * The output could not be written (EX_IOERR): a full disk, a reader gone (EPIPE)
   * before an answer was written. An acquire granted meanwhile is released first: nobody has its owner id.
   */
  OutputFailed: 74,
  /** run: the lock was still held after --wait (by another owner, or by this owner id through an earlier acquire). */
  LockBusy: 75,
  /**
   * run: the lease was lost while the command ran (the command was sent SIGTERM), or before it
   * started (not run). acquire: granted after the lease's local deadline, so it may have passed on.
   */
  LeaseLost: 76,
  /** run: the command could not be started (not found, not executable). */
  CommandNotFound: 127,
  /**
   * Ctrl-C (SIGINT), 128 + its number as a shell reports it: after saying what an ACQUIRE in flight
   * was (acquire, run before its command starts), or printing bench's summary so far.
   */
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
