import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { StateMachineConfig } from "../../../src/core/state-machine.js";
import { silentLogger } from "../../../src/logging/logger.js";
import { Compactor } from "../../../src/storage/compactor.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { capturingLogger } from "../../support/capturing-logger.js";
import { endsOnlyWhenStopped } from "../../support/stuck-compaction.js";
import { useTempDirs } from "../../support/temp-dir.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 1000, expiredRetentionMs: 1000, hashSeed: 1 };
const tempDir = useTempDirs();

describe("a failed snapshot keeps the log and is retried only when another segment is sealed", () => {
  it("does not retry in a loop, and shutdown does not wait on it", async () => {
    const logger = capturingLogger();
    let runs = 0;
    const dir = openDataDir(tempDir());
    const compactor = new Compactor(dir, CONFIG, 10, async () => {
      runs++;
      throw new Error("disk on fire");
    }, logger, { snapshotPath: null, sealed: [] });

    compactor.onSegmentSealed({ path: "/nonexistent/a.seg", firstIndex: 1, lastIndex: 5, bytes: 100 });
    await compactor.idle();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(runs).toBe(1);
    expect(logger.lines).toEqual([
      "snapshot through index 5 started (100 log bytes in 1 segment)",
      "snapshot failed, log segments kept; tried again when the next segment is sealed: disk on fire",
    ]);

    compactor.onSegmentSealed({ path: "/nonexistent/b.seg", firstIndex: 6, lastIndex: 9, bytes: 100 });
    await compactor.idle();
    expect(runs).toBe(2);
  });
});

describe("after a failed snapshot", () => {
  it("says how much space a snapshot needs when the disk was full", async () => {
    const logger = capturingLogger();
    const dir = openDataDir(tempDir());
    const compactor = new Compactor(dir, CONFIG, 10, async () => {
      throw new Error("ENOSPC: no space left on device, write");
    }, logger, { snapshotPath: null, sealed: [] });
    compactor.onSegmentSealed({ path: "/nonexistent/a.seg", firstIndex: 1, lastIndex: 5, bytes: 100 });
    await compactor.idle();
    expect(logger.lines.at(-1)).toBe(
      "snapshot failed, log segments kept; tried again when the next segment is sealed: ENOSPC: no space left on device, write. " +
        `A snapshot is written beside the last one in ${dir.snapshotDir} and needs about as much free space as the state ` +
        "(the last snapshot: 0 bytes; the log it would cover: 100 bytes)",
    );
  });
});

describe("a compaction that runs on while the log grows", () => {
  it("is said to have fallen behind once three times what starts one has been sealed since it started", async () => {
    const logger = capturingLogger();
    const compactor = new Compactor(openDataDir(tempDir()), CONFIG, 100, (_job, signal) => endsOnlyWhenStopped(signal), logger, {
      snapshotPath: null,
      sealed: [],
    });
    const behind = () => logger.lines.filter((line) => line.startsWith("compaction has fallen behind"));
    for (let n = 1; n <= 3; n++) compactor.onSegmentSealed({ path: `/nonexistent/${n}.seg`, firstIndex: n, lastIndex: n, bytes: 100 });
    expect(behind()).toEqual([]);
    compactor.onSegmentSealed({ path: "/nonexistent/4.seg", firstIndex: 4, lastIndex: 4, bytes: 100 });
    expect(behind()).toHaveLength(1);
    expect(behind()[0]).toMatch(/^compaction has fallen behind: the snapshot started (\d+ ms|\d\.\d s|\d{2,} s) ago has not finished, and 400 bytes of log have been sealed since the last one; a restart replays all of it$/);
    compactor.onSegmentSealed({ path: "/nonexistent/5.seg", firstIndex: 5, lastIndex: 5, bytes: 100 });
    expect(behind()).toHaveLength(1);
    compactor.stop();
    await compactor.idle();
  });
});

describe("snapshots wait for as much new log as the last snapshot holds", () => {
  it("starts at --snapshot-every while the state is small, and later only when the log since reaches the last snapshot's size", async () => {
    const dir = openDataDir(tempDir());
    const logger = silentLogger;
    const jobs: number[] = []; // sealed segments per job
    let snapshotBytes = 50;
    let segment = 0;
    const sealedSegment = (bytes: number) => {
      const path = join(dir.logDir, `${++segment}.seg`);
      writeFileSync(path, "");
      return { path, firstIndex: segment, lastIndex: segment, bytes };
    };
    const compactor = new Compactor(dir, CONFIG, 100, async (job) => {
      jobs.push(job.segments.length);
      const lastIndex = job.segments[job.segments.length - 1]!.lastIndex;
      return { snapshotPath: join(dir.snapshotDir, `${lastIndex}.snap`), lastIndex, locks: 0, dedupeEntries: 0, bytes: snapshotBytes };
    }, logger, { snapshotPath: null, sealed: [] });

    // A small snapshot (50 bytes): --snapshot-every (100) decides.
    compactor.onSegmentSealed(sealedSegment(60));
    expect(jobs).toEqual([]);
    compactor.onSegmentSealed(sealedSegment(60));
    await compactor.idle();
    expect(jobs).toEqual([2]);

    // The state grew: the next snapshot is 400 bytes, so 100 bytes of log no longer trigger one.
    snapshotBytes = 400;
    compactor.onSegmentSealed(sealedSegment(120));
    await compactor.idle();
    expect(jobs).toEqual([2, 1]);
    for (let n = 0; n < 3; n++) compactor.onSegmentSealed(sealedSegment(120));
    await compactor.idle();
    expect(jobs).toEqual([2, 1]);
    compactor.onSegmentSealed(sealedSegment(120)); // 480 bytes since the 400-byte snapshot
    await compactor.idle();
    expect(jobs).toEqual([2, 1, 4]);
  });

  it("takes the size of the snapshot it starts from into account", () => {
    const dir = openDataDir(tempDir());
    const snapshotPath = join(dir.snapshotDir, "7.snap");
    writeFileSync(snapshotPath, Buffer.alloc(1000));
    let runs = 0;
    const logger = silentLogger;
    const compactor = new Compactor(dir, CONFIG, 100, async () => {
      runs++;
      throw new Error("not expected");
    }, logger, { snapshotPath, sealed: [{ path: "/nonexistent/8.seg", lastIndex: 8, bytes: 900 }] });
    compactor.maybeStart();
    expect(runs).toBe(0);
  });
});

describe("shutdown cuts a running snapshot short", () => {
  it("aborts the job, waits only for it to stop, and logs no failure", async () => {
    const logger = capturingLogger();
    let started = false;
    const compactor = new Compactor(openDataDir(tempDir()), CONFIG, 10, (_job, signal) => {
      started = true;
      return endsOnlyWhenStopped(signal);
    }, logger, { snapshotPath: null, sealed: [] });
    compactor.onSegmentSealed({ path: "/nonexistent/a.seg", firstIndex: 1, lastIndex: 5, bytes: 100 });
    expect(started).toBe(true);
    compactor.stop();
    await compactor.idle();
    const startLine = ["snapshot through index 5 started (100 log bytes in 1 segment)"];
    expect(logger.lines).toEqual(startLine);
    compactor.onSegmentSealed({ path: "/nonexistent/b.seg", firstIndex: 6, lastIndex: 9, bytes: 100 });
    await compactor.idle();
    expect(logger.lines).toEqual(startLine);
  });
});
