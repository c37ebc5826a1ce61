import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readClockStep, writeClockStep } from "../../../src/storage/clock-step-file.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();

describe("the recorded clock step", () => {
  it("reads back what was written last, nothing when there is none, and refuses one it cannot read", () => {
    const dir = openDataDir(tempDir());
    expect(readClockStep(dir)).toBeNull();
    writeClockStep(dir, { aheadMs: 3_600_000, atMs: 1_767_225_600_000 });
    writeClockStep(dir, { aheadMs: 1_500, atMs: 1_767_225_700_000 });
    expect(readClockStep(dir)).toEqual({ aheadMs: 1_500, atMs: 1_767_225_700_000 });
    // Going on without a record that exists would take the step it holds at once.
    writeFileSync(join(dir.root, "clock-step"), "{not json");
    expect(() => readClockStep(dir)).toThrow(/does not hold a wall-clock step record/);
    writeFileSync(join(dir.root, "clock-step"), JSON.stringify({ aheadMs: "x", atMs: 1 }));
    expect(() => readClockStep(dir)).toThrow(/does not hold a wall-clock step record/);
    writeFileSync(join(dir.root, "clock-step"), "null");
    expect(() => readClockStep(dir)).toThrow(/does not hold a wall-clock step record/);
  });
});
