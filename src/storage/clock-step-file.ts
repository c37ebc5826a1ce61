/**
 * DIR/clock-step: the last forward (or backward) step of the wall clock the leader's clock reported,
 * so that a restart can go on absorbing what is left of a forward step instead of letting it take
 * effect at once (see SteadyWallClock). Written rarely (once per step), atomically and synced.
 */
import { join } from "node:path";
import type { ClockStep } from "../clock/clock.js";
import type { DataDir } from "./data-dir.js";
import { readFileIfThere, replaceFileDurably } from "./small-file.js";

const FILE_NAME = "clock-step";

export function writeClockStep(dir: DataDir, step: ClockStep): void {
  replaceFileDurably(join(dir.root, FILE_NAME), `${JSON.stringify(step)}\n`);
}

/**
 * The recorded step, or null when there is none. A record that exists but cannot be read or makes no
 * sense stops the start: going on without it would take the step it recorded at once.
 */
export function readClockStep(dir: DataDir): ClockStep | null {
  const path = join(dir.root, FILE_NAME);
  const text = readFileIfThere(path);
  if (text === null) return null;
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
