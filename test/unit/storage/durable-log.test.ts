import { describe, expect, it } from "vitest";
import type { StateMachineConfig } from "../../../src/core/state-machine.js";
import { BODY_CMD, Command, Status } from "../../../src/protocol/index.js";
import { silentLogger } from "../../../src/logging/logger.js";
import { compact } from "../../../src/storage/compaction.js";
import { openDurableStorage } from "../../../src/storage/durable-storage.js";
import { listSegments, listSnapshots, openDataDir, type DataDir } from "../../../src/storage/data-dir.js";
import { MAX_APPENDS_IN_FLIGHT } from "../../../src/log/commit-log.js";
import { ENTRY_BYTES, RECORD_HEADER_BYTES, recordBytes, sealRecord } from "../../../src/log/record.js";
import { recover } from "../../../src/storage/recovery.js";
import { SegmentLog } from "../../../src/storage/segment-log.js";
import type { Compactor } from "../../../src/storage/compactor.js";
import { FaultyFiles } from "../../support/faulty-files.js";
import { nodeLogFiles } from "../../../src/storage/log-file.js";
import { acquire, inspect, release, renew } from "../../support/frames.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { stateBytes } from "../../support/state-bytes.js";
import { useTempDirs } from "../../support/temp-dir.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 1 };
const tempDir = useTempDirs();

interface Node {
  readonly dir: DataDir;
  readonly files: FaultyFiles;
  readonly log: SegmentLog;
  readonly compactor: Compactor;
  readonly harness: PipelineHarness;
}

function openNode(
  root: string,
  options: { segmentBytes?: number; snapshotEveryBytes?: number; startMs?: number; inlineSyncMaxEntries?: number } = {},
): Node {
  const dir = openDataDir(root);
  const files = new FaultyFiles();
  const { recovered, log, compactor } = openDurableStorage(dir, {
    config: CONFIG,
    logger: silentLogger,
    files,
    fsync: "always",
    segmentBytes: options.segmentBytes ?? 1 << 20,
    snapshotEveryBytes: options.snapshotEveryBytes ?? Infinity,
    runCompaction: async (job) => compact(job),
    ...(options.inlineSyncMaxEntries === undefined ? {} : { inlineSyncMaxEntries: options.inlineSyncMaxEntries }),
  });
  const harness = new PipelineHarness(recovered.stateMachine, log, {
    nextIndex: recovered.lastIndex + 1,
    ...(options.startMs === undefined ? {} : { startMs: options.startMs }),
  });
  return { dir, files, log, compactor, harness };
}

/** Appends one record of `count` entries from `firstIndex` straight to the log; resolves to its `ok`. */
function appendRecord(log: SegmentLog, firstIndex: number, count: number): Promise<boolean> {
  // Not zeros: a torn write of a record whose tail is zeros would leave the whole record on the
  // preallocated (zero-filled) segment.
  const records = Buffer.alloc(recordBytes(count), 0x5a);
  // Each entry an INSPECT: replay refuses a command it does not know.
  for (let i = 0; i < count; i++) records[RECORD_HEADER_BYTES + i * ENTRY_BYTES + BODY_CMD] = Command.Inspect;
  sealRecord(records, 0, { term: 1, firstIndex, stampMs: 1, count, place: "first" });
  return new Promise((resolve) => log.append(records, firstIndex + count - 1, (result) => resolve(result.ok)));
}

describe("a restart makes the log it recovered durable before it serves", () => {
  it("syncs every segment the state was replayed from: a killed lockd's unsynced writes are part of the state now", async () => {
    const root = tempDir();
    const node = openNode(root, { segmentBytes: 65_536 });
    for (let round = 0; round < 4; round++) {
      for (let n = 0; n < 1_500; n++) node.harness.submit(acquire({ lock: BigInt(round * 10_000 + n), owner: 1n }, 60_000n));
      await node.harness.pipeline.whenIdle();
    }
    await node.log.close();
    const segments = listSegments(openDataDir(root)).length;
    expect(segments).toBeGreaterThan(2);

    const again = openNode(root, { segmentBytes: 65_536 });
    expect(again.files.syncs).toBe(segments);
    await again.log.close();
  });

  it("a sync that fails stops the start, naming the file and what it was for", async () => {
    const root = tempDir();
    const node = openNode(root);
    await node.harness.run(acquire({ lock: 1n, owner: 9n }, 30_000n));
    await node.log.close();
    const [segment] = listSegments(openDataDir(root));
    const fail = () => {
      throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
    };
    const failing = { ...nodeLogFiles, syncExisting: fail, rewriteExisting: fail };
    expect(() =>
      openDurableStorage(openDataDir(root), {
        config: CONFIG,
        logger: silentLogger,
        files: failing,
        fsync: "always",
        segmentBytes: 1 << 20,
        snapshotEveryBytes: Infinity,
        runCompaction: async (job) => compact(job),
      }),
    ).toThrow(`cannot make the recovered log durable before serving: syncing ${segment!.path} failed (EIO: i/o error, fdatasync)`);
  });
});

describe("the start makes the recovered log durable", () => {
  it("syncs older segments, and writes again every write from the last one issued when all before it was durable", async () => {
    const root = tempDir();
    // Small segments: the writes below fill several.
    const node = openNode(root, { segmentBytes: 1024 });
    for (let n = 0n; n < 40n; n++) await node.harness.run(acquire({ lock: n, owner: 9n }, 30_000n));
    await node.log.close();
    const segments = listSegments(openDataDir(root));
    expect(segments.length).toBeGreaterThan(2);
    const newest = segments.at(-1)!;
    const calls: string[] = [];
    const recording = {
      ...nodeLogFiles,
      syncExisting: (path: string) => {
        calls.push(`sync ${path}`);
        nodeLogFiles.syncExisting(path);
      },
      rewriteExisting: (path: string, from: number, to: number) => {
        calls.push(`rewrite ${path} ${from}..${to}`);
        nodeLogFiles.rewriteExisting(path, from, to);
      },
    };
    const { recovered } = openDurableStorage(openDataDir(root), {
      config: CONFIG,
      logger: silentLogger,
      files: recording,
      fsync: "always",
      segmentBytes: 1024,
      snapshotEveryBytes: Infinity,
      runCompaction: async (job) => compact(job),
    });
    // Every write was synced before the next (the default): only the last one is written again, one
    // record of one entry at the end of the newest segment.
    const lastWriteAt = recovered.active!.bytes - recordBytes(1);
    expect(calls).toEqual([...segments.slice(0, -1).map((segment) => `sync ${segment.path}`), `rewrite ${newest.path} ${lastWriteAt}..${recovered.active!.bytes}`]);
    expect(recovered.stateMachine.lockRecordCount).toBe(40);
  });
});

describe("an acknowledged change is on disk: written in full and fdatasync'ed before the reply", () => {
  it("answers only after the batch was synced, and a restart recovers it", async () => {
    const root = tempDir();
    const node = openNode(root);
    const [granted] = await node.harness.run(acquire({ lock: 1n, owner: 9n }, 30_000n));
    expect(granted!.status).toBe(Status.Ok);
    expect(node.files.syncs).toBe(1);
    await node.log.close();

    const again = openNode(root);
    const [seen] = await again.harness.run(inspect({ lock: 1n, owner: 9n }));
    expect(seen).toEqual(granted);
    await again.log.close();
  });

  it("groups every command of one turn into one write and one fsync", async () => {
    const node = openNode(tempDir());
    const frames = Array.from({ length: 200 }, (_, n) => acquire({ lock: BigInt(n), owner: 1n }, 10_000n));
    const answers = await node.harness.run(...frames);
    expect(answers.map((a) => a.status)).toEqual(frames.map(() => Status.Ok));
    expect(node.files.writes).toBe(1);
    expect(node.files.syncs).toBe(1);
    await node.log.close();
  });

  it("continues a short write until every byte is written", async () => {
    const root = tempDir();
    const node = openNode(root);
    node.files.arm({ kind: "short-write", bytes: 10 });
    const answers = await node.harness.run(acquire({ lock: 1n, owner: 2n }, 10_000n), acquire({ lock: 2n, owner: 2n }, 10_000n));
    expect(answers.map((a) => a.status)).toEqual([Status.Ok, Status.Ok]);
    expect(node.files.writes).toBeGreaterThan(1);
    await node.log.close();
    const restarted = openNode(root);
    expect(stateBytes(restarted.harness.stateMachine)).toBe(stateBytes(node.harness.stateMachine));
    await restarted.log.close();
  });
});

describe("which batches sync inline, on the event loop", () => {
  /** Appends records one after the other; reports how many inline syncs each one took. */
  function inlineSyncCounter(node: Node) {
    let nextIndex = 1;
    return {
      inlineSyncsOf: async (entries: number): Promise<number> => {
        const before = node.files.inlineSyncs;
        expect(await appendRecord(node.log, nextIndex, entries)).toBe(true);
        nextIndex += entries;
        return node.files.inlineSyncs - before;
      },
      appended: () => nextIndex - 1,
    };
  }

  it("by default every batch alone in flight, whatever its size", async () => {
    const node = openNode(tempDir());
    const { inlineSyncsOf } = inlineSyncCounter(node);
    for (const entries of [1, 200, 5000, 1, 64]) expect(await inlineSyncsOf(entries)).toBe(1);
    expect(node.files.syncs).toBe(5);
    await node.log.close();
  });

  it("none with a limit of 0: every sync goes to the thread pool", async () => {
    const node = openNode(tempDir(), { inlineSyncMaxEntries: 0 });
    const { inlineSyncsOf } = inlineSyncCounter(node);
    for (const entries of [1, 200, 1]) expect(await inlineSyncsOf(entries)).toBe(0);
    expect(node.files.syncs).toBe(3);
    await node.log.close();
  });

  it("with a limit, a lone small batch in a quiet stretch, never right after big batches", async () => {
    const node = openNode(tempDir(), { inlineSyncMaxEntries: 4 });
    const { inlineSyncsOf, appended } = inlineSyncCounter(node);
    expect(await inlineSyncsOf(1)).toBe(1); // a lone client
    for (let n = 0; n < 8; n++) expect(await inlineSyncsOf(200)).toBe(0); // a busy server
    expect(await inlineSyncsOf(1)).toBe(0); // a lull in a busy stretch: the loop keeps serving
    let quiet = 0;
    while ((await inlineSyncsOf(1)) === 0) quiet++;
    expect(quiet).toBeGreaterThan(5); // inline again once the recent batches are small
    expect(quiet).toBeLessThan(40);
    expect(node.files.syncs).toBe(appended() - 8 * 200 + 8); // one sync per batch either way
    await node.log.close();
  });
});

describe("with syncs overlapping on the thread pool, an append is acknowledged by its own sync only", () => {
  it("completes appends in order once each one's sync has returned", async () => {
    const node = openNode(tempDir(), { inlineSyncMaxEntries: 0 });
    const completions: number[] = [];
    const appends = [1, 2, 3].map((index) => appendRecord(node.log, index, 1).then((ok) => completions.push(index) && ok));
    expect(await Promise.all(appends)).toEqual([true, true, true]);
    expect(completions).toEqual([1, 2, 3]);
    expect(node.files.syncs).toBe(3);
    await node.log.close();
  });

  it("a later sync returning success first does not acknowledge an earlier append whose sync then fails", async () => {
    // Linux reports a writeback error to one of the overlapping fdatasyncs on a descriptor only: the
    // later one's success says nothing about the earlier one's pages.
    const node = openNode(tempDir(), { inlineSyncMaxEntries: 0 });
    node.files.arm({ kind: "fsync-fails-late", afterMs: 50 });
    const first = appendRecord(node.log, 1, 1);
    const second = appendRecord(node.log, 2, 1);
    expect(await second).toBe(false);
    expect(await first).toBe(false);
    expect(await appendRecord(node.log, 3, 1)).toBe(false); // the log refuses everything after
    await node.log.close();
  });
});

describe("at most MAX_APPENDS_IN_FLIGHT appends are written and unsynced at once (recovery relies on it)", () => {
  it("refuses one more, writing nothing of it, and stops", async () => {
    const node = openNode(tempDir(), { inlineSyncMaxEntries: 0 });
    const appends = Array.from({ length: MAX_APPENDS_IN_FLIGHT }, (_, n) => appendRecord(node.log, n + 1, 1));
    const writesBefore = node.files.writes;
    const oneMore = appendRecord(node.log, MAX_APPENDS_IN_FLIGHT + 1, 1);
    expect(node.files.writes).toBe(writesBefore);
    expect(await oneMore).toBe(false);
    await Promise.all(appends);
    expect(await appendRecord(node.log, MAX_APPENDS_IN_FLIGHT + 1, 1)).toBe(false);
    await node.log.close();
  });
});

describe("the log only grows by the next index: records that would leave a gap or repeat one are refused", () => {
  for (const [name, firstIndex] of [
    ["a gap", 4],
    ["a repeated index", 2],
  ] as const) {
    it(`${name}: nothing is written, the log stops, and a restart finds the log as it was acknowledged`, async () => {
      const root = tempDir();
      const node = openNode(root);
      expect(await appendRecord(node.log, 1, 2)).toBe(true);
      const writesBefore = node.files.writes;

      expect(await appendRecord(node.log, firstIndex, 1)).toBe(false);
      expect(node.files.writes).toBe(writesBefore);
      expect(await appendRecord(node.log, 3, 1)).toBe(false); // poisoned, like after a failed write
      await node.log.close();

      const restarted = openNode(root);
      expect(restarted.harness.pipeline.lastIndex).toBe(2);
      expect(await appendRecord(restarted.log, 3, 1)).toBe(true);
      await restarted.log.close();
    });
  }

  for (const fault of [{ kind: "torn-write", bytes: 40 }, { kind: "enospc" }, { kind: "gap" }] as const) {
    it(`after a refused append (${fault.kind}), the next one in the same turn is not written either`, async () => {
      const root = tempDir();
      const node = openNode(root);
      expect(await appendRecord(node.log, 1, 2)).toBe(true);
      if (fault.kind !== "gap") node.files.arm(fault);
      const refused = appendRecord(node.log, fault.kind === "gap" ? 4 : 3, 1);
      // Continues the refused append, and comes before the log has reported anything: written, it
      // would leave a gap where the refused records should be, and the next start would stop there.
      const following = appendRecord(node.log, fault.kind === "gap" ? 5 : 4, 1);
      expect(await refused).toBe(false);
      expect(await following).toBe(false);
      await node.log.close();

      const restarted = openNode(root);
      expect(restarted.harness.pipeline.lastIndex).toBe(2);
      expect(await appendRecord(restarted.log, 3, 1)).toBe(true);
      await restarted.log.close();
    });
  }
});

describe("a storage failure answers 6 and stops state changes; it never answers 0 for what is not on disk", () => {
  for (const fault of [{ kind: "fsync-fails" }, { kind: "enospc" }, { kind: "torn-write", bytes: 40 }] as const) {
    it(`after ${fault.kind}: the batch answers 6, later requests answer 6, and a retry after restart is consistent`, async () => {
      const root = tempDir();
      const node = openNode(root);
      const [kept] = await node.harness.run(acquire({ lock: 1n, owner: 1n, request: 101n }, 60_000n));
      expect(kept!.status).toBe(Status.Ok);

      node.files.arm(fault);
      const unacknowledged = [acquire({ lock: 2n, owner: 1n, request: 102n }, 60_000n), release({ lock: 1n, owner: 1n, request: 103n })];
      const failed = await node.harness.run(...unacknowledged);
      expect(failed.map((a) => a.status)).toEqual([Status.Unavailable, Status.Unavailable]);
      const later = await node.harness.run(acquire({ lock: 3n, owner: 1n }, 60_000n), inspect({ lock: 1n, owner: 1n }));
      expect(later.map((a) => a.status)).toEqual([Status.Unavailable, Status.Unavailable]);
      expect(node.harness.pipeline.failed).not.toBeNull();
      await node.log.close();

      // 6 means "not known to be done": after a failed fsync the batch may or may not be on disk.
      // Either way the acknowledged grant is intact and a retry with the same request ids is answered
      // as if it ran exactly once.
      const restarted = openNode(root);
      const [heldBefore] = await restarted.harness.run(inspect({ lock: 1n, owner: 1n }));
      if (fault.kind !== "fsync-fails") expect(heldBefore).toEqual(kept);
      else expect([Status.Ok, Status.NotHeld]).toContain(heldBefore!.status);
      const [granted, released] = await restarted.harness.run(...unacknowledged);
      expect(granted!.status).toBe(Status.Ok);
      expect(granted!.fencingToken).toBeGreaterThan(kept!.fencingToken);
      expect(released).toMatchObject({ status: Status.Ok, fencingToken: kept!.fencingToken });
      await restarted.log.close();
    });
  }
});

describe("segments roll over and are compacted into snapshots; recovery = snapshot + the log after it", () => {
  it("rebuilds the identical state, deletes covered segments, and keeps the clock and tokens", async () => {
    const root = tempDir();
    const node = openNode(root, { segmentBytes: 4096, snapshotEveryBytes: 8192 });
    let grants = 0;
    for (let round = 0; round < 60; round++) {
      node.harness.nowMs += 7;
      const frames = [];
      for (let n = 0; n < 10; n++) {
        const lock = BigInt((round * 3 + n) % 25);
        frames.push(acquire({ lock, owner: BigInt(n % 4) }, 50n + BigInt(n)));
        frames.push(renew({ lock, owner: BigInt(n % 4) }, 100n));
        if (n % 3 === 0) frames.push(release({ lock, owner: BigInt(n % 4) }));
      }
      const answers = await node.harness.run(...frames);
      grants += answers.filter((a) => a.status === Status.Ok && a.expiresAt > 0n).length;
    }
    expect(grants).toBeGreaterThan(0);
    const before = node.harness.stateMachine;
    await node.log.close();
    // A snapshot's clean-up unlinks on the thread pool: let it finish, as a stopping lockd does.
    await node.compactor.idle();
    expect(listSnapshots(node.dir).length).toBeGreaterThanOrEqual(1);
    expect(listSegments(node.dir).length).toBeLessThan(8);

    const after = recover(openDataDir(root), CONFIG, silentLogger);
    expect(after.snapshotPath).not.toBeNull();
    expect(after.stateMachine.logicalNowMs).toBe(before.logicalNowMs);
    expect(after.stateMachine.nextFencingToken).toBe(before.nextFencingToken);
    expect(stateBytes(after.stateMachine)).toBe(stateBytes(before));
  });
});
