// Runs one compaction job in a child process of lockd. A process rather than a worker thread: the
// job allocates as much as the whole state (GBs under heavy load), and in the server's own address
// space those allocations contended with the event loop's (measured: 4-17 ms stalls in the server's
// own allocations while a snapshot was built, none without); a job that runs out of memory also
// dies alone instead of taking the server with it.
import { setPriority } from "node:os";
import { compact, type CompactionJob } from "./compaction.js";
import type { CompactionReply } from "./compactor.js";
import { leaveStopSignalsToLockd } from "./group-signals.js";

// Aborted by the launcher with SIGKILL; a stop signal meant for lockd's group is lockd's.
leaveStopSignalsToLockd();

// Lowest nice value, for where lockd could not start this process under SCHED_IDLE (see
// idle-priority.ts; under that policy the nice value has no effect): on a busy machine the snapshot
// should wait for idle cycles instead of taking them from the server.
try {
  setPriority(19);
} catch {
  // not permitted here: run at normal priority
}

const parent = process.ppid;

process.once("message", (job: CompactionJob) => {
  let reply: CompactionReply;
  try {
    // If lockd died meanwhile, stop before writing: the next lockd compacts for itself.
    reply = { ok: true, result: compact(job, () => process.ppid === parent) };
  } catch (error) {
    reply = { ok: false, message: (error as Error).message };
  }
  process.send!(reply, () => process.disconnect());
});
