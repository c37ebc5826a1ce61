/**
 * The composition root: builds the state machine, the log and the pipeline from a config, and starts
 * listening. Storage (data directory, recovery) plugs in here.
 */
import { randomInt } from "node:crypto";
import { DEFAULT_RETENTION, MAX_FENCING_TOKEN, type RetentionSettings, type StateMachine, type StateMachineConfig } from "../core/state-machine.js";
import { startCompactionLauncher } from "../storage/compactor.js";
import { currentBootId, machineMonotonicMs, openClockAnchor, readClockAnchor, type ClockAnchorWriter } from "../storage/clock-anchor-file.js";
import { readClockStep, writeClockStep } from "../storage/clock-step-file.js";
import { holdsState, openDataDir, volatileFileSystem, type DataDir } from "../storage/data-dir.js";
import { lockDataDir } from "../storage/data-dir-lock.js";
import { watchDataDir, type DataDirLoss, type DataDirWatch } from "../storage/data-dir-watch.js";
import { nodeLogFiles } from "../storage/log-file.js";
import {
  closeDurableStorage,
  describeUnrecordedCleanStop,
  openDurableStorage,
  type CleanStopRecord,
  type DurableStorage,
} from "../storage/durable-storage.js";
import { removeUnfinishedSnapshots } from "../storage/snapshot-file.js";
import { CommitPipeline } from "./commit-pipeline.js";
import { readSystemClocks, resumeClockAt, SLEW_RATE, systemClock, type Clock } from "../clock/clock.js";
import { joinHostPort } from "../protocol/host-port.js";
import type { ServerConfig } from "./config.js";
import type { AcceptCopies } from "./listener-copies.js";
import { LockServer, type ClosedConnections } from "./lock-server.js";
import type { Logger } from "../logging/logger.js";
import { acceptsPerTurnWithinFileLimit, connectionsWithinFileLimit, readOpenFileLimit } from "./open-file-limit.js";
import { reportStats, type CommitCounters, type ServerReading, type StatsLimits } from "./stats.js";
import { bumpFencingToken, bumpRefusal } from "./fencing-bump.js";
import { changeRetention, sameRetention } from "./retention-change.js";
import { startMetricsServer, type MetricsReading, type MetricsServer } from "./metrics.js";
import { packageVersion } from "../version.js";
import { WarmMemory } from "./warm-memory.js";

export interface Lockd {
  readonly host: string;
  readonly port: number;
  readonly pipeline: CommitPipeline;
  /** Stops serving, answers what is in flight and closes the storage; says whether the stop was recorded as clean. */
  close(): Promise<CleanStopRecord>;
}

export interface LockdDependencies {
  readonly logger: Logger;
  readonly clock?: Clock;
}

export async function startLockd(config: ServerConfig, deps: LockdDependencies): Promise<Lockd> {
  const { logger } = deps;
  if (config.requireState && !holdsState(config.dataDir)) {
    throw new Error(
      `--require-state: ${config.dataDir} holds no log or snapshot (a wrong --data, or a volume not mounted?); nothing was created. ` +
        "Start without the flag once to begin a new, empty state there.",
    );
  }
  const dir = openDataDir(config.dataDir);
  const dirLock = lockDataDir(dir.lockFile, config.dataDir);
  const volatile = volatileFileSystem(dir.root);
  if (volatile !== null) {
    logger.warn(
      `${config.dataDir} is on ${volatile}: nothing there reaches a disk, and the next boot empties it. lockd would then start from ` +
        "an empty state and issue fencing tokens from 1 again, to holders whose resources have seen higher ones. For tests only; " +
        "--require-state refuses such a start",
    );
  }
  if (dirLock.kind === "pid-file") {
    logger.warn(
      `no flock program (util-linux or BusyBox) was found, so ${dir.lockFile} only names this pid: a second lockd on this directory ` +
        "from another pid namespace (another container sharing the volume) would not be refused. Install util-linux or BusyBox.",
    );
  }
  if (dirLock.kind === "flock" && dirLock.directoryUnlocked) {
    logger.warn(
      `the data directory itself cannot be flocked here (${dirLock.directoryUnlocked}; NFS cannot lock a directory), so only ` +
        `${dir.lockFile} keeps a second lockd out: never delete it while lockd runs`,
    );
  }
  // Before recovery loads the state: the launcher is forked while this process is still small.
  const launcher = startCompactionLauncher({ idlePriority: true, logger });
  const memory = new WarmMemory(logger);
  const smConfig: StateMachineConfig = {
    // Not the flags: the log and the snapshots say which settings applied where (retention-change.ts).
    ...DEFAULT_RETENTION,
    hashSeed: randomInt(0x7fffffff),
    memory,
    // The tables start small and double incrementally as entries arrive. A large initial index is
    // not free even though its pages are only touched on use: every new id lands on a random page,
    // so for the first ~20 s at low load nearly every command paid one or two page faults (measured:
    // 9-12 µs of a lone client's 21-28 µs before its record was written, 2.6 µs with small tables).
  };
  let watch: DataDirWatch | null = null;
  let anchor: ClockAnchorWriter | null = null;
  let storage: DurableStorage | null = null;
  let refusing = (): boolean => false;
  try {
    removeUnfinishedSnapshots(dir);
    const startedMs = performance.now();
    const opened = openDurableStorage(dir, {
      config: smConfig,
      logger,
      files: nodeLogFiles,
      fsync: config.fsync,
      segmentBytes: config.segmentBytes,
      inlineSyncMaxEntries: config.inlineSyncMaxEntries,
      snapshotEveryBytes: config.snapshotEveryBytes,
      runCompaction: launcher.run,
      onRecovered: (recovered) =>
        logger.info(
          `recovered ${config.dataDir}: log index ${recovered.lastIndex}, ${recovered.entriesReplayed} entries replayed` +
            `${recovered.snapshotPath === null ? "" : " after a snapshot"}, ${recovered.stateMachine.lockRecordCount} lock records, ` +
            `next fencing token ${recovered.stateMachine.nextFencingToken}, in ${Math.round(performance.now() - startedMs)} ms`,
        ),
    });
    storage = opened;
    const { recovered, log } = opened;
    const sm = recovered.stateMachine;
    if (config.fsync === "never") {
      logger.warn("--fsync never: replies do not wait for the disk; a crash or power loss can lose acknowledged locks. Benchmarks only.");
    }
    // The clock is first read by the pipeline, so `pipeline` is set by the time the clock asks for it.
    // An injected clock has no wall clock to anchor. Opening the anchor changes nothing until the
    // clock's first sample, so resumeClock still reads the last run's.
    anchor = deps.clock === undefined ? openClockAnchor(dir) : null;
    const clock = deps.clock ?? resumeClock(dir, sm.logicalNowMs, logger, () => pipeline, anchor);
    const pipeline: CommitPipeline = new CommitPipeline({
      stateMachine: sm,
      log,
      limits: { maxLocks: config.maxLocks, maxDedupeEntries: config.maxDedupeEntries, maxTtlMs: config.maxTtlMs },
      clock,
      logger,
      term: Math.max(1, recovered.lastTerm),
      nextIndex: recovered.lastIndex + 1,
    });
    refusing = () => pipeline.failed !== null;
    watch = watchDataDir(dir, (loss) => pipeline.refuse("the data directory check", new Error(loss.what), DATA_DIR_ADVICE[loss.kind]));
    if (sm.nextFencingToken > MAX_FENCING_TOKEN) {
      logger.warn(`every fencing token up to ${MAX_FENCING_TOKEN} has been issued: ACQUIREs that would grant answer 6`);
    }
    const fileLimit = readOpenFileLimit();
    const maxConnections = connectionsWithinFileLimit(config.maxConnections, fileLimit);
    // How refusals name the limit: not a --max-connections value the operator never gave.
    let connectionLimitText: string | undefined;
    if (maxConnections < config.maxConnections) {
      connectionLimitText = `the ${maxConnections} connections that fit the open-file limit (ulimit -n ${fileLimit})`;
      logger.warn(
        `--max-connections ${config.maxConnections} does not fit the open-file limit (ulimit -n ${fileLimit}): ` +
          `serving at most ${maxConnections} connections. Raise the limit to serve more.`,
      );
    }
    const acceptsPerTurn = acceptsPerTurnWithinFileLimit(config.acceptsPerTurn, maxConnections, fileLimit);
    if (acceptsPerTurn < config.acceptsPerTurn) {
      logger.warn(
        `--accepts-per-turn ${config.acceptsPerTurn} does not fit the open-file limit (ulimit -n ${fileLimit}) beside ${maxConnections} ` +
          `connections: accepting at most ${acceptsPerTurn} per event-loop turn. Raise the limit, or lower --max-connections, to accept more.`,
      );
    }
    logger.info(
      `limits: ${maxConnections} connections, ${config.maxInflightPerConnection} requests in flight per connection ` +
        `and ${config.maxInflightTotal} in all, ` +
        `${config.maxLocks} lock records, ${config.maxDedupeEntries} remembered answers, ttl up to ${config.maxTtlMs} ms, ` +
        `frame lengths up to ${config.maxFrameLength}`,
    );
    const limits: StatsLimits = { maxConnections, maxInflightTotal: config.maxInflightTotal, maxLocks: config.maxLocks, maxDedupeEntries: config.maxDedupeEntries };
    const counters = pipeline.counters;
    let server: LockServer | null = null;
    const read = (): ServerReading => ({
      requests: counters.requests,
      logIndex: pipeline.durableIndex,
      batches: counters.batches,
      commitMsTotal: counters.commitMsTotal,
      connections: server?.connectionCount ?? 0,
      requestsInFlight: server?.inflight.inFlight ?? 0,
      lockRecords: sm.lockRecordCount,
      rememberedAnswers: sm.dedupeEntryCount,
      nextFencingToken: sm.nextFencingToken,
    });
    // A start that would stop anyway stops before it logs anything: a retention change logged by a
    // start that then refuses its bump would still apply to every later start, and forget answers.
    const bumpRefused = config.bumpFencingToken > 0 ? bumpRefusal(sm.nextFencingToken, config.bumpFencingToken) : null;
    if (bumpRefused !== null) throw new Error(`--bump-fencing-token ${config.bumpFencingToken}: ${bumpRefused}`);
    // Before the bump changes anything and before the lock port opens: a metrics address that cannot
    // be served stops the start with nothing done.
    const listenerFacts = (): ListenerFacts => ({ connectionsClosed: server?.closed ?? NONE_CLOSED, acceptingDescriptors: server?.acceptingDescriptors ?? 0 });
    const metrics = config.metricsListen === null ? null : await serveMetrics(config.metricsListen, read, limits, counters, listenerFacts);
    if (metrics !== null) logger.info(`metrics on http://${joinHostPort(metrics.address.address, metrics.address.port)}/metrics`);
    try {
      // The port before the entries a start logs: one it cannot listen on stops the start with nothing
      // changed. Connections accepted meanwhile are closed unread.
      server = await LockServer.listen({ ...config, maxConnections }, pipeline, logger, connectionLimitText);
      const retention = { dedupeWindowMs: config.dedupeWindowMs, expiredRetentionMs: config.expiredRetentionMs };
      if (!sameRetention(sm.retention, retention)) await changeRetentionBeforeServing(pipeline, sm, retention, logger);
      if (config.bumpFencingToken > 0) await bumpBeforeServing(pipeline, sm, config.bumpFencingToken, logger);
      server.serve();
      server.acceptMoreWhenQueued(acceptsPerTurn, launcher.copyListener, reportAcceptsPerTurn(logger));
    } catch (error) {
      await server?.close();
      await metrics?.close();
      throw error;
    }
    const lockServer = server;
    const address = lockServer.address();
    const stopStats =
      config.statsEveryMs > 0
        ? reportStats(config.statsEveryMs, () => ({ atMs: performance.now(), ...read(), commitMsMax: counters.takeCommitMsMax() }), limits, (line) =>
            logger.info(line),
          )
        : () => {};
    return {
      host: address.address,
      port: address.port,
      pipeline,
      async close() {
        stopStats();
        await metrics?.close();
        await lockServer.close();
        const cleanStop = await closeDurableStorage(dir, opened, config.fsync, pipeline.failed !== null);
        await launcher.close();
        await memory.close();
        anchor?.close();
        watch?.stop();
        dirLock.release();
        return cleanStop;
      },
    };
  } catch (error) {
    // A start that fails after recovery (a busy port) stops its storage like a clean stop, so the
    // next start keeps the clean-stop check; the start's own error is the one reported.
    if (storage !== null) {
      const cleanStop = await closeDurableStorage(dir, storage, config.fsync, refusing()).catch(() => null);
      const unrecorded = cleanStop === null ? null : describeUnrecordedCleanStop(cleanStop);
      if (unrecorded !== null) logger.warn(unrecorded);
    }
    await launcher.close();
    void memory.close();
    anchor?.close();
    watch?.stop();
    dirLock.release();
    throw error;
  }
}

/** How lockd reports the outcome of fetching the listening socket's further descriptors (LockServer.acceptMoreWhenQueued). */
function reportAcceptsPerTurn(logger: Logger): (outcome: AcceptCopies | Error) => void {
  return (outcome) => {
    if (outcome instanceof Error) {
      logger.warn(
        "connections are queued, and lockd goes on accepting one per event-loop turn: no further descriptors of the listening socket " +
          `(${outcome.message}). Under full load new connections wait longer to be accepted.`,
      );
    } else if (outcome.kind === "no-handle") {
      logger.warn("connections are queued, and lockd goes on accepting one per event-loop turn: this Node's listener has no handle to copy");
    } else if (outcome.kind === "accepting" && outcome.descriptors === outcome.asked) {
      logger.info(`connections are queued: accepting up to ${outcome.asked} per event-loop turn from now on`);
    } else if (outcome.kind === "accepting") {
      logger.warn(`connections are queued, and lockd accepts up to ${outcome.descriptors} per event-loop turn, not ${outcome.asked}: the other descriptors could not be used`);
    }
  };
}

const RESTORE_FROM_BACKUP =
  'restore the directory from a backup and start it once with --bump-fencing-token (README, "Backups and restores").';

/** What the operator should do once the data directory check refuses (data-dir-watch.ts). */
const DATA_DIR_ADVICE: Record<DataDirLoss["kind"], string> = {
  gone: `A restart there would begin from an empty state and grant every lock and fencing token again: ${RESTORE_FROM_BACKUP}`,
  // Permissions taken away, an I/O error: the files may all be there, and a restart recovers them.
  // --require-state: if the path now leads to another directory (the data moved away, something
  // unreadable made in its place), that restart refuses instead of starting empty.
  unreachable:
    "lockd cannot tell whether its data is still there. If it is (a permission or mount changed), put that right and restart " +
    "lockd with --require-state, which recovers every acknowledged change (and refuses to start on a directory without " +
    "state). If it was deleted or moved away, do not restart there: " +
    RESTORE_FROM_BACKUP,
};

const NONE_CLOSED: ClosedConnections = { overLimit: 0, frameTimeout: 0, idleTimeout: 0, replyTimeout: 0 };

/** What the metrics read from the lock port's server (none before it listens). */
type ListenerFacts = Pick<MetricsReading, "connectionsClosed" | "acceptingDescriptors">;

/** Starts the metrics server over `read`, saying which address failed if it cannot listen. */
async function serveMetrics(
  listen: { host: string; port: number },
  read: () => ServerReading,
  limits: StatsLimits,
  counters: CommitCounters,
  listenerFacts: () => ListenerFacts,
): Promise<MetricsServer> {
  const version = packageVersion();
  try {
    return await startMetricsServer(listen.host, listen.port, () => ({
      ...read(),
      ...limits,
      version,
      commitBuckets: counters.cumulativeBuckets(),
      ...listenerFacts(),
    }));
  } catch (error) {
    throw new Error(`cannot serve metrics on ${joinHostPort(listen.host, listen.port)}: ${(error as Error).message}`);
  }
}

/** `--bump-fencing-token`: logs the bump and says what it did; a failure stops the start. */
async function bumpBeforeServing(pipeline: CommitPipeline, sm: StateMachine, amount: number, logger: Logger): Promise<void> {
  const before = sm.nextFencingToken;
  const bump = await bumpFencingToken(pipeline, amount);
  if (!bump.ok) throw new Error(`--bump-fencing-token ${amount}: ${bump.reason}`);
  logger.info(`--bump-fencing-token: the fencing counter went from ${before} to ${bump.nextToken}, logged: the next ACQUIRE gets ${bump.nextToken}`);
}

/** Flags that change the retention settings: logs the change and says so; a failure stops the start. */
async function changeRetentionBeforeServing(pipeline: CommitPipeline, sm: StateMachine, settings: RetentionSettings, logger: Logger): Promise<void> {
  const before = sm.retention;
  if (!(await changeRetention(pipeline, settings))) {
    throw new Error("the new --dedupe-window / --expired-retention could not be logged (see the log write error above); nothing is served");
  }
  logger.info(
    `--dedupe-window ${settings.dedupeWindowMs} ms and --expired-retention ${settings.expiredRetentionMs} ms apply from log index ` +
      `${pipeline.durableIndex} on (before: ${before.dedupeWindowMs} ms and ${before.expiredRetentionMs} ms, which earlier commands keep in every replay)`,
  );
}

/**
 * The leader's clock after a restart: it goes on absorbing what the clock before the restart may
 * have had left of a forward step, estimated from the last record, and on the same boot what the
 * wall clock moved further than real time since the last anchor (resumeClockAt; the pipeline keeps
 * logical time from going back below the recovered time). The clock records whenever what is left outgrows the
 * last record, in the data directory, for the next restart. A record that cannot be written makes
 * the pipeline refuse every request: leases granted after it could end early at a restart.
 */
function resumeClock(
  dir: DataDir,
  recoveredMs: number,
  logger: Logger,
  pipeline: () => Pick<CommitPipeline, "failed" | "refuse">,
  anchor: ClockAnchorWriter | null,
): Clock {
  const monotonicMs = machineMonotonicMs(); // before the wall clock: a pause between only asks for more
  // One wall-clock reading for the estimate and the clock's start: a step after it (while the
  // record below is written) is then met by the clock as a step, not taken at once.
  const reading = readSystemClocks();
  const { carriedMs, anchorLeadMs, unabsorbedMs, record, newRecord } = resumeClockAt(
    readClockStep(dir),
    recoveredMs,
    readClockAnchor(dir),
    currentBootId(),
    monotonicMs,
    reading.wallMs,
  );
  if (carriedMs > 0) {
    logger.warn(`a wall-clock step was still being absorbed when lockd stopped: ${carriedMs} ms of it is absorbed from here on`);
  }
  if (anchorLeadMs - carriedMs >= REPORTED_DOWNTIME_STEP_MS) {
    logger.warn(
      `the wall clock moved ${Math.round(anchorLeadMs - carriedMs)} ms further than real time while lockd was down: leases keep their length, ` +
        `and logical time catches up running ${SLEW_RATE * 100}% fast`,
    );
  }
  // The clock's first reading is the wall clock less what is left to absorb; logical time waits for it.
  const behindMs = recoveredMs - (reading.wallMs - unabsorbedMs);
  if (behindMs >= REPORTED_DOWNTIME_STEP_MS) {
    logger.warn(
      `the wall clock is ${Math.round(behindMs)} ms behind the time lockd recovered (it was stepped back while lockd was down, or put right ` +
        `after a forward step lockd had not absorbed): logical time stands still until the clock catches up, about that long, and leases last longer meanwhile`,
    );
  }
  if (newRecord !== null) {
    try {
      writeClockStep(dir, newRecord);
    } catch (error) {
      throw new Error(`cannot record the wall-clock step left to absorb in ${dir.root}: ${(error as Error).message}`);
    }
  }
  return systemClock(
    (aheadMs) => logger.warn(describeClockStep(aheadMs)),
    (step) => {
      if (pipeline().failed !== null) return false; // refusing already: no write attempt per reading
      try {
        writeClockStep(dir, step);
        return true;
      } catch (error) {
        pipeline().refuse(`recording the wall-clock step in ${dir.root}`, error as Error);
        return false;
      }
    },
    (sampleMs) => {
      if (anchor === null || pipeline().failed !== null) return;
      try {
        anchor.note(sampleMs);
      } catch (error) {
        // A stale anchor would let a restart start logical time further ahead than this run took it.
        pipeline().refuse(`writing the clock anchor in ${dir.root}`, error as Error);
      }
    },
    unabsorbedMs,
    record,
    reading,
  );
}

/** A step made while lockd was down is logged from this size on (smaller ones are reading noise). */
const REPORTED_DOWNTIME_STEP_MS = 1_000;

function describeClockStep(aheadMs: number): string {
  const hours = Math.abs(aheadMs) / SLEW_RATE / 3_600_000;
  const within = hours < 1 ? `${Math.ceil(hours * 60)} min` : `${hours.toFixed(1)} h`;
  if (aheadMs < 0) {
    return (
      `the wall clock jumped ${-aheadMs} ms back: logical time runs ${SLEW_RATE * 100}% slow until the wall clock ` +
      `catches up (in about ${within}, or at once if it is put right), so leases last a little longer meanwhile`
    );
  }
  return (
    `the wall clock jumped ${aheadMs} ms ahead of real time: leases keep their length, and logical time catches up ` +
    `running ${SLEW_RATE * 100}% fast (in about ${within})`
  );
}
