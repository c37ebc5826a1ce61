/**
 * Decides when to compact and cleans up after it: once the sealed segments since the last snapshot
 * hold `snapshotEveryBytes`, and at least as many bytes as that snapshot, it runs a compaction job
 * (in a child process in production), then deletes the segments and older snapshots the new
 * snapshot covers. The second condition bounds the work: a snapshot rewrites the whole state, so
 * with a large state (millions of remembered request ids under heavy load) a fixed threshold would
 * rewrite far more than the log it replaces, back to back. Waiting for as much log as the last
 * snapshot holds keeps snapshot writing at most equal to log writing, and recovery at most one
 * snapshot plus that much log. One job at a time; a failed job is logged and retried at the next
 * sealed segment, and nothing is deleted unless a snapshot covers it.
 */
import { statSync } from "node:fs";
import { fork, type ChildProcess, type SendHandle } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { StateMachineConfig } from "../core/state-machine.js";
import type { Logger } from "../logging/logger.js";
import type { CompactionJob, CompactionResult } from "./compaction.js";
import type { CopyListener, LauncherReply, LauncherRequest, ListenerHandle } from "./compaction-launcher.js";
import { listSnapshots, type DataDir } from "./data-dir.js";
import { removeInSteps } from "./file-removal.js";
import { syncDirectoryAsync } from "./log-file.js";
import type { SealedSegment } from "./segment-log.js";

/** This many times what starts a compaction sealed while one still runs: a warning. */
const FALLEN_BEHIND_FACTOR = 3;

/** Runs one job; when `signal` aborts (shutdown), it may stop at once and reject. */
export type CompactionRunner = (job: CompactionJob, signal: AbortSignal) => Promise<CompactionResult>;

export class Compactor {
  private readonly sealed: { path: string; lastIndex: number; bytes: number }[] = [];
  private running: Promise<void> | null = null;
  private stopped = false;
  /** When the job in progress started, and whether it was said to have fallen behind. */
  private runningSinceMs = 0;
  private sealedBytesAtStart = 0;
  private warnedBehind = false;
  private readonly shutdown = new AbortController();
  private snapshotPath: string | null;
  private snapshotBytes: number;

  constructor(
    private readonly dir: DataDir,
    private readonly config: StateMachineConfig,
    private readonly snapshotEveryBytes: number,
    private readonly run: CompactionRunner,
    private readonly logger: Logger,
    initial: { snapshotPath: string | null; sealed: readonly { path: string; lastIndex: number; bytes: number }[] },
  ) {
    this.snapshotPath = initial.snapshotPath;
    this.snapshotBytes = initial.snapshotPath === null ? 0 : statSync(initial.snapshotPath).size;
    this.sealed.push(...initial.sealed);
  }

  readonly onSegmentSealed = (segment: SealedSegment): void => {
    this.sealed.push({ path: segment.path, lastIndex: segment.lastIndex, bytes: segment.bytes });
    this.maybeStart();
    if (this.running !== null && !this.warnedBehind && this.sealedBytes() - this.sealedBytesAtStart >= FALLEN_BEHIND_FACTOR * this.threshold()) {
      // Said once per job: a compaction process stopped (SIGSTOP), hung or starved of CPU is otherwise
      // silent while the log, and the time a restart takes to replay it, grows.
      this.warnedBehind = true;
      this.logger.warn(
        `compaction has fallen behind: the snapshot started ${durationText(performance.now() - this.runningSinceMs)} ago ` +
          `has not finished, and ${this.sealedBytes()} bytes of log have been sealed since the last one; a restart replays all of it`,
      );
    }
  };

  /** Whether the sealed log holds `factor` times what starts a compaction (1: one is due now). */
  isBehindBy(factor: number): boolean {
    return this.sealed.length > 0 && this.sealedBytes() >= factor * this.threshold();
  }

  /** The sealed log that starts a compaction: --snapshot-every, or the last snapshot's size if larger. */
  private threshold(): number {
    return Math.max(this.snapshotEveryBytes, this.snapshotBytes);
  }

  private sealedBytes(): number {
    return this.sealed.reduce((sum, segment) => sum + segment.bytes, 0);
  }

  maybeStart(): void {
    if (this.running !== null || this.stopped || !this.isBehindBy(1)) return;
    const segments = this.sealed.slice();
    const jobLogBytes = this.sealedBytes();
    const job: CompactionJob = { dir: this.dir, config: withoutMemory(this.config), snapshotPath: this.snapshotPath, segments };
    const startedMs = performance.now();
    this.runningSinceMs = startedMs;
    this.sealedBytesAtStart = jobLogBytes;
    this.warnedBehind = false;
    // Said at the start too: a compaction of a large state takes seconds, and an operator watching
    // the log (or the disk and CPU it uses) should be able to tell what is going on meanwhile.
    const count = segments.length === 1 ? "1 segment" : `${segments.length} segments`;
    this.logger.info(`snapshot through index ${segments.at(-1)!.lastIndex} started (${jobLogBytes} log bytes in ${count})`);
    this.running = this.run(job, this.shutdown.signal).then(
      (result) => this.install(result, segments.length, startedMs),
      (error: Error) => {
        this.running = null;
        if (this.stopped) return; // cut short by shutdown: the next start compacts again
        // Not retried at once (it would likely fail the same way, in a loop): the next sealed
        // segment tries again. The log keeps everything meanwhile.
        const space = /ENOSPC|EDQUOT/.test(error.message)
          ? `. A snapshot is written beside the last one in ${this.dir.snapshotDir} and needs about as much free space as the ` +
            `state (the last snapshot: ${this.snapshotBytes} bytes; the log it would cover: ${jobLogBytes} bytes)`
          : "";
        this.logger.error(`snapshot failed, log segments kept; tried again when the next segment is sealed: ${error.message}${space}`);
      },
    );
  }

  /**
   * A snapshot written without a job (by a start catching up, see catch-up-snapshot.ts) at or past
   * the last sealed segment: installed as a job's is, and what it covers removed the same way.
   * Only before any job has started.
   */
  adopt(result: CompactionResult, startedMs: number): void {
    if (this.running !== null) throw new Error("a snapshot can only be adopted while no compaction runs");
    this.running = this.install(result, this.sealed.length, startedMs);
  }

  /** A new snapshot stands: it becomes the base of the next job, and what it covers goes. */
  private async install(result: CompactionResult, covered: number, startedMs: number): Promise<void> {
    this.snapshotPath = result.snapshotPath;
    this.snapshotBytes = result.bytes;
    try {
      await this.removeCovered(result, covered);
      this.logger.info(
        `snapshot at index ${result.lastIndex} (${result.locks} lock records, ${result.dedupeEntries} remembered answers) ` +
          `written in ${Math.round(performance.now() - startedMs)} ms; ${covered} segments removed`,
      );
    } catch (error) {
      // The snapshot stands. What was not removed is covered by it: recovery deletes such
      // segments at the next start, and the next clean-up deletes older snapshots.
      this.logger.error(`snapshot at index ${result.lastIndex} written, but removing what it covers failed: ${(error as Error).message}`);
    }
    this.running = null;
    this.maybeStart(); // segments sealed meanwhile may already be due
  }

  /** Waits for a job in progress (shutdown). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /**
   * Shutdown: starts no new job and cuts a running one short (a snapshot is never needed for
   * correctness, and one of a large state takes seconds; the next start compacts again).
   */
  stop(): void {
    this.stopped = true;
    this.shutdown.abort();
  }

  /**
   * Deletes the segments and older snapshots the new snapshot covers, on the thread pool (unlinking
   * hundreds of MiB took 70-110 ms, which on the event loop stalled every request for that long),
   * and a few MiB at a time (file-removal.ts: freeing a whole segment at once held the log's syncs).
   * Segments go first and the directory is synced before older snapshots go, so a crash in between
   * leaves a snapshot that covers everything still on disk; a file cut short by a crash is one
   * recovery deletes (a covered segment) or never reads (an older snapshot).
   */
  private async removeCovered(result: CompactionResult, covered: number): Promise<void> {
    for (const segment of this.sealed.splice(0, covered)) await removeInSteps(segment.path);
    await syncDirectoryAsync(this.dir.logDir);
    for (const old of listSnapshots(this.dir)) {
      if (old.lastIndex < result.lastIndex) await removeInSteps(old.path);
    }
  }
}

/** A time for a log line: ms below a second (a small --snapshot-every falls behind within one), tenths of s below 10 s. */
function durationText(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** What a compaction process sends back. */
export type CompactionReply = { readonly ok: true; readonly result: CompactionResult } | { readonly ok: false; readonly message: string };

/** The compaction launcher lockd starts once (compaction-launcher.ts), as its compactor's runner. */
export interface CompactionLauncher {
  readonly run: CompactionRunner;
  /**
   * `count` more descriptors for the listening socket whose handle this is, each as a handle of its
   * own (compaction-launcher.ts says why). Rejects if the launcher fails first; the copies that came
   * are closed then.
   */
  readonly copyListener: CopyListener;
  /**
   * Lets the launcher go: it exits, killing a job still in progress. Resolves at once, or, if the
   * launcher may still hold a descriptor of the listening socket (a copyListener in progress), once
   * it has exited: until then the port would still take connections that nobody accepts.
   */
  close(): Promise<void>;
}

const LAUNCHER = fileURLToPath(new URL("./compaction-launcher.js", import.meta.url));
/**
 * How long an aborted job's launcher has to answer before it is killed. A responsive one kills the
 * compaction process at once and answers once it has removed the process's part-written snapshot.
 */
const LAUNCHER_ABORT_GRACE_MS = 2500;
/** How long a launcher that may still hold lockd's listening socket has to exit once let go, before it is killed. */
const LAUNCHER_EXIT_GRACE_MS = 2500;

/**
 * Starts the launcher now, while this process is small (see compaction-launcher.ts for why). Each
 * job runs in a fresh compaction process the launcher starts, at idle priority where it can be
 * (idle-priority.ts) if `idlePriority`. If the launcher dies, the job in progress fails and the next
 * job starts a new one.
 */
export function startCompactionLauncher({ idlePriority, logger }: { readonly idlePriority: boolean; readonly logger: Logger }): CompactionLauncher {
  const pending = new Map<number, { resolve: (result: CompactionResult) => void; reject: (error: Error) => void }>();
  const copying = new Map<number, { readonly copies: ListenerHandle[]; readonly settle: (error: Error | null) => void }>();
  let nextId = 1;
  let launcher: ChildProcess | null = null;
  /** The launcher that was sent a listening socket and has not yet said it closed its own descriptor of it. */
  let holdingListener: ChildProcess | null = null;

  const failAll = (error: Error): void => {
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
    for (const waiter of copying.values()) waiter.settle(error);
  };
  // The launcher keeps this process alive only while a job is in progress.
  const holdWhileBusy = (child: ChildProcess): void => {
    if (pending.size > 0) {
      child.ref();
      child.channel?.ref();
    } else {
      child.unref();
      child.channel?.unref();
    }
  };
  // The waiter of job `id`, taken out once its outcome is known (undefined if it already was).
  const take = (id: number, child: ChildProcess) => {
    const waiter = pending.get(id);
    if (waiter !== undefined) {
      pending.delete(id);
      holdWhileBusy(child);
    }
    return waiter;
  };
  const start = (): ChildProcess => {
    const child = fork(LAUNCHER, [], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "json" });
    child.on("message", (message: LauncherReply, handle?: ListenerHandle) => {
      if (message.kind !== "compaction") {
        const waiter = copying.get(message.id);
        if (message.kind === "listener-copy") {
          if (waiter === undefined) handle?.close();
          else if (handle !== undefined) waiter.copies.push(handle);
          // Node drops a descriptor it could not receive (this process out of descriptors).
          else waiter.settle(new Error("a copy arrived without its descriptor (is the open-file limit reached?)"));
        } else {
          if (holdingListener === child) holdingListener = null;
          waiter?.settle(message.error === null ? null : new Error(message.error));
        }
        return;
      }
      const waiter = take(message.id, child);
      if (waiter === undefined) return;
      if (message.reply.ok) waiter.resolve(message.reply.result);
      else waiter.reject(new Error(message.reply.message));
    });
    const gone = (reason: string): void => {
      if (launcher !== child) return;
      launcher = null;
      // A job in progress fails with the reason, and the compactor logs that.
      if (pending.size === 0) {
        logger.warn(
          `compaction launcher ${reason}; the next compaction starts a new one from lockd itself, which pauses every ` +
            "connection for as long as fork() takes to copy lockd's page tables (tens of ms at GBs of state)",
        );
      }
      failAll(new Error(`compaction launcher ${reason}`));
    };
    // "error" can come more than once (a spawn failure, a message that could not be sent).
    child.on("error", (error) => gone(`failed: ${error.message}`));
    child.once("exit", (code, signal) => {
      if (holdingListener === child) holdingListener = null;
      gone(`exited with ${signal ?? code}`);
    });
    holdWhileBusy(child);
    return child;
  };
  launcher = start();

  const run: CompactionRunner = (job, signal) =>
    new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Error("compaction abandoned"));
      const child = launcher ?? (launcher = start());
      const id = nextId++;
      let unresponsive: NodeJS.Timeout | undefined;
      const abort = (): void => {
        if (!pending.has(id)) return;
        if (child.connected) child.send({ kind: "abort", id } satisfies LauncherRequest);
        // A launcher that does not answer (stopped, hung) would hold lockd's shutdown: it goes, and
        // with it the job (a compaction process whose launcher is gone stops before it writes).
        unresponsive = setTimeout(() => {
          if (pending.has(id)) child.kill("SIGKILL");
        }, LAUNCHER_ABORT_GRACE_MS);
      };
      // The signal lives as long as the compactor: the listener goes when the job settles.
      const settle = (): void => {
        clearTimeout(unresponsive);
        signal.removeEventListener("abort", abort);
      };
      pending.set(id, {
        resolve: (result) => (settle(), resolve(result)),
        reject: (error) => (settle(), reject(error)),
      });
      signal.addEventListener("abort", abort, { once: true });
      holdWhileBusy(child);
      child.send({ kind: "run", id, job, idlePriority } satisfies LauncherRequest, (error) => {
        if (error !== null) take(id, child)?.reject(error);
      });
    });

  const copyListener: CopyListener = (handle, count) =>
    new Promise((resolve, reject) => {
      const child = launcher;
      if (child === null || !child.connected) return reject(new Error("the compaction launcher is not running"));
      const id = nextId++;
      const copies: ListenerHandle[] = [];
      copying.set(id, {
        copies,
        settle: (error) => {
          copying.delete(id);
          if (error === null) return resolve(copies);
          for (const copy of copies) copy.close();
          reject(error);
        },
      });
      holdingListener = child;
      // The native handle itself (compaction-launcher.ts says why); Node's typings know only the wrappers.
      child.send({ kind: "copy-listener", id, count } satisfies LauncherRequest, handle as unknown as SendHandle, {}, (error) => {
        if (error !== null) copying.get(id)?.settle(error);
      });
    });

  let closed: Promise<void> | null = null;
  const letGo = async (): Promise<void> => {
    const child = launcher;
    launcher = null;
    failAll(new Error("compaction launcher closed"));
    if (child?.connected) child.disconnect();
    // Also one that failed (an 'error') and is no longer `launcher`, if it may still hold the socket.
    const holder = holdingListener;
    if (holder === null || holder.exitCode !== null || holder.signalCode !== null) return;
    // It exits once it sees the channel close; one that does not (stopped, hung) is killed. Until
    // its exit is seen, it keeps this process alive: it is unref'd while idle.
    holder.ref();
    const exited = new Promise((resolve) => holder.once("exit", resolve));
    const unresponsive = setTimeout(() => holder.kill("SIGKILL"), LAUNCHER_EXIT_GRACE_MS);
    await exited;
    clearTimeout(unresponsive);
  };

  return {
    run,
    copyListener,
    close() {
      closed ??= letGo();
      return closed;
    },
  };
}

/**
 * The config a compaction process gets: the table memory belongs to this process (a server's comes
 * with a thread of its own), and the compaction's state machine takes fresh memory.
 */
function withoutMemory(config: StateMachineConfig): StateMachineConfig {
  // Only the memory source stays behind: every other setting, present or future, goes along.
  const { memory: _memory, ...portable } = config;
  return portable;
}
