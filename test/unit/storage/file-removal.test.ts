import { existsSync, linkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { removeInSteps, truncationSteps } from "../../../src/storage/file-removal.js";
import { useTempDirs } from "../../support/temp-dir.js";

const MiB = 1 << 20;
const tempDir = useTempDirs();

describe("truncationSteps", () => {
  it("walks down through the multiples of the step below the size, to 0", () => {
    expect(truncationSteps(10 * MiB + 5, 4 * MiB)).toEqual([8 * MiB, 4 * MiB, 0]);
    expect(truncationSteps(8 * MiB, 4 * MiB)).toEqual([4 * MiB, 0]);
    expect(truncationSteps(1, 4 * MiB)).toEqual([0]);
    expect(truncationSteps(0, 4 * MiB)).toEqual([]);
  });
});

describe("removeInSteps", () => {
  it("empties the file before unlinking it", async () => {
    const dir = tempDir();
    const path = join(dir, "segment");
    writeFileSync(path, Buffer.alloc(9 * MiB + 3, 7));
    // A second name for the same file shows what happened to its content: a plain unlink would
    // leave it whole.
    const witness = join(dir, "witness");
    linkSync(path, witness);

    await removeInSteps(path, 4 * MiB);

    expect(existsSync(path)).toBe(false);
    expect(statSync(witness).size).toBe(0);
  });

  it("removes an empty file", async () => {
    const path = join(tempDir(), "empty");
    writeFileSync(path, "");
    await removeInSteps(path);
    expect(existsSync(path)).toBe(false);
  });

  it("fails as unlink would for a file that is not there", async () => {
    await expect(removeInSteps(join(tempDir(), "missing"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
