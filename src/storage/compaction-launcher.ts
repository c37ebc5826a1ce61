// The process that starts compaction processes, started once by lockd while lockd is still small.
//
// Starting a child means fork(), and fork() copies the parent's page tables: measured in lockd under
// load, 25 ms at 371 MB of resident memory, 31 ms at 682 MB and 57 ms at 1.2 GB, with the event loop
// (every connection) stopped for all of it, at every compaction. This process stays at a few tens of
// MB, so the forks happen here and lockd only exchanges messages with it.
//
// It runs one job at a time and relays the compaction process's reply. Whether compaction processes
// can start at idle priority is found out here, when the first job comes: the probe spawns a process
// of its own, which at lockd's start would have delayed serving by about 10 ms. When lockd goes away
// (its IPC channel closes: exit, crash or kill -9), it kills the job in progress and exits, so no
// snapshot is written for a lockd that no longer exists. Stop signals sent to lockd's whole process
// group are lockd's to act on (group-signals.ts).
//
// It also gives lockd more descriptors for its listening socket. Node's event loop accepts one
// connection per descriptor per turn, and Node has no dup(): a descriptor sent over the IPC channel
// arrives as a new one, so the launcher sends the one it got back as many times as asked, then
// closes its own. It holds it for no longer than that, so a lockd that stops frees its port.
import { fork, type ChildProcess, type SendHandle } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { CompactionJob } from "./compaction.js";
import type { CompactionReply } from "./compactor.js";
import { leaveStopSignalsToLockd } from "./group-signals.js";
import { idlePriorityLaunch, type ChildLaunch } from "./idle-priority.js";
import { removeUnfinishedSnapshotOf } from "./snapshot-file.js";

/** A listening socket's native handle (net.Server's `_handle`), as Node sends it between processes. */
export interface ListenerHandle {
  close(): void;
}

/** Gets `count` more descriptors of the listening socket whose handle this is, each as a handle of its own. */
export type CopyListener = (handle: ListenerHandle, count: number) => Promise<ListenerHandle[]>;

/** What lockd sends. */
export type LauncherRequest =
  /** `idlePriority`: start the compaction process at the scheduler's idle priority where possible. */
  | { readonly kind: "run"; readonly id: number; readonly job: CompactionJob; readonly idlePriority: boolean }
  | { readonly kind: "abort"; readonly id: number }
  /** Sent with a listening socket's native handle: send it back `count` times. */
  | { readonly kind: "copy-listener"; readonly id: number; readonly count: number };

/** What the launcher sends back. */
export type LauncherReply =
  /** Once per run request. */
  | { readonly kind: "compaction"; readonly id: number; readonly reply: CompactionReply }
  /** Sent with one copy of the listening socket's handle. */
  | { readonly kind: "listener-copy"; readonly id: number }
  /** After the copies, or when a send failed (`error`: why); the launcher has closed its own by then. */
  | { readonly kind: "listener-copied"; readonly id: number; readonly error: string | null };

const COMPACTION_PROCESS = fileURLToPath(new URL("./compaction-process.js", import.meta.url));

let current: { readonly id: number; readonly child: ChildProcess } | null = null;
/** How compaction processes start at idle priority here (null: they cannot); probed at the first job that asks. */
let idleLaunch: ChildLaunch | null | undefined;

function answer(id: number, reply: CompactionReply): void {
  if (current?.id === id) current = null;
  if (process.connected) process.send!({ kind: "compaction", id, reply } satisfies LauncherReply);
}

function run(id: number, job: CompactionJob, idlePriority: boolean): void {
  const launch = idlePriority ? (idleLaunch ??= idlePriorityLaunch()) : null;
  const child = fork(COMPACTION_PROCESS, [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "json",
    ...(launch === null ? {} : { execPath: launch.execPath, execArgv: [...launch.execArgv] }),
  });
  current = { id, child };
  let answered = false;
  const once = (reply: CompactionReply): void => {
    if (answered) return;
    answered = true;
    answer(id, reply);
  };
  child.once("message", (reply: CompactionReply) => once(reply));
  child.once("error", (error) => once({ ok: false, message: error.message }));
  child.once("exit", (code, signal) => {
    if (answered) return;
    // Killed (out of memory, a signal) while writing, it left its part-written snapshot: a state's
    // worth of space per failure, which a job killed again and again would pile up until the disk
    // is full. Removed before answering, so the next job cannot start beside it.
    const { pid } = child;
    const removal = pid === undefined ? Promise.resolve() : removeUnfinishedSnapshotOf(job.dir, pid);
    void removal.then(
      () => once({ ok: false, message: `compaction process exited with ${signal ?? code}` }),
      (error: Error) => once({ ok: false, message: `compaction process exited with ${signal ?? code} (its temporary file stays: ${error.message})` }),
    );
  });
  child.send(job);
}

/** The most copies one request may ask for: --accepts-per-turn's largest value, less the original. */
const MAX_LISTENER_COPIES = 1023;
/** How often the launcher looks whether lockd is still there while it holds lockd's socket. */
const LOCKD_CHECK_EVERY_MS = 10;

/** Sends `handle` back `count` times, one after another, then closes it here. */
function copyListener(id: number, count: number, handle: { close(): void } | undefined): void {
  // While a handle it sent is unacknowledged, Node holds back the 'disconnect' of a lockd that died
  // (it waits for that handle's queue to drain, which never happens): looked for here instead, so
  // that this process lets go of the port and ends its compaction as it would on 'disconnect'.
  const lockdCheck = setInterval(() => {
    if (!process.connected) lockdGone();
  }, LOCKD_CHECK_EVERY_MS);
  const done = (error: string | null): void => {
    clearInterval(lockdCheck);
    handle?.close();
    if (process.connected) process.send!({ kind: "listener-copied", id, error } satisfies LauncherReply);
  };
  if (handle === undefined) return done("no handle came with the request");
  if (!Number.isInteger(count) || count < 0 || count > MAX_LISTENER_COPIES) return done(`cannot make ${count} copies (0 to ${MAX_LISTENER_COPIES})`);
  let sent = 0;
  const sendNext = (): void => {
    if (sent >= count) return done(null);
    sent++;
    if (!process.connected) return done("lockd went away");
    // A native handle, not a net.Server: a Server arriving is listened on again with Node's default
    // backlog, which would shrink the shared socket's queue. Node's typings know only the wrappers.
    process.send!({ kind: "listener-copy", id } satisfies LauncherReply, handle as unknown as SendHandle, {}, (error) =>
      error === null ? sendNext() : done(error.message),
    );
  };
  sendNext();
}

leaveStopSignalsToLockd();

process.on("message", (request: LauncherRequest, handle?: { close(): void }) => {
  if (request.kind === "copy-listener") {
    copyListener(request.id, request.count, handle);
  } else if (request.kind === "abort") {
    // SIGKILL: the process leaves the stop signals to lockd, has nothing to clean up itself (its
    // part-written snapshot is removed here once it has exited), and a stopped one (SIGSTOP, a
    // debugger) would hold any other signal until continued, with lockd's shutdown waiting on it.
    if (current?.id === request.id) current.child.kill("SIGKILL");
  } else if (current !== null) {
    answer(request.id, { ok: false, message: "a compaction is already running" });
  } else {
    run(request.id, request.job, request.idlePriority);
  }
});

/** lockd is gone (its IPC channel closed: exit, crash or kill -9): so is the job, and this process. */
function lockdGone(): void {
  current?.child.kill("SIGKILL");
  process.exit(0);
}

process.on("disconnect", lockdGone);
