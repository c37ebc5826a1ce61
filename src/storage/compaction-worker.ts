// Runs one compaction job on a worker thread, so the serving thread never replays or encodes.
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { compact, type CompactionJob } from "./compaction.js";

// Lowest CPU priority for this thread only (on Linux the nice value is per thread): on a busy machine
// the snapshot waits for idle cycles instead of taking them from the thread that serves requests.
try {
  setPriority(19);
} catch {
  // not permitted here: run at normal priority
}

try {
  parentPort!.postMessage({ ok: true, result: compact(workerData as CompactionJob) });
} catch (error) {
  parentPort!.postMessage({ ok: false, message: (error as Error).message });
}
