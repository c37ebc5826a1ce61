/**
 * The compaction child is started at idle priority where `chrt` can do it, and directly elsewhere.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { idlePriorityLaunch } from "../../../src/storage/idle-priority.js";

const SCHED_IDLE = 5;

/** The scheduling policy the launched Node process reports for itself (field 41 of /proc/self/stat). */
const REPORT_POLICY = "const s = require('fs').readFileSync('/proc/self/stat', 'utf8'); process.stdout.write(s.slice(s.lastIndexOf(')') + 2).split(' ')[38]);";

function chrtWorks(): boolean {
  return process.platform === "linux" && spawnSync("chrt", ["--idle", "0", "true"]).status === 0;
}

describe("idle-priority launch", () => {
  it("starts Node children under SCHED_IDLE when chrt works here, and is null otherwise", () => {
    const launch = idlePriorityLaunch();
    if (!chrtWorks()) {
      expect(launch).toBeNull();
      return;
    }
    expect(launch).not.toBeNull();
    const child = spawnSync(launch!.execPath, [...launch!.execArgv, "-e", REPORT_POLICY], { encoding: "utf8" });
    expect(child.status).toBe(0);
    expect(Number(child.stdout)).toBe(SCHED_IDLE);
    // Without the launch, a child runs under the normal policy (0): the check above can fail.
    const plain = spawnSync(process.execPath, ["-e", REPORT_POLICY], { encoding: "utf8" });
    expect(Number(plain.stdout)).toBe(0);
  });
});
