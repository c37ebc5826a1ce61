/**
 * Ctrl-C (SIGINT) while an ACQUIRE is under way. The server may grant it after lockctl is gone, to an
 * owner id printed nowhere yet (a random one, unless --owner gave it), and the lease would then stay
 * held for its ttl with nobody able to release it. So lockctl says, before it exits 130, what the
 * ACQUIRE was: its lock, its owner and its request id, with the commands that see and end the lease.
 */
import type { BatonClient, RequestEvent } from "../client.js";
import { LockId } from "../ids.js";
import { ExitCode } from "./exit-codes.js";

/** How a lock was named on lockctl's command line (NAME, with --hex-id for a raw id), and where it was asked for. */
export interface LockArgument {
  readonly name: string;
  readonly hexId: boolean;
  /** The endpoints the request went to, as --endpoints takes them. */
  readonly endpoints: string;
}

/** The stderr line for an ACQUIRE interrupted under way (sent, or about to be: a refused dial sends nothing). */
export function interruptedAcquireLine(event: RequestEvent, lock: LockArgument): string {
  const command = (verb: string) => `lockctl ${verb} ${followUpArguments(lock, event.owner)}`;
  return (
    `lockctl: interrupted with an ACQUIRE under way (lock=${event.lock} owner=${event.owner} request=${event.requestId}), which the server may still grant if it got it: ` +
    `\`${command("inspect")}\` shows whether it did, \`${command("release")}\` ends the lease\n`
  );
}

/**
 * The arguments that name the same lease to the same server, ready to paste into a shell: the
 * endpoints it was asked of (a default from the environment may not be there where it is pasted),
 * the owner, and the name quoted, after `--` when it could pass for an option.
 */
function followUpArguments(lock: LockArgument, owner: string): string {
  // A name a terminal would not show as it is (control or invisible characters), or that would break
  // the backquotes around the command, is given as its id instead.
  const shown = !/[\p{Cc}\p{Cf}`]/u.test(lock.name);
  const name = shown ? lock.name : (lock.hexId ? LockId.fromHex(lock.name) : LockId.fromName(lock.name)).hex;
  const options = `--endpoints ${shellWord(lock.endpoints)} --owner ${owner}${lock.hexId || !shown ? " --hex-id" : ""}`;
  return `${options} ${name.startsWith("-") ? "-- " : ""}${shellWord(name)}`;
}

/** A word a POSIX shell reads back as exactly `text`. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * From now until the returned function is called, SIGINT prints the ACQUIRE the client last sent, if
 * any, and exits 130 (128 + SIGINT, what a shell reports for a command Ctrl-C ended).
 */
export function reportAcquireOnInterrupt(client: BatonClient, lock: LockArgument): () => void {
  let acquire: RequestEvent | undefined;
  const onRequest = (event: RequestEvent) => {
    if (event.command === "ACQUIRE") acquire = event;
  };
  const onInterrupt = () => {
    if (acquire !== undefined) process.stderr.write(interruptedAcquireLine(acquire, lock));
    process.exit(ExitCode.Interrupted);
  };
  client.on("request", onRequest);
  process.on("SIGINT", onInterrupt);
  return () => {
    client.off("request", onRequest);
    process.off("SIGINT", onInterrupt);
  };
}
