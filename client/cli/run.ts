/**
 * `lockctl run`: hold a lock while a command runs. Acquire (waiting up to --wait), start the command
 * with the fencing token in its environment, renew in the background, release when it exits and exit
 * with its code. If the lease is lost, the command gets SIGTERM (SIGKILL after --kill-after) and
 * lockctl exits with ExitCode.LeaseLost, whatever the command's own code, as soon as the command has
 * exited, without a release (the lease has ended: see below). A grant that arrives with its lease
 * already ended never starts the command, and exits with ExitCode.LeaseLost too.
 *
 * The command runs in a process group of its own, and every signal goes to the whole group: a shell
 * script, `npm run` or a pipeline works through child processes, and after a lost lease none of them
 * may go on writing with the old token. (Node can give a child a group of its own only with a
 * session of its own, so the command has no controlling terminal; and a terminal's Ctrl-C, Ctrl-\
 * and Ctrl-Z reach only lockctl, which passes the first two on like SIGTERM and SIGHUP, and stops the
 * command along with itself on the third: see stopWithCommand.)
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import type { BatonClient } from "../client.js";
import { LockId } from "../ids.js";
import { ExitCode } from "./exit-codes.js";
import { reportAcquireOnInterrupt, type LockArgument } from "./interrupt.js";

export interface RunOptions {
  readonly lock: LockId;
  /** The lock as the command line gave it, for the commands a Ctrl-C during the acquire suggests. */
  readonly lockArgument: LockArgument;
  readonly ttlMs: number;
  readonly waitMs: number;
  readonly killAfterMs: number;
  readonly command: string;
  readonly args: readonly string[];
}

/** Signals lockctl passes on to the command's process group. */
const FORWARDED_SIGNALS = ["SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT"] as const;

/** Sends `signal` to every process of the group the command leads; one already gone is no error. */
function signalGroup(leaderPid: number | undefined, signal: NodeJS.Signals): void {
  if (leaderPid === undefined) return; // never started
  try {
    process.kill(-leaderPid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
  }
}

export async function runLocked(client: BatonClient, options: RunOptions): Promise<number> {
  // A Ctrl-C before the command starts says what the ACQUIRE was; once it runs, it is passed on to it.
  const stopReporting = reportAcquireOnInterrupt(client, options.lockArgument);
  let acquired: Awaited<ReturnType<BatonClient["acquire"]>>;
  try {
    acquired = await client.acquire(options.lock, { ttlMs: options.ttlMs, waitMs: options.waitMs, autoRenew: true });
  } finally {
    stopReporting();
  }
  if (acquired.status === "held") {
    process.stderr.write(`lockctl: ${options.lock.label} is held (waited ${options.waitMs} ms)\n`);
    return ExitCode.LockBusy;
  }
  const { lease } = acquired;
  const lostAlready = lease.lossReason;
  if (lostAlready !== undefined) {
    // Granted past the local deadline (a slow round trip, or a ttl the margin takes whole): the lock
    // may pass to another holder at any moment, so the command is not started. (The lease's signal
    // is aborted already, and a listener added now would never be called.)
    process.stderr.write(`lockctl: lease on ${options.lock.label} lost (${lostAlready}) before the command started; not running it\n`);
    return ExitCode.LeaseLost;
  }
  const child = spawn(options.command, options.args, {
    stdio: "inherit",
    detached: true, // its own process group (and session), so that signals reach all it started
    env: { ...process.env, BATON_FENCING_TOKEN: lease.fencingToken.toString(), BATON_LOCK: options.lock.label, BATON_OWNER: lease.owner },
  });

  let exited = false;
  let leaseLost = false;
  let killTimer: NodeJS.Timeout | undefined;
  const onLeaseLost = () => {
    if (exited) return;
    leaseLost = true;
    // The signals first: a write to a terminal can stop lockctl (SIGTTOU, with `stty tostop`).
    signalGroup(child.pid, "SIGTERM");
    // A stopped process acts on SIGTERM only once continued (only SIGKILL ends it as it is): the
    // command may be stopped by lockctl (below) or by anyone else.
    signalGroup(child.pid, "SIGCONT");
    process.stderr.write(`lockctl: lease on ${options.lock.label} lost (${lease.lossReason ?? "unknown"}); sent SIGTERM to the command\n`);
    killTimer = setTimeout(() => signalGroup(child.pid, "SIGKILL"), options.killAfterMs);
  };
  lease.signal.addEventListener("abort", onLeaseLost, { once: true });
  const forwarders = FORWARDED_SIGNALS.map((signal) => {
    // Passed on, then lockctl waits for the command to exit, and releases.
    const forward = () => signalGroup(child.pid, signal);
    process.on(signal, forward);
    return () => process.off(signal, forward);
  });
  // Job control. A stopped lockctl cannot renew, so a command left running would outlive its lease:
  // on SIGTSTP (a terminal's Ctrl-Z, or a kill) lockctl stops the command's group (SIGSTOP, which
  // nothing can catch), then itself. When lockctl is continued (fg, bg, a kill that continues it,
  // systemd's SIGCONT after its SIGTERM), so is the command; reading `held` first ends a lease whose
  // deadline passed meanwhile, and onLeaseLost then sends SIGTERM, which the command meets before
  // anything else. (Where the kernel would discard a terminal's SIGTSTP, in a process group no shell
  // does job control for, it can only be a kill meant to stop lockctl.)
  let commandStopped = false;
  const stopWithCommand = () => {
    commandStopped = true;
    signalGroup(child.pid, "SIGSTOP");
    process.kill(process.pid, "SIGSTOP");
  };
  const continueCommand = () => {
    if (!commandStopped) return;
    commandStopped = false;
    // Not held and not lost: cannot be (reading `held` runs onLeaseLost), but never continue then.
    if (lease.held || leaseLost) signalGroup(child.pid, "SIGCONT");
  };
  process.on("SIGTSTP", stopWithCommand);
  process.on("SIGCONT", continueCommand);

  const status = await new Promise<number>((resolve) => {
    child.once("error", (error: NodeJS.ErrnoException) => {
      process.stderr.write(`lockctl: cannot run ${options.command}: ${error.message}\n`);
      resolve(ExitCode.CommandNotFound);
    });
    child.once("exit", (code, signal) => {
      resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0)));
    });
  });
  exited = true;
  clearTimeout(killTimer);
  if (commandStopped && !lease.held && !leaseLost) {
    // Stopped as the command exited, and continued after the lease ran out (the exit was handled
    // before the deadline's timer): what the command left in its group is stopped, and must not be
    // continued past its lease. Lost, as if the timer had come first.
    leaseLost = true;
    process.stderr.write(`lockctl: lease on ${options.lock.label} lost (${lease.lossReason ?? "unknown"}) while stopped\n`);
  }
  // After a lost lease nothing the command started may outlive it: whatever of its group is still
  // running once the command itself has exited (a background job, a child that ignored SIGTERM) is
  // killed now, rather than left writing with the old token after lockctl has reported the loss.
  if (leaseLost) signalGroup(child.pid, "SIGKILL");
  lease.signal.removeEventListener("abort", onLeaseLost);
  for (const stop of forwarders) stop();
  process.off("SIGTSTP", stopWithCommand);
  process.off("SIGCONT", continueCommand);
  // Stopped as the command exited, under a lease still held: what it left running in its group (a
  // background job) must not stay stopped, with nobody left to continue it. (After a lost lease it
  // was killed above; SIGKILL ends a stopped process too.)
  if (commandStopped && !leaseLost) signalGroup(child.pid, "SIGCONT");

  // A lost lease is not released: the lock ends at its ttl, and a RELEASE could end a newer lease of
  // the same owner (Lease.release answers `lost` and sends nothing). Whoever waits on lockctl (a
  // process manager) hears of the loss at once.
  if (leaseLost) return ExitCode.LeaseLost;
  try {
    const released = await lease.release();
    if (released.status !== "released") {
      // The command ran under the lease to its end: its status stands, but the lock was not released.
      const why = released.status === "lost" ? "no answer before the lease's local deadline" : `the server answered ${released.status}`;
      process.stderr.write(`lockctl: release of ${options.lock.label} not done (${why}); it expires after its ttl\n`);
    }
  } catch (error) {
    process.stderr.write(`lockctl: release of ${options.lock.label} failed (it expires after its ttl): ${(error as Error).message}\n`);
  }
  return status;
}
