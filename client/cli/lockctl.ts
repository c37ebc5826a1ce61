#!/usr/bin/env node
/**
 * lockctl: the baton command line. acquire/renew/release/inspect one lock, hold a lock while a
 * command runs (run), or load a server (bench). Exit codes: see exit-codes.ts and client/README.md.
 */
import { Command, CommanderError, InvalidArgumentError as FlagError, Option } from "commander";
import { MAX_TIMER_MS } from "../backoff.js";
import { BatonClient, DEFAULT_ATTEMPTS, type BatonClientOptions } from "../client.js";
import { DEFAULT_HOST, DEFAULT_PORT, endpointLabel, parseEndpointList, type Endpoint } from "../endpoints.js";
import { BatonError, InvalidArgumentError } from "../errors.js";
import { LockId, toOwnerBytes } from "../ids.js";
import type { Lease } from "../lease.js";
import { BENCH_COMMANDS, BENCH_DEFAULT_ATTEMPTS, bench, parseDurationMs, parseMix } from "./bench.js";
import { ExitCode } from "./exit-codes.js";
import { outputSettled, printResult, watchOutput, writeOut, type WriteOutcome } from "./output.js";
import { reportAcquireOnInterrupt, type LockArgument } from "./interrupt.js";
import { runLocked } from "./run.js";
import { commanderMessageLine } from "../../src/cli/commander-message.js";
import { packageVersion } from "../../src/version.js";

interface ConnectionFlags {
  /** Parsed when given on the command line; the default (from the environment) is still text. */
  readonly endpoints: Endpoint[] | string;
  readonly timeout?: number;
  readonly attempts?: number;
  readonly dedupeWindow?: number;
  readonly hexId: boolean;
  readonly owner?: string;
}

const DEFAULT_MIX = "acquire=40,renew=20,release=30,inspect=10";

/** acquire, renew, release and inspect print their answer as a line or, with --json, an object. */
interface JsonFlag {
  readonly json: boolean;
}

const DEFAULT_TTL_MS = 30_000;

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * A time in whole milliseconds, or whole units of s, m or h: `--ttl 30` is 30 ms (the wire's unit),
 * and `--ttl 30s` says what was meant where seconds were.
 */
function milliseconds(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const match = /^(\d+)(ms|s|m|h)?$/.exec(raw);
    if (match === null) throw new FlagError(`expected whole milliseconds, or a whole number with a unit (500ms, 30s, 2m, 1h), got "${raw}"`);
    const value = Number(match[1]) * UNIT_MS[match[2] ?? "ms"]!;
    if (value < min || value > max || !Number.isSafeInteger(value)) throw new FlagError(`expected ${min}..${max} ms, got ${raw}`);
    return value;
  };
}

function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw)) throw new FlagError(`expected a whole number, got "${raw}"`);
    const value = Number(raw);
    // A number past 2^53 - 1 is too large, not too small: the range says both ends.
    if (value < min || value > max || !Number.isSafeInteger(value)) throw new FlagError(`expected ${min}..${max}, got ${raw}`);
    return value;
  };
}

function flagParser<T>(parse: (raw: string) => T) {
  return (raw: string): T => {
    try {
      return parse(raw);
    } catch (error) {
      throw new FlagError((error as Error).message);
    }
  };
}

const endpointsOption = () => {
  const fromEnv = process.env.BATON_ENDPOINTS;
  const defaults = fromEnv === undefined || fromEnv.trim() === "" ? `${DEFAULT_HOST}:${DEFAULT_PORT}` : fromEnv;
  return new Option("--endpoints <list>", "comma-separated HOST:PORT list ($BATON_ENDPOINTS)").argParser(flagParser(parseEndpointList)).default(defaults, defaults);
};

const ownerOption = (what: string) =>
  new Option("--owner <hex>", `owner id, 1-32 hex digits ($BATON_OWNER); ${what}`).argParser(
    flagParser((raw) => {
      toOwnerBytes(raw);
      return raw;
    }),
  );

/** The options every lock command shares. */
function lockCommand(parent: Command, name: string, description: string): Command {
  const command = parent
    .command(name)
    .description(description)
    .argument("<name>", "lock name (hashed to the lock id as protocol.md says), or with --hex-id a raw id")
    .addOption(endpointsOption())
    .option("--hex-id", "NAME is a raw lock id in hex (1-32 digits), not a name", false)
    .option("--timeout <ms>", "per-attempt timeout, for the connect and the reply (default: 3000 connect, 5000 reply)", milliseconds(1))
    .option("--attempts <n>", `attempts per request before giving up (retries reuse the request id) (default: ${DEFAULT_ATTEMPTS})`, wholeNumber(1))
    .option("--dedupe-window <ms>", "the server's --dedupe-window: no retry is sent that could reach it later (default: 60000)", milliseconds(1));
  const envOwner = process.env.BATON_OWNER;
  if (envOwner !== undefined && envOwner !== "") {
    command.hook("preAction", () => {
      if (command.getOptionValueSource("owner") === "env") fromEnvironment("BATON_OWNER", () => toOwnerBytes(envOwner));
    });
    command.setOptionValueWithSource("owner", envOwner, "env");
  }
  return command;
}

/**
 * Parses a value taken from an environment variable. Commander checks flags as it reads them, but
 * not values set from the environment: a mistake there names the variable, since no flag was typed.
 */
function fromEnvironment<T>(variable: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new InvalidArgumentError(`$${variable}: ${(error as Error).message}`);
  }
}

/** A string is the default: $BATON_ENDPOINTS, or the built-in address. --endpoints arrives parsed. */
function endpointsOf(value: Endpoint[] | string): Endpoint[] {
  return typeof value === "string" ? fromEnvironment("BATON_ENDPOINTS", () => parseEndpointList(value)) : value;
}

/** The lock as this command line gave it, and the endpoints it used: what a follow-up command must repeat. */
function lockArgument(name: string, flags: ConnectionFlags): LockArgument {
  return { name, hexId: flags.hexId, endpoints: endpointsOf(flags.endpoints).map(endpointLabel).join(",") };
}

function lockOf(name: string, flags: ConnectionFlags): LockId {
  return flags.hexId ? LockId.fromHex(name) : LockId.fromName(name);
}

function clientFor(flags: ConnectionFlags, extra: Partial<BatonClientOptions> = {}): BatonClient {
  return new BatonClient({
    endpoints: endpointsOf(flags.endpoints),
    ...(flags.owner === undefined ? {} : { owner: flags.owner }),
    // One attempt's time covers its connect too: a host that never answers the dial is as dead as one
    // that never answers the request.
    ...(flags.timeout === undefined ? {} : { timeoutMs: flags.timeout, connectTimeoutMs: flags.timeout }),
    ...(flags.attempts === undefined ? {} : { attempts: flags.attempts }),
    ...(flags.dedupeWindow === undefined ? {} : { dedupeWindowMs: flags.dedupeWindow }),
    ...extra,
  });
}

function requireOwner(flags: ConnectionFlags, command: string): void {
  if (flags.owner === undefined) {
    throw new InvalidArgumentError(`${command} needs --owner (or $BATON_OWNER): the owner id that acquire printed; a new random owner never holds a lock`);
  }
}

/** Runs an action with a client and turns its outcome into the exit code. */
async function withClient(flags: ConnectionFlags, action: (client: BatonClient) => Promise<number>): Promise<void> {
  const client = clientFor(flags);
  try {
    process.exitCode = await action(client);
  } finally {
    client.close();
  }
}

const EXIT_BY_STATUS: Readonly<Record<string, number>> = {
  acquired: ExitCode.Ok,
  renewed: ExitCode.Ok,
  released: ExitCode.Ok,
  heldByYou: ExitCode.Ok,
  held: ExitCode.Held,
  heldByOther: ExitCode.Held,
  notHeld: ExitCode.NotHeld,
  free: ExitCode.NotHeld,
  expired: ExitCode.Expired,
};

/**
 * An answer its reader never got exits OutputFailed, not the answer's own code, which would pass for
 * an answer delivered. A grant is released first, best effort: its owner id was in the answer, so
 * nobody else can release it, and it would stay held for its whole ttl.
 */
async function answerNotWritten(printed: Extract<WriteOutcome, { written: false }>, lock: LockId, grant?: Lease): Promise<number> {
  const undone = grant === undefined ? "" : `; ${await releaseUnseenGrant(grant, lock)}`;
  process.stderr.write(`lockctl: could not write the answer to stdout (${printed.error.message})${undone}\n`);
  return ExitCode.OutputFailed;
}

async function releaseUnseenGrant(lease: Lease, lock: LockId): Promise<string> {
  // Said in full where it was not released: stderr may still reach someone who can release it.
  const what = `the lease on ${lock.label} (token=${lease.fencingToken} owner=${lease.owner})`;
  try {
    const released = await lease.release();
    if (released.status === "released") return `released the lease granted on ${lock.label}, since nobody saw it granted`;
    const why = released.status === "lost" ? "it had ended locally already" : `the server answered ${released.status}`;
    return `${what} was not released (${why}); it expires after its ttl`;
  } catch (error) {
    return `${what} could not be released (${(error as Error).message}); it expires after its ttl`;
  }
}

/** A usage error's line: the one-line form of every error, pointing at --help (client/README.md, "lockctl"). */
function usageErrorLine(message: string): string {
  return `lockctl: ${message} (see --help)\n`;
}

const program = new Command("lockctl")
  .description("baton command line: take, inspect and release leases with fencing tokens; hold a lock around a command; load a server")
  .version(packageVersion())
  // Also before the command, as etcdctl and kubectl take theirs: `lockctl --endpoints H:P inspect x`.
  .addOption(new Option("--endpoints <list>", "comma-separated HOST:PORT list, for any command ($BATON_ENDPOINTS)").argParser(flagParser(parseEndpointList)))
  .hook("preAction", (self, command) => {
    // The command's own --endpoints, given after it, wins; otherwise the one given before it.
    const before = self.getOptionValue("endpoints") as Endpoint[] | undefined;
    if (before !== undefined && command.getOptionValueSource("endpoints") !== "cli") command.setOptionValueWithSource("endpoints", before, "cli");
  })
  .exitOverride()
  // Usage errors in the same one-line form as every other error (client/README.md, "lockctl").
  // Help and --version go through writeOut, so that a failure to write them is heard (main).
  .configureOutput({ writeOut: (text) => void writeOut(text), outputError: (message, write) => write(usageErrorLine(commanderMessageLine(message))) })
  .addHelpText(
    "after",
    `
Endpoints come from --endpoints (before or after the command) or $BATON_ENDPOINTS (default
${DEFAULT_HOST}:${DEFAULT_PORT}).
Times (<ms>) are whole milliseconds, or whole units: 500ms, 30s, 2m, 1h.

Exit codes (acquire, renew, release, inspect: the protocol status of the answer):
  0 ok (acquired, renewed, released; inspect: held by you)   1 held (inspect: by another owner)
  2 not held by this owner (inspect: free)                   5 this owner's lease expired
  64 usage error or request rejected as invalid              69 no server reachable / retries exhausted
  70 protocol or internal error                              74 the answer could not be written (stdout)
  acquire: 76 granted after the lease's local deadline, so treat it as lost (the token is printed)
  run: the command's own code; 75 lock still held after --wait; 76 lease lost (command got SIGTERM);
  127 the command could not be started
  130 Ctrl-C (an ACQUIRE under way is printed first, to find its lease; bench prints its summary so far)

Examples:
  lockctl acquire reports --ttl 60000            # prints the owner id to renew/release with
  lockctl run nightly-report --wait 10000 -- ./make-report.sh
  BATON_ENDPOINTS=10.0.0.1:5625 lockctl inspect reports
  lockctl bench --duration 10s`,
  );

lockCommand(program, "acquire", "acquire a lock once (or keep trying for --wait ms); prints the fencing token and the owner id")
  .option("--json", "print one JSON object instead of a line", false)
  .option("--ttl <ms>", "lease length", milliseconds(1), DEFAULT_TTL_MS)
  .option("--wait <ms>", "keep trying this long while someone else holds it, or while no server answers", milliseconds(0), 0)
  .addOption(ownerOption("default: a new random owner, printed"))
  .addHelpText(
    "after",
    `
The lease is NOT renewed after lockctl exits: renew it before its ttl runs out, with the owner id
acquire printed, or use \`lockctl run\` to hold a lock for the duration of a command.

Examples:
  lockctl acquire reports --ttl 60000
  acquired=$(lockctl acquire reports --json) && owner=$(printf '%s' "$acquired" | jq -r .owner)
  lockctl acquire reports --owner 5eed --wait 5000

Keep the exit code apart from a pipe: "held" (exit 1) prints an owner too, the one that asked,
which holds nothing. A grant whose answer came after the lease's local deadline exits 76: it is
printed with lease-lost=deadline, and may already have passed to another owner.`,
  )
  .action(async (name: string, flags: ConnectionFlags & JsonFlag & { ttl: number; wait: number }) => {
    const lock = lockOf(name, flags);
    await withClient(flags, async (client) => {
      // Until the answer is printed, a Ctrl-C says what the ACQUIRE was: nothing else would.
      const stopReporting = reportAcquireOnInterrupt(client, lockArgument(name, flags));
      try {
        return await acquireAndPrint(client, lock, flags);
      } finally {
        stopReporting();
      }
    });
  });

/** acquire's request and answer: the exit code, the answer printed (or why it could not be). */
async function acquireAndPrint(client: BatonClient, lock: LockId, flags: JsonFlag & { ttl: number; wait: number }): Promise<number> {
  // The owner it prints is the one the lease has: the client's (--owner, or the random one).
  const result = await client.acquire(lock, { ttlMs: flags.ttl, waitMs: flags.wait, owner: client.owner });
  // A grant that came after its lease's local deadline (a round trip longer than the ttl less its
  // margin) may already have passed to another owner: shown, with its token for a release, but
  // not reported as held.
  const leaseLost = result.status === "acquired" ? result.lease.lossReason : undefined;
  const granted = result.status === "acquired" ? { fencingToken: result.fencingToken, ...(leaseLost === undefined ? {} : { leaseLost }) } : {};
  const printed = await printResult({ command: "acquire", lock, owner: client.owner, status: result.status, expiresAt: result.expiresAt, ...granted }, flags.json);
  if (!printed.written) return answerNotWritten(printed, lock, result.status === "acquired" ? result.lease : undefined);
  if (leaseLost !== undefined) {
    process.stderr.write(`lockctl: the grant of ${lock.label} came after its lease's local deadline (${leaseLost}); treat the lease as lost\n`);
    return ExitCode.LeaseLost;
  }
  return EXIT_BY_STATUS[result.status]!;
}

lockCommand(program, "renew", "extend a lease held by --owner by --ttl from now")
  .option("--json", "print one JSON object instead of a line", false)
  .option("--ttl <ms>", "new lease length from now", milliseconds(1), DEFAULT_TTL_MS)
  .addOption(ownerOption("required: the owner that acquired the lock"))
  .addHelpText(
    "after",
    `
Examples:
  lockctl renew reports --owner 9f2c0c4d5e6f77a18899aabbccddeeff --ttl 60000
  BATON_OWNER=9f2c0c4d5e6f77a18899aabbccddeeff lockctl renew reports`,
  )
  .action(async (name: string, flags: ConnectionFlags & JsonFlag & { ttl: number }) => {
    requireOwner(flags, "renew");
    const lock = lockOf(name, flags);
    await withClient(flags, async (client) => {
      const result = await client.renew(lock, { ttlMs: flags.ttl });
      const fields = result.status === "notHeld" ? {} : { fencingToken: result.fencingToken, expiresAt: result.expiresAt };
      const printed = await printResult({ command: "renew", lock, owner: client.owner, status: result.status, ...fields }, flags.json);
      return printed.written ? EXIT_BY_STATUS[result.status]! : answerNotWritten(printed, lock);
    });
  });

lockCommand(program, "release", "release a lease held by --owner")
  .option("--json", "print one JSON object instead of a line", false)
  .addOption(ownerOption("required: the owner that acquired the lock"))
  .addHelpText(
    "after",
    `
Examples:
  lockctl release reports --owner 9f2c0c4d5e6f77a18899aabbccddeeff
  lockctl release 00ff00ff00ff00ff00ff00ff00ff00ff --hex-id --owner 5eed --json`,
  )
  .action(async (name: string, flags: ConnectionFlags & JsonFlag) => {
    requireOwner(flags, "release");
    const lock = lockOf(name, flags);
    await withClient(flags, async (client) => {
      const result = await client.release(lock);
      const fields =
        result.status === "released"
          ? { fencingToken: result.fencingToken, releasedAt: result.releasedAt }
          : result.status === "expired"
            ? { fencingToken: result.fencingToken, expiresAt: result.expiresAt }
            : {};
      const printed = await printResult({ command: "release", lock, owner: client.owner, status: result.status, ...fields }, flags.json);
      return printed.written ? EXIT_BY_STATUS[result.status]! : answerNotWritten(printed, lock);
    });
  });

lockCommand(program, "inspect", "show whether a lock is held, by --owner or by someone else; changes nothing")
  .option("--json", "print one JSON object instead of a line", false)
  .addOption(ownerOption("default: a random owner (then the answer is held-by-another or free)"))
  .addHelpText(
    "after",
    `
Examples:
  lockctl inspect reports                       # exit 1 held, 2 free
  lockctl inspect reports --owner 9f2c0c4d5e6f77a18899aabbccddeeff --json`,
  )
  .action(async (name: string, flags: ConnectionFlags & JsonFlag) => {
    const lock = lockOf(name, flags);
    await withClient(flags, async (client) => {
      const result = await client.inspect(lock);
      const fields =
        result.status === "heldByYou" || result.status === "expired"
          ? { fencingToken: result.fencingToken, expiresAt: result.expiresAt }
          : result.status === "heldByOther"
            ? { expiresAt: result.expiresAt }
            : {};
      const printed = await printResult({ command: "inspect", lock, owner: client.owner, status: result.status, ...fields }, flags.json);
      return printed.written ? EXIT_BY_STATUS[result.status]! : answerNotWritten(printed, lock);
    });
  });

lockCommand(program, "run", "hold a lock while a command runs, renewing it; release when it exits")
  .argument("<command...>", "the command and its arguments (put them after --)")
  .option("--ttl <ms>", "lease length; renewed every ttl/3", milliseconds(1), DEFAULT_TTL_MS)
  .option("--wait <ms>", "keep trying this long while someone else holds it, or while no server answers", milliseconds(0), 0)
  // At most what one Node timer holds (MAX_TIMER_MS): a longer one would fire at once.
  .option("--kill-after <ms>", "after a lost lease, SIGKILL the command's process group if the command has not exited this long after SIGTERM", milliseconds(0, MAX_TIMER_MS), 10_000)
  .addOption(ownerOption("default: a new random owner"))
  .addHelpText(
    "after",
    `
The command sees BATON_LOCK (the lock name), BATON_FENCING_TOKEN (pass it to every write the lock
guards, so a writer that lost its lease is refused) and BATON_OWNER. lockctl exits with the command's
code; 75 if the lock stayed held for all of --wait; 76 if the lease was lost (the command was sent
SIGTERM, then SIGKILL after --kill-after). The command runs in a process group (and session) of its
own, with no controlling terminal: SIGTERM, SIGHUP, SIGINT and SIGQUIT are passed on to the whole
group, SIGTSTP (Ctrl-Z) stops it with lockctl, and after a lost lease whatever of it still runs once
the command has exited is killed.

Examples:
  lockctl run nightly-report -- ./make-report.sh --since yesterday
  lockctl run deploy --ttl 10000 --wait 60000 -- sh -c 'deploy.sh --fence "$BATON_FENCING_TOKEN"'`,
  )
  .action(async (name: string, commandLine: string[], flags: ConnectionFlags & { ttl: number; wait: number; killAfter: number }) => {
    const lock = lockOf(name, flags);
    await withClient(flags, (client) =>
      runLocked(client, { lock, lockArgument: lockArgument(name, flags), ttlMs: flags.ttl, waitMs: flags.wait, killAfterMs: flags.killAfter, command: commandLine[0]!, args: commandLine.slice(1) }),
    );
  });

program
  .command("bench")
  .description("load a server: closed-loop clients with pipelined requests on random locks; progress each second, then a latency table")
  .addOption(endpointsOption())
  .option("--connections <n>", "clients, one connection each", wholeNumber(1), 4)
  .option("--pipeline <n>", "requests in flight per connection", wholeNumber(1), 32)
  .option("--keys <n>", "distinct locks (bench-0 .. bench-N-1)", wholeNumber(1), 10_000)
  .addOption(
    new Option("--mix <weights>", `command weights, of ${BENCH_COMMANDS.join(", ")}`)
      .argParser(flagParser(parseMix))
      .default(parseMix(DEFAULT_MIX), DEFAULT_MIX),
  )
  // The default is shown as the text that means it: a bare number is seconds.
  .addOption(new Option("--duration <time>", "how long: 10s, 500ms, 2m (a bare number is seconds)").argParser(flagParser(parseDurationMs)).default(10_000, "10s"))
  .option("--ttl <ms>", "ttl of acquired and renewed leases", milliseconds(1), 10_000)
  .option("--timeout <ms>", "per-attempt timeout, for the connect and the reply; a request unanswered this long after --duration is given up (default: 3000 connect, 5000 reply)", milliseconds(1))
  .option("--attempts <n>", "attempts per request before it counts as an error", wholeNumber(1), BENCH_DEFAULT_ATTEMPTS)
  .option("--json", "print the summary as JSON", false)
  .addHelpText(
    "after",
    `
Examples:
  lockctl bench                                         # 4 x 32 in flight, 10 s, default mix
  lockctl bench --connections 16 --pipeline 128 --duration 30s
  lockctl bench --keys 10 --mix acquire=1,release=1     # heavy contention
  lockctl bench --mix inspect=1 --json                  # read-only`,
  )
  .action(
    async (flags: {
      endpoints: Endpoint[] | string;
      connections: number;
      pipeline: number;
      keys: number;
      mix: ReturnType<typeof parseMix>;
      duration: number;
      ttl: number;
      timeout?: number;
      attempts: number;
      json: boolean;
    }) => {
      process.exitCode = await bench({
        newClient: () => clientFor({ ...flags, hexId: false }),
        connections: flags.connections,
        pipeline: flags.pipeline,
        keys: flags.keys,
        mix: flags.mix,
        durationMs: flags.duration,
        ttlMs: flags.ttl,
        ...(flags.timeout === undefined ? {} : { timeoutMs: flags.timeout }),
        json: flags.json,
      });
    },
  );

// Commander's own `help [command]` shows the whole help for a name it does not know, with no word
// that the name is unknown: this one says so, as `lockctl NAME` does for an unknown command.
program.helpCommand(false);
program
  .command("help [command]")
  .description("display help for command")
  .action((name: string | undefined) => {
    if (name === undefined) return program.help();
    const command = program.commands.find((known) => known.name() === name || known.aliases().includes(name));
    if (command === undefined) return program.error(`unknown command '${name}'`, { exitCode: ExitCode.Usage, code: "commander.unknownCommand" });
    command.help();
  });

function exitCodeOf(error: unknown): number {
  if (error instanceof FlagError) return ExitCode.Usage;
  if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  if (!(error instanceof BatonError)) return ExitCode.Software;
  switch (error.code) {
    case "BATON_INVALID_ARGUMENT":
    case "BATON_INVALID_REQUEST":
      return ExitCode.Usage;
    case "BATON_RETRIES_EXHAUSTED":
    case "BATON_CONNECTION":
    case "BATON_TIMEOUT":
    case "BATON_UNAVAILABLE":
    case "BATON_NOT_LEADER":
      return ExitCode.Unavailable;
    default:
      return ExitCode.Software;
  }
}

async function main(): Promise<void> {
  watchOutput();
  try {
    await program.parseAsync();
  } catch (error) {
    // Commander already printed its own parse errors and help. An invalid argument found after
    // parsing (a missing --owner, a malformed id) is as much a usage error, and says so the same way.
    if (!(error instanceof CommanderError)) {
      const { message } = error as Error;
      const usage = error instanceof BatonError && error.code === "BATON_INVALID_ARGUMENT";
      process.stderr.write(usage ? usageErrorLine(message) : `lockctl: ${message}\n`);
    }
    process.exitCode = exitCodeOf(error);
  }
  // Output other than an answer (help, --version), which the command did not check itself: a reader
  // that stopped early (`lockctl --help | head`) is no error, but output lost otherwise is.
  const settled = await outputSettled();
  if (!settled.written && settled.error.code !== "EPIPE" && process.exitCode !== ExitCode.OutputFailed) {
    process.stderr.write(`lockctl: could not write to stdout (${settled.error.message})\n`);
    process.exitCode = ExitCode.OutputFailed;
  }
}

void main();
