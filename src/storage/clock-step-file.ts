/**
 * DIR/clock-step: the last forward (or backward) step of the wall clock the leader's clock reported,
 * so that a restart can go on absorbing what is left of a forward step instead of letting it take
 * effect at once (see SteadyWallClock). Written rarely (once per step), atomically and synced.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ClockStep } from "../server/clock.js";
import type { DataDir } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";

const FILE_NAME = "clock-step";

export function writeClockStep(dir: DataDir, step: ClockStep): void {
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

/** The recorded step, or null when there is none or it cannot be read (then nothing is carried over). */
export function readClockStep(dir: DataDir): ClockStep | null {
  try {
    const parsed = JSON.parse(readFileSync(join(dir.root, FILE_NAME), "utf8")) as Partial<ClockStep>;
    return Number.isFinite(parsed.aheadMs) && Number.isFinite(parsed.atMs) ? { aheadMs: parsed.aheadMs!, atMs: parsed.atMs! } : null;
  } catch {
    return null;
  }
}
