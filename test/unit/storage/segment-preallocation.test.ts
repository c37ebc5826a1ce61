/**
 * The next log segment is zero-filled in the background only while the file system has room for it
 * and a whole segment more: on a nearly full disk the fill would race the segment being written for
 * the last blocks, and a lost race fails the log (every answer 6) with space still free.
 */
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { StateMachineConfig } from "../../../src/core/state-machine.js";
import { Status } from "../../../src/protocol/index.js";
import { listSegments, openDataDir } from "../../../src/storage/data-dir.js";
import { nodeLogFiles } from "../../../src/storage/log-file.js";
import { recover } from "../../../src/storage/recovery.js";
import { SegmentLog, type FreeBytes } from "../../../src/storage/segment-log.js";
import { capturingLogger } from "../../support/capturing-logger.js";
import { acquire } from "../../support/frames.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { useTempDirs } from "../../support/temp-dir.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 5 };
const SEGMENT_BYTES = 4096;
const SPARE = "next-segment.prealloc";
const tempDir = useTempDirs();

/** A log on a fresh directory whose free space the test sets (`free.bytes`; answered during the call). */
function openLog(free: { bytes: number | null }, root = tempDir()) {
  const dir = openDataDir(root);
  const recovered = recover(dir, CONFIG, capturingLogger());
  const logger = capturingLogger();
  const freeBytes: FreeBytes = (_path, done) => done(free.bytes);
  const log = new SegmentLog({
    dir,
    files: nodeLogFiles,
    fsync: "always",
    segmentBytes: SEGMENT_BYTES,
    logger,
    active: recovered.active,
    lastIndex: recovered.lastIndex,
    onSegmentSealed: () => {},
    freeBytes,
  });
  const harness = new PipelineHarness(recovered.stateMachine, log, { nextIndex: recovered.lastIndex + 1 });
  const spare = join(dir.logDir, SPARE);
  let nextLock = 0n;
  /** Grants batches of three until the log has rolled over to `segments` segments. */
  const writeUntil = async (segments: number): Promise<void> => {
    while (listSegments(dir).length < segments) {
      harness.nowMs += 1;
      const answers = await harness.run(...[0, 1, 2].map(() => acquire({ lock: nextLock++, owner: 1n }, 600_000n)));
      expect(answers.map((answer) => answer.status)).toEqual([Status.Ok, Status.Ok, Status.Ok]);
    }
  };
  /** Waits for a background fill to end without closing the log. */
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
  return { root, dir, log, logger, spare, writeUntil, settle };
}

describe("the next segment is preallocated only with room for it and one more segment", () => {
  it("zero-fills the spare when two segments fit", async () => {
    const { log, logger, spare } = openLog({ bytes: 2 * SEGMENT_BYTES });
    await log.close();
    expect(statSync(spare).size).toBe(SEGMENT_BYTES);
    expect(logger.lines).toEqual([]);
  });

  it("leaves it out below that, warns once, and grows segments as written; resumes once space is free", async () => {
    const free: { bytes: number | null } = { bytes: 2 * SEGMENT_BYTES - 1 };
    const { dir, log, logger, spare, writeUntil, settle } = openLog(free);
    await settle();
    expect(existsSync(spare)).toBe(false);

    await writeUntil(4);
    await settle();
    expect(existsSync(spare)).toBe(false);
    const warnings = logger.lines.filter((line) => line.includes("less than two log segments"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`in ${dir.logDir}`);
    // One byte short: in MiB the two sizes would read the same.
    expect(warnings[0]).toMatch(new RegExp(`^only ${2 * SEGMENT_BYTES - 1} bytes free in .*, less than two log segments \\(${2 * SEGMENT_BYTES} bytes, `));
    // The first segment was preallocated at the start; the one being written holds its records only.
    const segments = listSegments(dir);
    expect(segments[0]!.bytes).toBeGreaterThanOrEqual(SEGMENT_BYTES);
    expect(segments.at(-1)!.bytes).toBeLessThan(SEGMENT_BYTES);

    free.bytes = 2 * SEGMENT_BYTES;
    await writeUntil(5);
    await log.close();
    expect(statSync(spare).size).toBe(SEGMENT_BYTES);
    expect(logger.lines.filter((line) => line.includes("less than two log segments"))).toHaveLength(1);
  });

  it("a spare left by the last run counts as free space: it is refilled where it is", async () => {
    const first = openLog({ bytes: 10 * SEGMENT_BYTES });
    await first.writeUntil(1);
    await first.log.close();
    expect(statSync(first.spare).size).toBe(SEGMENT_BYTES);
    const { log, logger, spare } = openLog({ bytes: SEGMENT_BYTES }, first.root);
    await log.close();
    expect(statSync(spare).size).toBe(SEGMENT_BYTES);
    expect(logger.lines).toEqual([]);
  });

  it("a spare left by the last run is removed when even with it there is no room", async () => {
    const first = openLog({ bytes: 10 * SEGMENT_BYTES });
    await first.writeUntil(1);
    await first.log.close();
    const { log, logger, spare } = openLog({ bytes: SEGMENT_BYTES - 1 }, first.root);
    await log.close();
    expect(existsSync(spare)).toBe(false);
    expect(logger.lines.filter((line) => line.includes("less than two log segments"))).toHaveLength(1);
  });

  it("preallocates when the free space cannot be told", async () => {
    const { log, spare } = openLog({ bytes: null });
    await log.close();
    expect(statSync(spare).size).toBe(SEGMENT_BYTES);
  });
});
