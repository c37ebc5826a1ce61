/**
 * `lockctl bench`: a closed-loop load generator. `connections` clients (one connection each) keep
 * `pipeline` requests in flight apiece, on random locks out of `keys`, choosing commands by `mix`
 * weights, for `durationMs`. Prints a progress line each second and a final table of throughput and
 * latency percentiles per command.
 */
import { timerDelay } from "../backoff.js";
import { DEFAULT_TIMEOUT_MS, type BatonClient } from "../client.js";
import { BatonError, InvalidRequestError, ProtocolError, RetriesExhaustedError } from "../errors.js";
import { LockId } from "../ids.js";
import { ExitCode } from "./exit-codes.js";
import { Histogram } from "./histogram.js";
import { writeOut } from "./output.js";

export const BENCH_COMMANDS = ["acquire", "renew", "release", "inspect"] as const;
export type BenchCommand = (typeof BENCH_COMMANDS)[number];
export type Mix = Readonly<Record<BenchCommand, number>>;

export interface BenchOptions {
  /** A new client, one connection: lockctl's, made from the same flags as every command's. */
  readonly newClient: () => BatonClient;
  readonly connections: number;
  readonly pipeline: number;
  readonly keys: number;
  readonly mix: Mix;
  readonly durationMs: number;
  readonly ttlMs: number;
  /** The clients' per-attempt timeout, if not the SDK's default: requests are given up this long after the duration. */
  readonly timeoutMs?: number;
  readonly json: boolean;
}

interface CommandStats {
  /** Of answered requests only: a failure's time is its timeout or the like, no latency of the server's. */
  readonly latency: Histogram;
  readonly outcomes: Map<string, number>;
  errors: number;
  /** Errors by what caused them (errorKind), so that a failing server says why. */
  readonly errorKinds: Map<string, number>;
}

const PROGRESS_EVERY_MS = 1000;
/** Attempts per request unless --attempts says otherwise: a few, so an overloaded server shows as errors. */
export const BENCH_DEFAULT_ATTEMPTS = 3;

/** Parses "acquire=40,renew=20,release=30,inspect=10" (missing commands weigh 0). */
export function parseMix(text: string): Mix {
  const mix: Record<BenchCommand, number> = { acquire: 0, renew: 0, release: 0, inspect: 0 };
  for (const part of text.split(",")) {
    const match = /^\s*(\w+)\s*[=:]\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (match === null || !(BENCH_COMMANDS as readonly string[]).includes(match[1]!)) throw new RangeError(`expected COMMAND=WEIGHT with COMMAND one of ${BENCH_COMMANDS.join(", ")}, got "${part}"`);
    mix[match[1] as BenchCommand] = Number(match[2]);
  }
  if (BENCH_COMMANDS.every((command) => mix[command] === 0)) throw new RangeError("the mix must give some command a weight above 0");
  return mix;
}

/** Parses "10s", "500ms", "2m", or a bare number of seconds. */
export function parseDurationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (match === null) throw new RangeError(`expected a duration like 10s, 500ms or 2m, got "${text}"`);
  const value = Number(match[1]);
  // A zero duration would send nothing and print an empty table, as if the server had answered nothing.
  if (value === 0) throw new RangeError(`expected a duration above 0, got "${text}"`);
  const unit = match[2] ?? "s";
  return unit === "ms" ? value : unit === "s" ? value * 1000 : value * 60_000;
}

export async function bench(options: BenchOptions): Promise<number> {
  const locks = Array.from({ length: options.keys }, (_, i) => LockId.fromName(`bench-${i}`));
  const stats = new Map<BenchCommand, CommandStats>(BENCH_COMMANDS.map((command) => [command, { latency: new Histogram(), outcomes: new Map(), errors: 0, errorKinds: new Map() }]));
  const pick = picker(options.mix);
  const clients = Array.from({ length: options.connections }, options.newClient);
  try {
    await Promise.all(clients.map((client) => client.connect()));
  } catch (error) {
    for (const client of clients) client.close();
    throw error;
  }

  const startMs = performance.now();
  const endMs = startMs + options.durationMs;
  // A request the server refuses as invalid (a ttl above its --max-ttl, say) is refused the same way
  // every time, and an endpoint that breaks the protocol is no lockd (an HTTP port, say): the run
  // stops at the first, rather than measure how fast refusals come back.
  let refused: InvalidRequestError | ProtocolError | undefined;
  // Ctrl-C ends the run where it is, and the summary of what it measured so far is printed still.
  let interruptedAtMs: number | undefined;
  const onInterrupt = () => {
    interruptedAtMs ??= performance.now();
    giveUp.abort();
  };
  process.on("SIGINT", onInterrupt);
  // The duration bounds the run: a request still unanswered one attempt's timeout after it ends (a
  // silent server, retries under way) is given up, and counted as an error ("aborted").
  const giveUp = new AbortController();
  const giveUpTimer = setTimeout(() => giveUp.abort(), timerDelay(options.durationMs + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS)));
  let done = 0;
  let doneAtLastTick = 0;
  let recent = new Histogram();
  const progress = setInterval(() => {
    const elapsedS = (performance.now() - startMs) / 1000;
    const rate = ((done - doneAtLastTick) * 1000) / PROGRESS_EVERY_MS;
    doneAtLastTick = done;
    const line = `${elapsedS.toFixed(1).padStart(6)}s ${format(rate).padStart(12)} ops/s   p99 ${ms(recent.percentileUs(0.99))} ms   errors ${errorCount(stats)}`;
    recent = new Histogram();
    process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
  }, PROGRESS_EVERY_MS);

  const worker = async (client: BatonClient): Promise<void> => {
    // Bounded by the clock: each pass is one request, and the loop ends at endMs.
    while (refused === undefined && interruptedAtMs === undefined && performance.now() < endMs) {
      const command = pick();
      const lock = locks[Math.floor(Math.random() * locks.length)]!;
      const stat = stats.get(command)!;
      const sentMs = performance.now();
      try {
        const status = await issue(client, command, lock, options.ttlMs, giveUp.signal);
        stat.outcomes.set(status, (stat.outcomes.get(status) ?? 0) + 1);
      } catch (error) {
        if (error instanceof InvalidRequestError || error instanceof ProtocolError) {
          // Requests pipelined to an HTTP port meet its status line, then the rest of its answer read as
          // replies: the status line's error says what the endpoint is, whichever of theirs comes first.
          if (refused === undefined || (error instanceof ProtocolError && error.fromHttpServer)) refused = error;
          giveUp.abort();
          return;
        }
        // Given up because of the Ctrl-C, not failed: the run is over, and this request is no part of it.
        if (interruptedAtMs !== undefined) return;
        stat.errors++;
        const kind = errorKind(error);
        stat.errorKinds.set(kind, (stat.errorKinds.get(kind) ?? 0) + 1);
        continue;
      }
      // Throughput and latency are of answered requests: a failure is no operation done.
      const latencyUs = (performance.now() - sentMs) * 1000;
      stat.latency.record(latencyUs);
      recent.record(latencyUs);
      done++;
    }
  };
  await Promise.all(clients.flatMap((client) => Array.from({ length: options.pipeline }, () => worker(client))));
  clearInterval(progress);
  clearTimeout(giveUpTimer);
  process.off("SIGINT", onInterrupt);
  const elapsedMs = (interruptedAtMs ?? performance.now()) - startMs;
  if (process.stderr.isTTY) process.stderr.write("\n");
  for (const client of clients) client.close();
  if (refused instanceof InvalidRequestError) {
    process.stderr.write(`lockctl: bench stopped: ${refused.message}; every such request is refused alike\n`);
    return ExitCode.Usage;
  }
  if (refused !== undefined) {
    process.stderr.write(`lockctl: bench stopped: ${refused.message}\n`);
    return ExitCode.Software;
  }

  const interrupted = interruptedAtMs !== undefined;
  const printed = await writeOut(options.json ? `${JSON.stringify({ ...summary(stats, elapsedMs), ...(interrupted ? { interrupted } : {}) })}\n` : table(stats, elapsedMs, options, interrupted));
  // A reader that stopped early (`| head`) took what it wanted, as with help: no failure.
  if (!printed.written && printed.error.code !== "EPIPE") {
    process.stderr.write(`lockctl: could not write the bench summary to stdout (${printed.error.message})\n`);
    return ExitCode.OutputFailed;
  }
  if (interrupted) return ExitCode.Interrupted;
  return errorCount(stats) === 0 ? 0 : 1;
}

async function issue(client: BatonClient, command: BenchCommand, lock: LockId, ttlMs: number, signal: AbortSignal): Promise<string> {
  switch (command) {
    case "acquire":
      // The client's own owner id, so that the renewals and releases the mix sends act on its leases.
      return (await client.acquire(lock, { ttlMs, owner: client.owner, signal })).status;
    case "renew":
      return (await client.renew(lock, { ttlMs, signal })).status;
    case "release":
      return (await client.release(lock, { signal })).status;
    case "inspect":
      return (await client.inspect(lock, { signal })).status;
  }
}

function picker(mix: Mix): () => BenchCommand {
  const total = BENCH_COMMANDS.reduce((sum, command) => sum + mix[command], 0);
  return () => {
    let draw = Math.random() * total;
    for (const command of BENCH_COMMANDS) {
      draw -= mix[command];
      if (draw < 0) return command;
    }
    return BENCH_COMMANDS.find((command) => mix[command] > 0)!;
  };
}

/**
 * What a failed request ran into, in the SDK's error codes without their prefix: for retries that
 * ran out, what the last attempt got (`unavailable` for a server answering 6, `timeout`, `connection`).
 */
function errorKind(error: unknown): string {
  const reason = error instanceof RetriesExhaustedError && error.cause instanceof BatonError ? error.cause : error;
  return reason instanceof BatonError ? reason.code.replace(/^BATON_/, "").toLowerCase() : "other";
}

function errorCount(stats: Map<BenchCommand, CommandStats>): number {
  let errors = 0;
  for (const stat of stats.values()) errors += stat.errors;
  return errors;
}

function errorKindsOf(stats: Map<BenchCommand, CommandStats>): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const stat of stats.values()) for (const [kind, count] of stat.errorKinds) kinds.set(kind, (kinds.get(kind) ?? 0) + count);
  return kinds;
}

/** ops and opsPerSecond count answered requests; errors (by kind) the failed ones, which are in no other number. */
function summary(stats: Map<BenchCommand, CommandStats>, elapsedMs: number) {
  const total = new Histogram();
  const commands: Record<string, unknown> = {};
  for (const [command, stat] of stats) {
    total.add(stat.latency);
    if (stat.latency.count === 0 && stat.errors === 0) continue;
    commands[command] = {
      ...row(stat.latency, elapsedMs),
      errors: stat.errors,
      outcomes: Object.fromEntries(stat.outcomes),
      errorKinds: Object.fromEntries(stat.errorKinds),
    };
  }
  return { elapsedMs: Math.round(elapsedMs), commands, total: { ...row(total, elapsedMs), errors: errorCount(stats), errorKinds: Object.fromEntries(errorKindsOf(stats)) } };
}

function row(latency: Histogram, elapsedMs: number) {
  return {
    ops: latency.count,
    opsPerSecond: Math.round((latency.count * 1000) / elapsedMs),
    p50Ms: Number(ms(latency.percentileUs(0.5))),
    p99Ms: Number(ms(latency.percentileUs(0.99))),
    p999Ms: Number(ms(latency.percentileUs(0.999))),
  };
}

function table(stats: Map<BenchCommand, CommandStats>, elapsedMs: number, options: BenchOptions, interrupted: boolean): string {
  const { commands, total } = summary(stats, elapsedMs);
  const header = ["command", "ops", "ops/s", "p50 ms", "p99 ms", "p999 ms", "errors"];
  const lines: string[][] = [header];
  for (const [command, value] of Object.entries(commands)) {
    const r = value as ReturnType<typeof row> & { errors: number };
    lines.push([command, format(r.ops), format(r.opsPerSecond), r.p50Ms.toFixed(3), r.p99Ms.toFixed(3), r.p999Ms.toFixed(3), String(r.errors)]);
  }
  lines.push(["total", format(total.ops), format(total.opsPerSecond), total.p50Ms.toFixed(3), total.p99Ms.toFixed(3), total.p999Ms.toFixed(3), String(total.errors)]);
  const widths = header.map((_, column) => Math.max(...lines.map((line) => line[column]!.length)));
  const render = (line: string[]) => line.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join("  ");
  const counts = (counted: Map<string, number>) => [...counted].map(([name, count]) => `${name} ${format(count)}`).join(", ");
  const outcomes = [...stats.entries()]
    .filter(([, stat]) => stat.outcomes.size > 0 || stat.errorKinds.size > 0)
    .map(([command, stat]) => `${command}: ${[counts(stat.outcomes), stat.errorKinds.size > 0 ? `errors: ${counts(stat.errorKinds)}` : ""].filter((part) => part !== "").join("; ")}`);
  const failed = total.errors === 0 ? [] : [`${format(total.errors)} request(s) failed (${counts(errorKindsOf(stats))}), counted in no ops, ops/s or latency`];
  return [
    `bench: ${options.connections} connection(s) x pipeline ${options.pipeline}, ${format(options.keys)} keys, ${(elapsedMs / 1000).toFixed(1)} s${interrupted ? " (interrupted)" : ""}`,
    ...lines.map(render),
    "",
    ...outcomes,
    ...failed,
    "",
  ].join("\n");
}

function format(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

function ms(us: number): string {
  return (us / 1000).toFixed(3);
}
