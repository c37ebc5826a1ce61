// Runs one compaction job on a worker thread, so the serving thread never replays or encodes.
import { parentPort, workerData } from "node:worker_threads";
import { compact, type CompactionJob } from "./compaction.js";

try {
  parentPort!.postMessage({ ok: true, result: compact(workerData as CompactionJob) });
} catch (error) {
  parentPort!.postMessage({ ok: false, message: (error as Error).message });
}
