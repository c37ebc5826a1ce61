/**
 * A start that finds compaction far behind (sealed log twice what starts one, as after a crash loop
 * that killed every compaction) writes the snapshot itself before serving, and deletes what it
 * covers; the state is the same, and the next start replays only the log after it.
 */
import { mkdirSync, rmdirSync, statSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { StateMachine, StateMachineConfig } from "../../../src/core/state-machine.js";
import { Status } from "../../../src/protocol/index.js";
import { silentLogger, type Logger } from "../../../src/logging/logger.js";
import { CATCH_UP_FACTOR } from "../../../src/storage/catch-up-snapshot.js";
import { listSegments, listSnapshots, openDataDir, snapshotPath, type DataDir } from "../../../src/storage/data-dir.js";
import { openDurableStorage, type DurableStorage } from "../../../src/storage/durable-storage.js";
import { nodeLogFiles } from "../../../src/storage/log-file.js";
import { acquire } from "../../support/frames.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { capturingLogger } from "../../support/capturing-logger.js";
import { stateBytes } from "../../support/state-bytes.js";
import { endsOnlyWhenStopped } from "../../support/stuck-compaction.js";
import { useTempDirs } from "../../support/temp-dir.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 600_000, expiredRetentionMs: 60_000, hashSeed: 21 };
const SNAPSHOT_EVERY = 4096;
const tempDir = useTempDirs();

/** Opens the directory with compactions that never finish, as if every one was killed with its lockd. */
function open(root: string, logger: Logger = silentLogger): DurableStorage {
  return openDurableStorage(openDataDir(root), {
    config: CONFIG,
    logger,
    files: nodeLogFiles,
    fsync: "always",
    segmentBytes: 1024,
    snapshotEveryBytes: SNAPSHOT_EVERY,
    runCompaction: (_job, signal) => endsOnlyWhenStopped(signal),
  });
}

/** Bytes in every segment but the newest: what the compactor weighs against its threshold. */
function sealedLogBytes(dir: DataDir): number {
  return listSegments(dir).slice(0, -1).reduce((sum, segment) => sum + segment.bytes, 0);
}

/** Grants `batches` x 3 new locks, a record per batch; returns the state afterwards. */
async function grant(storage: DurableStorage, batches: number, firstLock: number): Promise<StateMachine> {
  const harness = new PipelineHarness(storage.recovered.stateMachine, storage.log, { nextIndex: storage.recovered.lastIndex + 1 });
  for (let b = 0; b < batches; b++) {
    harness.nowMs += 1;
    const answers = await harness.run(...[0, 1, 2].map((n) => acquire({ lock: BigInt(firstLock + b * 3 + n), owner: 1n }, 600_000n)));
    expect(answers.every((answer) => answer.status === Status.Ok)).toBe(true);
  }
  await storage.log.close();
  storage.compactor.stop();
  return harness.stateMachine;
}

describe("a start that finds compaction far behind writes the snapshot itself", () => {
  it("snapshots the recovered state before serving, deletes the covered segments, and the next start replays only what follows", async () => {
    const root = tempDir();
    const dir = openDataDir(root);
    const before = await grant(open(root), 60, 0); // ~12 KiB of log in 1 KiB segments
    const sealedBytes = sealedLogBytes(dir);
    expect(sealedBytes).toBeGreaterThanOrEqual(CATCH_UP_FACTOR * SNAPSHOT_EVERY);
    expect(listSnapshots(dir)).toEqual([]);

    const logger = capturingLogger();
    const restarted = open(root, logger);
    await restarted.compactor.idle(); // the compactor removes what the snapshot covers, as after a job

    expect(restarted.recovered.lastIndex).toBe(180);
    expect(stateBytes(restarted.recovered.stateMachine)).toBe(stateBytes(before));
    expect(listSnapshots(dir).map((snapshot) => snapshot.lastIndex)).toEqual([180]);
    expect(listSegments(dir)).toHaveLength(1); // only the newest, which the log goes on in
    // Announced before it is written (it takes seconds for a large state), then reported.
    expect(logger.lines.join("\n")).toMatch(/writing a snapshot at index 180 before serving \(180 remembered answers, 180 lock records\)\n.*compaction had fallen behind .* wrote a snapshot at index 180 before serving/);
    const after = await grant(restarted, 2, 1000);

    const third = open(root);
    expect(third.recovered.snapshotPath).toBe(listSnapshots(dir)[0]!.path);
    expect(third.recovered.entriesReplayed).toBe(6); // the two batches after the snapshot
    expect(stateBytes(third.recovered.stateMachine)).toBe(stateBytes(after));
    await third.log.close();
    third.compactor.stop();
  });

  it("stops the start, naming the catch-up snapshot, when it cannot be written; the next start succeeds", async () => {
    const root = tempDir();
    const dir = openDataDir(root);
    const before = await grant(open(root), 60, 0);
    // A directory where the snapshot's temporary file goes makes its write fail (EISDIR).
    const blocker = `${snapshotPath(dir, 180)}.${process.pid}.tmp`;
    mkdirSync(blocker);
    let message = "";
    try {
      open(root);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/snapshot the start writes to catch up \(index 180, in .*\) failed: .*EISDIR.*\. It takes \d+ bytes\. Nothing was lost/s);
    rmdirSync(blocker);

    const restarted = open(root);
    await restarted.compactor.idle();
    expect(stateBytes(restarted.recovered.stateMachine)).toBe(stateBytes(before));
    expect(listSnapshots(dir).map((snapshot) => snapshot.lastIndex)).toEqual([180]);
    // The size the message gave is the size of the snapshot the next start wrote.
    expect(Number(/It takes (\d+) bytes/.exec(message)![1])).toBe(statSync(snapshotPath(dir, 180)).size);
    await restarted.log.close();
    restarted.compactor.stop();
  });

  it("leaves a log below that to the compaction process", async () => {
    const root = tempDir();
    const dir = openDataDir(root);
    await grant(open(root), 12, 0);
    const sealedBytes = sealedLogBytes(dir);
    expect(sealedBytes).toBeGreaterThan(0);
    expect(sealedBytes).toBeLessThan(CATCH_UP_FACTOR * SNAPSHOT_EVERY);

    const restarted = open(root);

    expect(listSnapshots(dir)).toEqual([]);
    expect(restarted.recovered.entriesReplayed).toBe(36);
    await restarted.log.close();
    restarted.compactor.stop();
  });
});
