import { describe, expect, it } from "vitest";
import type { StateMachineConfig } from "../../../src/core/state-machine.js";
import { Compactor } from "../../../src/storage/compactor.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import type { Logger } from "../../../src/server/logger.js";
import { useTempDirs } from "../../support/temp-dir.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 1000, expiredRetentionMs: 1000, hashSeed: 1 };
const tempDir = useTempDirs();

describe("a failed snapshot keeps the log and is retried only when another segment is sealed", () => {
  it("does not retry in a loop, and shutdown does not wait on it", async () => {
    const lines: string[] = [];
    const logger: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
    let runs = 0;
    const compactor = new Compactor(openDataDir(tempDir()), CONFIG, 10, async () => {
      runs++;
      throw new Error("disk on fire");
    }, logger, { snapshotPath: null, sealed: [] });

    compactor.onSegmentSealed({ path: "/nonexistent/a.seg", firstIndex: 1, lastIndex: 5, bytes: 100 });
    await compactor.idle();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runs).toBe(1);
    expect(lines).toEqual(["snapshot failed, log segments kept: disk on fire"]);

    compactor.onSegmentSealed({ path: "/nonexistent/b.seg", firstIndex: 6, lastIndex: 9, bytes: 100 });
    await compactor.idle();
    expect(runs).toBe(2);
  });
});
