/**
 * DIR/clock-step: the last forward (or backward) step of the wall clock the leader's clock reported,
 * so that a restart can go on absorbing what is left of a forward step instead of letting it take
 * effect at once (see SteadyWallClock): within the same boot exactly, from the clock's anchor; after
 * a reboot from an estimate. Written rarely (once per step), atomically and synced.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ClockAnchor, ClockStep } from "../server/clock.js";
import type { DataDir } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";

const FILE_NAME = "clock-step";

/** The clock's anchor at the step, on the monotonic clock of the boot `bootId`. */
export interface BootAnchor extends ClockAnchor {
  readonly bootId: string;
}

/** A recorded step, with the anchor a restart in the same boot resumes from (null: not known). */
export interface RecordedClockStep extends ClockStep {
  readonly boot: BootAnchor | null;
}

export function writeClockStep(dir: DataDir, step: RecordedClockStep): void {
  const path = join(dir.root, FILE_NAME);
  const tempPath = `${path}.tmp`;
  const fd = openSync(tempPath, "w");
  try {
    writeSync(fd, `${JSON.stringify(step)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tempPath, path);
  syncDirectory(dir.root);
}

/**
 * The recorded step, or null when there is none or it cannot be read (then nothing is carried over).
 * A record without a readable anchor (or written before anchors were) still gives its step.
 */
export function readClockStep(dir: DataDir): RecordedClockStep | null {
  try {
    const parsed = JSON.parse(readFileSync(join(dir.root, FILE_NAME), "utf8")) as { aheadMs?: unknown; atMs?: unknown; boot?: Partial<BootAnchor> | null };
    if (typeof parsed.aheadMs !== "number" || !Number.isFinite(parsed.aheadMs) || typeof parsed.atMs !== "number" || !Number.isFinite(parsed.atMs)) return null;
    const boot = parsed.boot;
    const anchored =
      typeof boot === "object" && boot !== null && typeof boot.bootId === "string" && Number.isFinite(boot.ceilingMs) && Number.isFinite(boot.monotonicMs);
    return {
      aheadMs: parsed.aheadMs,
      atMs: parsed.atMs,
      boot: anchored ? { bootId: boot.bootId!, ceilingMs: boot.ceilingMs!, monotonicMs: boot.monotonicMs! } : null,
    };
  } catch {
    return null;
  }
}
