#!/usr/bin/env node
/**
 * lockd: the baton lock server. Parses flags, starts the server, prints one "listening" line on
 * stdout, and shuts down cleanly on SIGTERM, SIGINT or SIGHUP.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { joinHostPort } from "../protocol/host-port.js";
import { DEFAULT_CONFIG, MAX_TTL_LIMIT_MS, type ServerConfig } from "../server/config.js";
import { startLockd } from "../server/lockd.js";
import { commanderMessageLine } from "./commander-message.js";
import { hostPortHint, splitHostPort } from "../protocol/host-port.js";
import { describeUnrecordedCleanStop, type CleanStopRecord } from "../storage/durable-storage.js";
import { STOP_SIGNALS } from "../storage/group-signals.js";
import { shouldStamp, stderrLogger, type LogTimestamps } from "../logging/logger.js";
import { LONG_BODY_BYTES, MAX_FRAME_LENGTH } from "../protocol/wire.js";
import { packageVersion } from "../version.js";
import { describeStartFailure } from "./start-failure.js";

/**
 * Whole numbers are digits. A negative one is refused by its range, which the message then gives
 * (`range`, as the flag's other refusals say it); "-0" is not a way to write 0.
 */
function wholeNumber(raw: string, range: string): number {
  if (/^-0*[1-9]\d*$/.test(raw)) throw new InvalidArgumentError(`expected ${range}, got ${raw}`);
  if (!/^\d+$/.test(raw)) throw new InvalidArgumentError(`expected a whole number, got "${raw}"`);
  return Number(raw);
}

function integer(min: number, max = Number.MAX_SAFE_INTEGER, range = `${min}..${max}`) {
  return (raw: string): number => {
    const value = wholeNumber(raw, range);
    if (value < min || value > max) throw new InvalidArgumentError(`expected ${range}, got ${raw}`);
    return value;
  };
}

/** A whole number, or "unlimited" for no limit at all. */
function integerOrUnlimited(min: number) {
  const parse = integer(min, Number.MAX_SAFE_INTEGER, `${min}..${Number.MAX_SAFE_INTEGER} or unlimited`);
  return (raw: string): number => (raw === "unlimited" ? Infinity : parse(raw));
}

/** 0 (off), or a whole number from min to max. */
function zeroOrBetween(min: number, max: number) {
  return (raw: string): number => {
    const value = wholeNumber(raw, `0 (off) or ${min}..${max}`);
    if (value !== 0 && (value < min || value > max)) throw new InvalidArgumentError(`expected 0 (off) or ${min}..${max}, got ${raw}`);
    return value;
  };
}

/** The longest interval a Node timer keeps: a longer one fires after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;

/** "HOST:PORT" or "[IPV6]:PORT", as the clients write endpoints (host-port.ts), the port required here. */
function hostPort(raw: string): { host: string; port: number } {
  const split = splitHostPort(raw);
  if (split === null || split.port === undefined) throw new InvalidArgumentError(`expected HOST:PORT, got "${raw}"${hostPortHint(raw)}`);
  const port = Number(split.port);
  if (port > 65535) throw new InvalidArgumentError(`port out of range: ${port}`);
  return { host: split.host, port };
}

/** A path: an empty one (an unset variable in a unit file) would put the data in the working directory. */
function nonEmptyPath(raw: string): string {
  if (raw.trim() === "") throw new InvalidArgumentError(`expected a directory, got ${raw === "" ? "an empty path" : `only blanks (${JSON.stringify(raw)})`}`);
  return raw;
}

const d = DEFAULT_CONFIG;
const program = new Command("lockd")
  .description("baton lock server: leases with fencing tokens over a fixed-size binary protocol (see protocol.md)")
  .version(packageVersion())
  .addOption(new Option("--listen <host:port>", "address to listen on").argParser(hostPort).default({ host: d.host, port: d.port }, `${d.host}:${d.port}`))
  .option("--data <dir>", "data directory (log, snapshots)", nonEmptyPath, d.dataDir)
  .addOption(new Option("--fsync <mode>", "always: fdatasync before every reply; never: UNSAFE, benchmarks only").choices(["always", "never"]).default(d.fsync))
  .option("--max-ttl <ms>", "largest ttl_ms of a new request, at most 100 years (a retry of a remembered request still gets its answer)", integer(1, MAX_TTL_LIMIT_MS), d.maxTtlMs)
  .option("--dedupe-window <ms>", "how long a request id's answer is replayed to retries (at least 1)", integer(1), d.dedupeWindowMs)
  .option("--max-dedupe-entries <n>", "request ids remembered at most; then every change with a new request id answers 6", integer(1), d.maxDedupeEntries)
  .option("--expired-retention <ms>", "how long an expired lease is remembered (its owner gets 5, not 2)", integer(0), d.expiredRetentionMs)
  .option("--max-locks <n>", "lock records at most; then new locks answer 6", integer(1), d.maxLocks)
  .option("--max-connections <n>", "open connections at most (fewer if the open-file limit allows fewer: the hard one, ulimit -Hn, which Node raises the soft one to); more are closed", integer(1), d.maxConnections)
  // Up to 1024: libuv's poll reports at most 1024 ready descriptors at a time, and each is one more open file.
  .option("--accepts-per-turn <n>", "connections accepted at most per turn of the event loop once connections queue up, 1..1024 (each a descriptor of the listening socket)", integer(1, 1024), d.acceptsPerTurn)
  .option("--max-inflight <n>", "unanswered requests per connection before it is not read", integer(1), d.maxInflightPerConnection)
  .option("--max-inflight-total <n>", "unanswered requests on all connections together before none is read", integer(1), d.maxInflightTotal)
  .option("--max-queued-reply-bytes <n>", "unread reply bytes per connection before it is not read (at least 17, one answer)", integer(17), d.maxQueuedReplyBytes)
  .option("--max-frame-length <bytes>", `largest length field of a request frame, ${LONG_BODY_BYTES}..${MAX_FRAME_LENGTH}; a larger one is answered 3 and the connection closed`, integer(LONG_BODY_BYTES, MAX_FRAME_LENGTH), d.maxFrameLength)
  .option("--frame-timeout <ms>", "close a connection holding half a frame this long (0 = never)", integer(0), d.frameTimeoutMs)
  .option("--idle-timeout <ms>", "close a connection silent with nothing in flight this long (0 = never)", integer(0), d.idleTimeoutMs)
  .option("--reply-timeout <ms>", "close a connection whose client has taken none of its queued answers this long (0 = never)", integer(0), d.replyTimeoutMs)
  .option("--snapshot-every <bytes>", "write a snapshot after this many log bytes (at least 65536)", integer(1 << 16), d.snapshotEveryBytes)
  // Each segment is written with zeros in full before use: a mistyped size must not fill the disk.
  .option("--segment-bytes <bytes>", "log segment file size, 65536 up to 1 GiB", integer(1 << 16, 1 << 30), d.segmentBytes)
  .addOption(
    new Option("--inline-sync-max <entries>", "fdatasync batches of up to this many entries on the event loop when no other batch is syncing, larger ones on the thread pool (0 = always the pool)")
      .argParser(integerOrUnlimited(0))
      .default(d.inlineSyncMaxEntries, "unlimited"),
  )
  .option("--bump-fencing-token <n>", "before serving, raise the next fencing token by n, through the log (after restoring a backup)", integer(0, Number.MAX_SAFE_INTEGER), d.bumpFencingToken)
  .option("--require-state", "refuse to start on a data directory holding no log or snapshot (instead of starting empty)", d.requireState)
  .addOption(new Option("--metrics-listen <host:port>", "serve Prometheus metrics over HTTP at /metrics on this address (default: nowhere)").argParser(hostPort))
  .option("--stats-every <ms>", "log a stats line (load, commit times, table sizes) this often: 0 (never) or 100 and up", zeroOrBetween(100, MAX_TIMER_MS), d.statsEveryMs)
  .addOption(
    new Option("--log-timestamps <when>", "start each stderr line with the UTC time; auto: unless stderr is the systemd journal, which adds its own")
      .choices(["auto", "always", "never"])
      .default("auto"),
  )
  // A usage error is one line, like every other error lockd prints at a start.
  .configureOutput({ outputError: (message, write) => write(`lockd: ${commanderMessageLine(message)} (lockd --help lists every option)\n`) })
  .addHelpText(
    "after",
    `
Examples:
  lockd                                  # 127.0.0.1:5625, data in ./data, fsync always
  lockd --listen 0.0.0.0:7000 --data /var/lib/baton
  lockd --fsync never --data /tmp/bench  # no durability: benchmarks only`,
  );

program.parse();
const flags = program.opts();
const listen = flags.listen as { host: string; port: number };

const config: ServerConfig = {
  ...DEFAULT_CONFIG,
  host: listen.host,
  port: listen.port,
  dataDir: flags.data,
  fsync: flags.fsync,
  maxTtlMs: flags.maxTtl,
  dedupeWindowMs: flags.dedupeWindow,
  maxDedupeEntries: flags.maxDedupeEntries,
  expiredRetentionMs: flags.expiredRetention,
  maxLocks: flags.maxLocks,
  maxConnections: flags.maxConnections,
  acceptsPerTurn: flags.acceptsPerTurn,
  maxInflightPerConnection: flags.maxInflight,
  maxInflightTotal: flags.maxInflightTotal,
  maxQueuedReplyBytes: flags.maxQueuedReplyBytes,
  maxFrameLength: flags.maxFrameLength,
  frameTimeoutMs: flags.frameTimeout,
  idleTimeoutMs: flags.idleTimeout,
  replyTimeoutMs: flags.replyTimeout,
  snapshotEveryBytes: flags.snapshotEvery,
  segmentBytes: flags.segmentBytes,
  inlineSyncMaxEntries: flags.inlineSyncMax,
  statsEveryMs: flags.statsEvery,
  bumpFencingToken: flags.bumpFencingToken,
  requireState: flags.requireState === true,
  metricsListen: (flags.metricsListen as { host: string; port: number } | undefined) ?? null,
};
const logger = stderrLogger(shouldStamp(flags.logTimestamps as LogTimestamps));

async function main(): Promise<void> {
  // A log line must never stop the lock service: a closed stdout or stderr (a pipe whose reader
  // exited, a restarted journald) makes writes fail with EPIPE, which would otherwise be thrown.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  // With --inline-sync-max below the batch sizes, up to 4 log syncs run at once on libuv's thread
  // pool, beside the segment preallocation; give the pool room for them (it is sized on first use,
  // which is after this line).
  process.env.UV_THREADPOOL_SIZE ??= "8";
  let lockd;
  try {
    lockd = await startLockd(config, { logger });
  } catch (error) {
    logger.error(describeStartFailure(error as NodeJS.ErrnoException, config));
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal}: finishing requests in flight`);
    lockd.close().then(
      (cleanStop) => {
        reportStop(cleanStop);
        process.exit(0);
      },
      (error: Error) => {
        logger.error(`shutdown: ${error.message}`);
        process.exit(1);
      },
    );
  };
  // SIGHUP too: a closed terminal or a supervisor's hang-up stops lockd the same careful way.
  for (const signal of STOP_SIGNALS) process.on(signal, () => stop(signal));

  // Announce readiness only once the signal handlers are in place: a supervisor may signal at once.
  process.stdout.write(`lockd listening on ${joinHostPort(lockd.host, lockd.port)}\n`);
}

/** The last lines of a graceful stop: every answer was sent; whether the next start can check the log against this stop. */
function reportStop(cleanStop: CleanStopRecord): void {
  if (cleanStop.kind === "not-recorded" && cleanStop.why === "refusing") {
    logger.info(
      "stopped: every answer sent. lockd was answering 6 (see the error above), so this stop is not recorded as clean: " +
        "the next start recovers as after a crash, from what is on disk",
    );
    return;
  }
  const unrecorded = describeUnrecordedCleanStop(cleanStop);
  if (unrecorded !== null) logger.warn(unrecorded);
  logger.info("stopped: every answer sent, the log closed");
}

void main();
