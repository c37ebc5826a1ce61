import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readClockStep, writeClockStep } from "../../../src/storage/clock-step-file.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();

describe("the recorded clock step", () => {
  it("reads back what was written last, and nothing when there is none or it is unreadable", () => {
    const dir = openDataDir(tempDir());
    expect(readClockStep(dir)).toBeNull();
    writeClockStep(dir, { aheadMs: 3_600_000, atMs: 1_767_225_600_000 });
    writeClockStep(dir, { aheadMs: 1_500, atMs: 1_767_225_700_000 });
    expect(readClockStep(dir)).toEqual({ aheadMs: 1_500, atMs: 1_767_225_700_000 });
    writeFileSync(join(dir.root, "clock-step"), "{not json");
    expect(readClockStep(dir)).toBeNull();
    writeFileSync(join(dir.root, "clock-step"), JSON.stringify({ aheadMs: "x", atMs: 1 }));
    expect(readClockStep(dir)).toBeNull();
  });
});
