/**
 * How a background child (the compaction process) is started at the scheduler's idle priority.
 *
 * `nice 19` is not enough on a small machine: a niced process that is running keeps its CPU for a
 * while when a server thread or a client wakes up on that CPU, and a compaction runs for seconds.
 * Measured on 2 cores at 50 connections x 16 requests in flight, with a CPU-bound child running
 * alongside: 600k ops/s with no child, 485k with it at nice 19, 561k with it under SCHED_IDLE, whose
 * tasks give way to any other task at once. Node cannot set a scheduling policy itself, so the child
 * is started through util-linux's `chrt --idle 0` when that works here (probed once, by the
 * compaction launcher at its first job); else it starts directly and lowers only its nice value
 * (compaction-process.ts).
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** What `fork` takes to start a Node child through a launcher. */
export interface ChildLaunch {
  readonly execPath: string;
  readonly execArgv: readonly string[];
}

function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The launch for a Node child at idle priority, or null where that is not available (not Linux, no
 * `chrt`, or it refuses). Spawns one short process to find out.
 */
export function idlePriorityLaunch(): ChildLaunch | null {
  if (process.platform !== "linux") return null;
  const chrt = findOnPath("chrt");
  if (chrt === null) return null;
  const probe = spawnSync(chrt, ["--idle", "0", "true"], { stdio: "ignore", timeout: 10_000 });
  if (probe.status !== 0) return null;
  return { execPath: chrt, execArgv: ["--idle", "0", process.execPath, ...process.execArgv] };
}
