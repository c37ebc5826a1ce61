import { existsSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { cleanStopPath, readCleanStop, removeCleanStop, writeCleanStop } from "../../../src/storage/clean-stop-file.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();

describe("the clean-stop record", () => {
  it("reads back what was written, is null when absent, and is gone once removed", () => {
    const dir = openDataDir(tempDir());
    expect(readCleanStop(dir)).toBe(null);
    writeCleanStop(dir, 12345);
    expect(readCleanStop(dir)).toBe(12345);
    removeCleanStop(dir);
    expect(existsSync(cleanStopPath(dir))).toBe(false);
    expect(readCleanStop(dir)).toBe(null);
    removeCleanStop(dir); // removing what is not there is fine
  });

  it("stops the start when it holds anything but an index, saying what deleting it gives up", () => {
    const dir = openDataDir(tempDir());
    for (const junk of ["", "12", "-1\n", "1e3\n", "99999999999999999999\n", "12\n13\n"]) {
      writeFileSync(cleanStopPath(dir), junk);
      expect(() => readCleanStop(dir), JSON.stringify(junk)).toThrow(
        `${cleanStopPath(dir)} does not hold a log index. It lets a start tell a damaged log from a torn write; delete it to start without that check`,
      );
    }
  });
});
