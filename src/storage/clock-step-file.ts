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

/**
 * The recorded step, or null when there is none. A record that exists but cannot be read or makes no
 * sense stops the start: going on without it would take the step it recorded at once.
 */
export function readClockStep(dir: DataDir): ClockStep | null {
  const path = join(dir.root, FILE_NAME);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: Partial<ClockStep> | null = null;
  try {
    parsed = JSON.parse(text) as Partial<ClockStep>;
  } catch {
    // reported below
  }
  if (parsed === null || typeof parsed !== "object" || !Number.isFinite(parsed.aheadMs) || !Number.isFinite(parsed.atMs)) {
    throw new Error(
      `${path} does not hold a wall-clock step record. It tells a restart how much of a step is left to absorb; ` +
        "delete it only if the wall clock has been right for a while (a step it recorded would take effect at once)",
    );
  }
  return { aheadMs: parsed.aheadMs!, atMs: parsed.atMs! };
}
