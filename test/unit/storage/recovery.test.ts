import { existsSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { StateMachineConfig } from "../../../src/core/state-machine.js";
import { FRESH_MEMORY, type TableMemory } from "../../../src/core/table-memory.js";
import { lockRecordBuffers, recordingMemory } from "../../support/recording-memory.js";
import { silentLogger } from "../../../src/logging/logger.js";
import { compact } from "../../../src/storage/compaction.js";
import { listSegments, listSnapshots, openDataDir, segmentPath, type DataDir } from "../../../src/storage/data-dir.js";
import { nodeLogFiles, syncDirectory } from "../../../src/storage/log-file.js";
import { recover, RecoveryError, type Recovered } from "../../../src/storage/recovery.js";
import { REPLAY_PROGRESS_EVERY_MS } from "../../../src/storage/recovery-progress.js";
import { SegmentLog } from "../../../src/storage/segment-log.js";
import { Command, Status, encodeRequest } from "../../../src/protocol/index.js";
import { MAX_APPENDS_IN_FLIGHT } from "../../../src/log/commit-log.js";
import { ENTRY_BYTES, RECORD_HEADER_BYTES, readRecord, recordBytes, sealRecord } from "../../../src/log/record.js";
import { LENGTH_PREFIX_BYTES } from "../../../src/protocol/index.js";
import { entryOf } from "../../support/state-machine-driver.js";
import { acquire, inspect } from "../../support/frames.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { capturingLogger } from "../../support/capturing-logger.js";
import { useTempDirs } from "../../support/temp-dir.js";

type SealedFile = Recovered["sealed"][number];

const CONFIG: StateMachineConfig = { dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 3 };
const tempDir = useTempDirs();

// Watched, not replaced: a test below checks what exists when the snapshots' directory is synced.
vi.mock("../../../src/storage/log-file.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../../src/storage/log-file.js")>();
  return { ...original, syncDirectory: vi.fn(original.syncDirectory) };
});

/** Writes `batches` batches of 3 grants each, each batch one record; returns the segment paths. */
async function writeLog(root: string, batches: number, segmentBytes = 1 << 20, firstLock = 0): Promise<string[]> {
  const dir = openDataDir(root);
  const recovered = recover(dir, CONFIG, silentLogger);
  const log = new SegmentLog({
    dir,
    files: nodeLogFiles,
    fsync: "always",
    segmentBytes,
    logger: silentLogger,
    active: recovered.active,
    lastIndex: recovered.lastIndex,
    onSegmentSealed: () => {},
  });
  const harness = new PipelineHarness(recovered.stateMachine, log, { nextIndex: recovered.lastIndex + 1 });
  for (let b = 0; b < batches; b++) {
    harness.nowMs += 1;
    const answers = await harness.run(...[0, 1, 2].map((n) => acquire({ lock: BigInt(firstLock + b * 3 + n), owner: 1n }, 600_000n)));
    expect(answers.every((a) => a.status === Status.Ok)).toBe(true);
  }
  await log.close();
  return listSegments(dir).map((segment) => segment.path);
}

/** Offset just after the last record written (segments are preallocated: zeros follow). */
function writtenEnd(bytes: Buffer): number {
  let at = 0;
  for (;;) {
    const scan = readRecord(bytes, at);
    if (scan.kind !== "record") return at;
    at = scan.end;
  }
}

describe("a torn tail (a partial or bad LAST record) is truncated, with a log line saying how many bytes", () => {
  it("drops garbage appended to the newest segment and keeps every record before it", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    const goodBytes = writtenEnd(bytes);
    Buffer.from("this is not a record, just noise").copy(bytes, goodBytes);
    writeFileSync(segment!, bytes.subarray(0, goodBytes + 32));
    const logger = capturingLogger();
    const recovered = recover(openDataDir(root), CONFIG, logger);
    expect(recovered.lastIndex).toBe(15);
    expect(statSync(segment!).size).toBe(goodBytes);
    // A segment that grew as written has no zeros after the data, and the line claims none.
    expect(logger.lines.join("\n")).toMatch(new RegExp(`dropped 32 bytes at offset ${goodBytes}, a torn final write \\(32 bytes of data; `));
  });

  it("drops a partial record written into the preallocated (zero) space", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    const goodBytes = writtenEnd(bytes);
    bytes.copy(bytes, goodBytes, 0, 50); // the start of a record, then zeros: a write cut short
    writeFileSync(segment!, bytes);
    const logger = capturingLogger();
    const recovered = recover(openDataDir(root), CONFIG, logger);
    expect(recovered.lastIndex).toBe(15);
    expect(statSync(segment!).size).toBe(goodBytes);
    expect(logger.lines.join("\n")).toMatch(/a torn final write \(\d+ bytes of data, then \d+ bytes of zeros; /);
  });

  it("drops a final record cut short by a crash", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 4);
    const bytes = readFileSync(segment!);
    writeFileSync(segment!, bytes.subarray(0, writtenEnd(bytes) - 20));
    const recovered = recover(openDataDir(root), CONFIG, capturingLogger());
    expect(recovered.lastIndex).toBe(9);
  });

  it("drops a final record whose checksum is wrong", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 4);
    const bytes = readFileSync(segment!);
    bytes[writtenEnd(bytes) - 3]! ^= 0x40;
    writeFileSync(segment!, bytes);
    const recovered = recover(openDataDir(root), CONFIG, capturingLogger());
    expect(recovered.lastIndex).toBe(9);
    // Its header was whole, so the walk of the headers ended on its mark; the last write kept runs
    // from the mark before it to the end.
    const end = recovered.active!.bytes;
    const places: string[] = [];
    for (let at = recovered.activeLastWriteAfterDurableAt!; at < end; ) {
      const scan = readRecord(bytes, at);
      if (scan.kind !== "record") throw new Error(`no record at ${at}`);
      places.push(scan.header.place);
      at = scan.end;
    }
    expect(places[0]).toBe("first-after-durable");
    expect(places.slice(1).every((place) => place === "later")).toBe(true);
  });
});

/** One write of a hand-made segment: `records` records of one grant each, the first marked `place`. */
interface WriteSpec {
  readonly place: "first" | "first-after-durable" | "unmarked";
  readonly records: number;
}

/**
 * Writes the newest (only) segment by hand, preallocated with zeros, and returns each record's offset
 * and how many entries come before it. Entry n grants lock n.
 */
function writeSegment(root: string, writes: readonly WriteSpec[]): { path: string; records: { at: number; indexBefore: number }[] } {
  const dir = openDataDir(root);
  const path = segmentPath(dir, 1);
  const file = Buffer.alloc(64 * 1024);
  const records: { at: number; indexBefore: number }[] = [];
  let at = 0;
  let index = 0;
  for (const write of writes) {
    for (let r = 0; r < write.records; r++) {
      records.push({ at, indexBefore: index });
      const frame = acquire({ lock: BigInt(index), owner: 1n, request: BigInt(index + 1) }, 600_000n);
      entryOf(frame.subarray(LENGTH_PREFIX_BYTES)).copy(file, at + RECORD_HEADER_BYTES);
      const place = write.place === "unmarked" ? "unmarked" : r === 0 ? write.place : "later";
      at = sealRecord(file, at, { term: 1, firstIndex: index + 1, stampMs: 1000 + index, count: 1, place });
      index++;
    }
  }
  writeFileSync(path, file);
  return { path, records };
}

/** Damages a record's entries (its checksum then fails), as a sector the disk never wrote would. */
function damage(path: string, at: number): void {
  const bytes = readFileSync(path);
  bytes.fill(0, at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + 20);
  writeFileSync(path, bytes);
}

describe("writes a power loss tore out of order: damage followed by intact records of unfinished writes", () => {
  it("truncates at the damage inside the last write, with the intact records after it", () => {
    const root = tempDir();
    const { path, records } = writeSegment(root, [
      { place: "first-after-durable", records: 2 },
      { place: "first-after-durable", records: 4 },
    ]);
    damage(path, records[3]!.at); // the last write's second record: its third and fourth survived
    const logger = capturingLogger();

    const recovered = recover(openDataDir(root), CONFIG, logger);

    expect(recovered.lastIndex).toBe(3);
    expect(recovered.stateMachine.lockRecordCount).toBe(3);
    expect(statSync(path).size).toBe(records[3]!.at);
    expect(logger.lines.join("\n")).toMatch(/checksum mismatch \(stored \w+, computed \w+\); 2 intact records of unfinished writes after it\); it was never acknowledged/);
  });

  it("truncates a write lost whole while later writes in flight with it survived", () => {
    const root = tempDir();
    const { path, records } = writeSegment(root, [
      { place: "first-after-durable", records: 1 },
      { place: "first", records: 2 },
      { place: "first", records: 1 },
      { place: "first", records: 2 },
    ]);
    const bytes = readFileSync(path);
    bytes.fill(0, records[1]!.at, records[3]!.at); // the second write never reached the disk
    writeFileSync(path, bytes);

    const recovered = recover(openDataDir(root), CONFIG, capturingLogger());

    expect(recovered.lastIndex).toBe(1);
    expect(statSync(path).size).toBe(records[1]!.at);
  });

  it(`truncates when fewer than ${MAX_APPENDS_IN_FLIGHT} writes follow the damaged one, and refuses when that many do`, () => {
    for (const later of [MAX_APPENDS_IN_FLIGHT - 1, MAX_APPENDS_IN_FLIGHT]) {
      const root = tempDir();
      const writes: WriteSpec[] = [{ place: "first-after-durable", records: 1 }, { place: "first", records: 1 }];
      for (let n = 0; n < later; n++) writes.push({ place: "first", records: 1 });
      const { path, records } = writeSegment(root, writes);
      damage(path, records[1]!.at);
      if (later < MAX_APPENDS_IN_FLIGHT) {
        expect(recover(openDataDir(root), CONFIG, capturingLogger()).lastIndex).toBe(1);
      } else {
        expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
          `is corrupt at offset ${records[1]!.at}: checksum mismatch (stored`,
        );
        expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
          `${MAX_APPENDS_IN_FLIGHT} intact writes follow it: with it, more than are ever in flight at once`,
        );
      }
    }
  });

  it("refuses when a write after the damage was issued once everything before it was durable", () => {
    const root = tempDir();
    const { path, records } = writeSegment(root, [
      { place: "first-after-durable", records: 3 },
      { place: "first-after-durable", records: 1 },
    ]);
    damage(path, records[1]!.at);

    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
      `The write at offset ${records[3]!.at} after it was issued when every earlier record was durable; refusing to start`,
    );
    expect(readFileSync(path).length).toBe(64 * 1024); // nothing truncated
  });

  it("refuses damage followed by records that do not mark their writes (a log written before the marks)", () => {
    const root = tempDir();
    const { path, records } = writeSegment(root, [{ place: "unmarked", records: 4 }]);
    damage(path, records[2]!.at);

    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
      `The intact record at offset ${records[3]!.at} after it does not mark its writes`,
    );
  });

  it("still truncates a damaged last record of a log written before the marks", () => {
    const root = tempDir();
    const { path, records } = writeSegment(root, [{ place: "unmarked", records: 4 }]);
    damage(path, records[3]!.at);

    expect(recover(openDataDir(root), CONFIG, capturingLogger()).lastIndex).toBe(3);
    expect(statSync(path).size).toBe(records[3]!.at);
  });
});

describe("a record a client built inside its ids does not decide what damage is", () => {
  /**
   * Two ACQUIREs whose log entries, back to back, hold a record with a valid checksum, marked as the
   * first of a write issued when everything before it was durable, claiming index `claimedIndex`.
   * The record starts at the first entry's request id; the second entry's command byte and the first
   * one's ttl fall inside it, so they are set before the checksum is computed.
   */
  function forgingPair(claimedIndex: number): Buffer[] {
    const TTL_MS = 1000n;
    const forged = Buffer.alloc(RECORD_HEADER_BYTES + ENTRY_BYTES + 4); // and 4 bytes of the second owner id
    forged.fill(0x5a, RECORD_HEADER_BYTES);
    forged.writeBigUInt64BE(TTL_MS, 48); // bytes 48-56: the first entry's ttl
    forged[56] = Command.Acquire; // byte 56: the second entry's command
    sealRecord(forged, 0, { term: 1, firstIndex: claimedIndex, stampMs: 2_000_000, count: 1, place: "first-after-durable" });
    const second = Buffer.alloc(16, 0x44);
    forged.copy(second, 0, 89, 93);
    return [
      encodeRequest({ command: Command.Acquire, requestId: forged.subarray(0, 16), lockId: forged.subarray(16, 32), ownerId: forged.subarray(32, 48), ttlMs: TTL_MS }),
      encodeRequest({ command: Command.Acquire, requestId: forged.subarray(57, 73), lockId: forged.subarray(73, 89), ownerId: second, ttlMs: TTL_MS }),
    ];
  }

  /** One acknowledged write of 5 grants, then a write of `frames`; returns the segment and where that write starts. */
  async function logThenWrite(root: string, frames: Buffer[], pair: Buffer[]): Promise<{ path: string; tornAt: number }> {
    const dir = openDataDir(root);
    const log = new SegmentLog({ dir, files: nodeLogFiles, fsync: "always", segmentBytes: 1 << 20, logger: silentLogger, active: null, lastIndex: 0, onSegmentSealed: () => {} });
    const harness = new PipelineHarness(recover(dir, CONFIG, silentLogger).stateMachine, log);
    await harness.run(...Array.from({ length: 5 }, (_, n) => acquire({ lock: BigInt(n), owner: 1n }, 60_000n)));
    harness.nowMs += 1;
    const answers = await harness.run(...frames);
    expect(answers.every((answer) => answer.status === Status.Ok)).toBe(true);
    await log.close();
    const [segment] = listSegments(dir);
    const bytes = readFileSync(segment!.path);
    const tornAt = (readRecord(bytes, 0) as { end: number }).end;
    // The forged record is there to be found: a whole-file scan meets it inside the second write.
    const forgedAt = bytes.indexOf(pair[0]!.subarray(LENGTH_PREFIX_BYTES + 1, LENGTH_PREFIX_BYTES + 17)); // its request id
    expect(forgedAt).toBeGreaterThan(tornAt);
    expect(readRecord(bytes, forgedAt)).toMatchObject({ kind: "record", header: { place: "first-after-durable" } });
    return { path: segment!.path, tornAt };
  }

  const grants = (count: number) => Array.from({ length: count }, (_, n) => acquire({ lock: 100n + BigInt(n), owner: 2n }, 60_000n));

  it("truncates a torn last write whose first sector was lost, whatever its later sectors hold", async () => {
    const root = tempDir();
    const pair = forgingPair(123_456);
    const { path, tornAt } = await logThenWrite(root, [...grants(100), ...pair], pair);
    const bytes = readFileSync(path);
    bytes.fill(0, tornAt, tornAt + 512);
    writeFileSync(path, bytes);

    expect(recover(openDataDir(root), CONFIG, capturingLogger()).lastIndex).toBe(5);
    expect(statSync(path).size).toBe(tornAt);
  });

  it("truncates a torn last write of which only a prefix reached the disk", async () => {
    const root = tempDir();
    // The forged record claims the very index the second write starts at: still not where it is found.
    const pair = forgingPair(6);
    const { path, tornAt } = await logThenWrite(root, [...pair, ...grants(100)], pair);
    const bytes = readFileSync(path);
    bytes.fill(0, tornAt + 1024);
    writeFileSync(path, bytes);

    expect(recover(openDataDir(root), CONFIG, capturingLogger()).lastIndex).toBe(5);
    expect(statSync(path).size).toBe(tornAt);
  });
});

describe("recovery sizes the tables for the whole log, the newest segment included", () => {
  it("replays a log held in one segment without doubling the request-id table on the way", async () => {
    const root = tempDir();
    // 1,020 entries, all in the first (and newest) segment, on as many locks: few enough that the
    // lock ids' index, which takes its memory from the same place, does not double either.
    await writeLog(root, 340);
    const doublings: number[] = [];
    const memory: TableMemory = { ...FRESH_MEMORY, expect: (bytes) => void doublings.push(bytes) };

    const recovered = recover(openDataDir(root), { ...CONFIG, memory }, silentLogger);

    expect(recovered.lastIndex).toBe(1_020);
    expect(recovered.stateMachine.dedupeEntryCount).toBe(1_020);
    expect(doublings).toEqual([]);
  });

  it("reserves room for one lock record per entry, so the records never double on the way", async () => {
    const root = tempDir();
    await writeLog(root, 700); // 2,100 entries on as many locks: past the table's first size, 1,024
    const { memory, onceSizes } = recordingMemory();

    const recovered = recover(openDataDir(root), { ...CONFIG, memory }, silentLogger);

    expect(recovered.stateMachine.lockRecordCount).toBe(2_100);
    // One records buffer, 40 bytes a record; the lock ids' index still doubles on the way.
    expect(lockRecordBuffers(onceSizes)).toEqual([2_100 * 40]);
  });
});

describe("zeros after the data are unwritten space, however few", () => {
  it("recovers a segment that was continued after a power loss reverted a write that had grown the file", async () => {
    const root = tempDir();
    const [first] = await writeLog(root, 2, 600);
    const dataEnd = writtenEnd(readFileSync(first!));
    // An append that grew the file past its preallocated 600 bytes was never synced: power loss left
    // the larger size with zeros. The next start appends from the end of the data, and the segment
    // fills and rolls 3 bytes short of that size.
    truncateSync(first!, dataEnd + recordBytes(3) + 3);
    const segments = await writeLog(root, 4, 600, 1000);
    expect(segments.length).toBe(2);
    const bytes = readFileSync(first!);
    expect(bytes.length - writtenEnd(bytes)).toBe(3);

    const recovered = recover(openDataDir(root), CONFIG, silentLogger);

    expect(recovered.lastIndex).toBe(18);
    expect(recovered.sealed.map((segment) => segment.path)).toEqual([first]);
  });

  it("reads 1 to 3 zero bytes at the end as the end, and 1 to 3 other bytes as a partial record", () => {
    for (const tail of [1, 2, 3]) {
      expect(readRecord(Buffer.alloc(10 + tail), 10).kind).toBe("end");
      const garbage = Buffer.alloc(10 + tail);
      garbage[10 + tail - 1] = 7;
      expect(readRecord(garbage, 10)).toEqual({ kind: "incomplete", reason: `${tail} bytes, shorter than a record header` });
    }
  });
});

describe("the newest segment's preallocated zeros are checked, not loaded", () => {
  it("reads a young segment into memory only as far as its records", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    expect(bytes.length).toBe(1 << 20);

    const recovered = recover(openDataDir(root), CONFIG, silentLogger);

    expect(recovered.lastIndex).toBe(15);
    expect(recovered.active!.bytes).toBe(writtenEnd(bytes));
    expect(recovered.logBytesRead).toBe(writtenEnd(bytes));
    expect(statSync(segment!).size).toBe(1 << 20);
  });

  it("decides on the whole file when the zeros are not all zeros: stray bytes near its end are a torn tail", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    const goodBytes = writtenEnd(bytes);
    bytes.fill(0x5a, bytes.length - 10);
    writeFileSync(segment!, bytes);
    const logger = capturingLogger();

    const recovered = recover(openDataDir(root), CONFIG, logger);

    expect(recovered.lastIndex).toBe(15);
    expect(statSync(segment!).size).toBe(goodBytes);
    const dropped = bytes.length - goodBytes;
    expect(logger.lines.join("\n")).toContain(`dropped ${dropped} bytes at offset ${goodBytes}, a torn final write (${dropped} bytes of data`);
  });

  it("refuses a valid record beyond a run of zeros: it was acknowledged, so the zeros are damage", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 6);
    const bytes = readFileSync(segment!);
    const recordLength = writtenEnd(bytes) / 6;
    // The fourth and fifth records (each its own acknowledged write) read back as zeros; the sixth is intact.
    bytes.fill(0, recordLength * 3, recordLength * 5);
    writeFileSync(segment!, bytes);

    // The sixth record's first non-zero byte is the low byte of its big-endian length.
    const dataAt = recordLength * 5 + 3;
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
      `is corrupt at offset ${recordLength * 3}: zero length field followed by data at offset ${dataAt}. ` +
        `The write at offset ${recordLength * 5} after it was issued when every earlier record was durable`,
    );
  });

  it("refuses a zeroed length field in the middle, where the records' headers stop but data follows", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 6);
    const bytes = readFileSync(segment!);
    const recordLength = writtenEnd(bytes) / 6;
    bytes.fill(0, recordLength * 2, recordLength * 2 + 4);
    writeFileSync(segment!, bytes);

    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(`is corrupt at offset ${recordLength * 2}: zero length field followed by data`);
  });
});

describe("an intact entry this version does not know refuses the start, wherever it is", () => {
  /** Rewrites the first entry of the `n`th record to command `cmd` and reseals it (a valid checksum). */
  function rewriteCommand(bytes: Buffer, n: number, cmd: number): number {
    let at = 0;
    for (let i = 0; i < n; i++) at = (readRecord(bytes, at) as { end: number }).end;
    const scan = readRecord(bytes, at);
    if (scan.kind !== "record") throw new Error("no record there");
    bytes[scan.entriesAt]! = cmd;
    sealRecord(bytes, at, scan.header);
    return at;
  }

  for (const [where, n] of [["the newest segment's last record", 4], ["a record in the middle", 1]] as const) {
    it(`refuses command 0x82 in ${where}, which a torn write can never leave`, async () => {
      const root = tempDir();
      const [segment] = await writeLog(root, 5);
      const bytes = readFileSync(segment!);
      const at = rewriteCommand(bytes, n, 0x82);
      writeFileSync(segment!, bytes);
      expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
        `is corrupt at offset ${at}: entry ${n * 3 + 1} has command 0x82, which this version of lockd does not know ` +
          "(written by a newer version?). An intact record is never a torn write; refusing to start",
      );
      expect(readFileSync(segment!).equals(bytes)).toBe(true);
    });
  }

  it("still replays every command it writes, the log-only ones included", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 2);
    const bytes = readFileSync(segment!);
    rewriteCommand(bytes, 1, 0x04); // the grant becomes an INSPECT, which the log carries too
    writeFileSync(segment!, bytes);
    const recovered = recover(openDataDir(root), CONFIG, silentLogger);
    expect(recovered.lastIndex).toBe(6);
    expect(recovered.stateMachine.nextFencingToken).toBe(6);
  });
});

describe("after a clean stop, a log that ends early is damage, never a torn write", () => {
  it("refuses a newest segment cut short, which without the record would be truncated as a torn write", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    const recordLength = writtenEnd(bytes) / 5;
    const cut = recordLength * 4 + 20; // inside the last record
    truncateSync(segment!, cut);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger, { cleanStopIndex: 15 })).toThrow(
      `is corrupt at offset ${recordLength * 4}: 20 bytes, shorter than a record header. lockd stopped cleanly at index 15, so no write was left unfinished`,
    );
    expect(statSync(segment!).size).toBe(cut); // nothing truncated
    // The same file after a crash (no record): a torn final write, dropped.
    expect(recover(openDataDir(root), CONFIG, silentLogger).lastIndex).toBe(12);
  });

  it("refuses a log whose newest segment is gone", async () => {
    const root = tempDir();
    const segments = await writeLog(root, 12, 600);
    expect(segments.length).toBeGreaterThan(1);
    const { rmSync } = await import("node:fs");
    rmSync(segments.at(-1)!);
    const end = recover(openDataDir(root), CONFIG, silentLogger).lastIndex;
    expect(end).toBeLessThan(36);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger, { cleanStopIndex: 36 })).toThrow(
      `the log ends at index ${end}, but lockd stopped cleanly at index 36 (${join(root, "clean-stop")}): acknowledged entries are missing`,
    );
  });

  it("drops bytes written after every entry of the clean stop, which lose nothing", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    const goodBytes = writtenEnd(bytes);
    bytes.fill(0xab, goodBytes, goodBytes + 96);
    writeFileSync(segment!, bytes);
    const logger = capturingLogger();
    expect(recover(openDataDir(root), CONFIG, logger, { cleanStopIndex: 15 }).lastIndex).toBe(15);
    expect(statSync(segment!).size).toBe(goodBytes);
    expect(logger.lines.join("\n")).toMatch(
      new RegExp(`dropped \\d+ bytes at offset ${goodBytes}, after the last entry \\(index 15\\) of the clean stop before this start`),
    );
  });

  it("recovers as usual when the log ends where the clean stop said", async () => {
    const root = tempDir();
    await writeLog(root, 5);
    expect(recover(openDataDir(root), CONFIG, silentLogger, { cleanStopIndex: 15 }).lastIndex).toBe(15);
  });

  it("ignores a record the log's headers go past: a start that did not know the record ran after it", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 5);
    const bytes = readFileSync(segment!);
    const recordLength = writtenEnd(bytes) / 5;
    truncateSync(segment!, recordLength * 4 + 20);
    const logger = capturingLogger();
    // The intact records' headers reach index 12, past the stale record's 9.
    expect(recover(openDataDir(root), CONFIG, logger, { cleanStopIndex: 9 }).lastIndex).toBe(12);
    expect(logger.lines.join("\n")).toMatch(/a torn final write/);
  });
});

describe("corruption before the tail refuses to start, naming the file and offset", () => {
  it("refuses a bit flip in an old record of the newest segment", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 6);
    const bytes = readFileSync(segment!);
    bytes[60]! ^= 0x01; // inside the first record's entries
    writeFileSync(segment!, bytes);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(RecoveryError);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(new RegExp(`${segment!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} is corrupt at offset 0: checksum mismatch`));
  });

  it("refuses garbage in the middle: a damaged record followed by good ones", async () => {
    const root = tempDir();
    const [segment] = await writeLog(root, 6);
    const bytes = readFileSync(segment!);
    const recordBytes = writtenEnd(bytes) / 6;
    bytes.fill(0xee, recordBytes * 2, recordBytes * 2 + 10);
    writeFileSync(segment!, bytes);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(`is corrupt at offset ${recordBytes * 2}`);
  });

  it("refuses a damaged record in an older segment even at its end", async () => {
    const root = tempDir();
    const segments = await writeLog(root, 12, 600);
    expect(segments.length).toBeGreaterThan(1);
    const bytes = readFileSync(segments[0]!);
    bytes[writtenEnd(bytes) - 1]! ^= 0xff;
    writeFileSync(segments[0]!, bytes);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(/It is not the newest segment/);
  });

  it("refuses a gap between segments", async () => {
    const root = tempDir();
    const segments = await writeLog(root, 12, 600);
    expect(segments.length).toBeGreaterThan(2);
    const { rmSync } = await import("node:fs");
    rmSync(segments[1]!);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(/log gap/);
  });

  it("says a snapshot is missing when the log starts past index 1 with none", async () => {
    const root = tempDir();
    const segments = await writeLog(root, 12, 600);
    const second = listSegments(openDataDir(root))[1]!;
    const { rmSync } = await import("node:fs");
    rmSync(segments[0]!);
    expect(() => recover(openDataDir(root), CONFIG, silentLogger)).toThrow(
      `log gap: ${second.path} starts at index ${second.firstIndex} but the log so far ends at 0 ` +
        `(there is no snapshot, and one must hold entries 1..${second.firstIndex - 1}: was it deleted?)`,
    );
  });

  it("refuses an unreadable snapshot", async () => {
    const root = tempDir();
    const segments = await writeLog(root, 12, 600);
    const dir = openDataDir(root);
    const sealed = recover(dir, CONFIG, silentLogger).sealed;
    const result = compact({ dir, config: CONFIG, snapshotPath: null, segments: sealed });
    expect(result.lastIndex).toBe(sealed.at(-1)!.lastIndex);
    expect(segments.length).toBeGreaterThan(1);
    const bytes = readFileSync(result.snapshotPath);
    bytes[bytes.length - 10]! ^= 0x10;
    writeFileSync(result.snapshotPath, bytes);
    expect(() => recover(dir, CONFIG, silentLogger)).toThrow(/snapshot .* is unreadable: checksum mismatch/);
  });
});

describe("a clean-up after a snapshot, cut short by a crash", () => {
  /** A log of 36 grants in 600-byte segments, more than two of them sealed. */
  async function sealedLog() {
    const root = tempDir();
    await writeLog(root, 12, 600);
    const dir = openDataDir(root);
    const sealed = recover(dir, CONFIG, silentLogger).sealed;
    expect(sealed.length).toBeGreaterThan(2);
    return { dir, sealed };
  }

  /** Snapshots one after another, the n-th covering the sealed segments before cuts[n]. */
  function snapshotsAt(dir: DataDir, sealed: readonly SealedFile[], cuts: readonly number[]): string[] {
    const paths: string[] = [];
    let from = 0;
    for (const cut of cuts) {
      paths.push(compact({ dir, config: CONFIG, snapshotPath: paths.at(-1) ?? null, segments: sealed.slice(from, cut) }).snapshotPath);
      from = cut;
    }
    return paths;
  }

  it("leaves covered files shorter, which recovery deletes without reading them", async () => {
    const { dir, sealed } = await sealedLog();
    const [older, newer] = snapshotsAt(dir, sealed, [1, sealed.length]);
    // The clean-up shrinks each covered file a step at a time before unlinking it.
    for (const path of [sealed[0]!.path, sealed[1]!.path, older!]) truncateSync(path, Math.floor(statSync(path).size / 2));

    const recovered = recover(dir, CONFIG, silentLogger);

    expect(recovered.snapshotPath).toBe(newer);
    expect(recovered.lastIndex).toBe(36);
    expect(recovered.stateMachine.lockRecordCount).toBe(36);
    expect(recovered.stateMachine.nextFencingToken).toBe(37);
    for (const segment of sealed) expect(existsSync(segment.path)).toBe(false);
    expect(listSnapshots(dir).map((snapshot) => snapshot.path)).toEqual([newer]);
  });

  it("makes the newest snapshot's name durable before deleting anything it covers", async () => {
    // A crash between a compaction's rename and its sync of the directory leaves the rename
    // undurable: deleting what the snapshot covers before syncing could leave, after a power loss,
    // neither the snapshot nor the log it replaced.
    const { dir, sealed } = await sealedLog();
    const [older, newer] = snapshotsAt(dir, sealed, [1, sealed.length]);
    const covered = [older!, ...sealed.map((segment) => segment.path)];
    const sync = vi.mocked(syncDirectory);
    const original = sync.getMockImplementation()!;
    let presentWhenSynced: boolean[] | undefined;
    sync.mockImplementation((path) => {
      if (path === dir.snapshotDir) presentWhenSynced ??= covered.map((file) => existsSync(file));
      original(path);
    });
    try {
      const recovered = recover(dir, CONFIG, silentLogger);
      expect(recovered.snapshotPath).toBe(newer);
    } finally {
      sync.mockImplementation(original);
    }
    expect(presentWhenSynced).toEqual(covered.map(() => true));
    expect(covered.filter((file) => existsSync(file))).toEqual([]);
  });

  it("deletes whole older snapshots too, so repeated crashes do not pile them up", async () => {
    const { dir, sealed } = await sealedLog();
    const snapshots = snapshotsAt(dir, sealed, [1, 2, sealed.length]);

    const recovered = recover(dir, CONFIG, silentLogger);

    expect(recovered.snapshotPath).toBe(snapshots[2]);
    expect(listSnapshots(dir).map((snapshot) => snapshot.path)).toEqual([snapshots[2]]);
    expect(recovered.stateMachine.lockRecordCount).toBe(36);
  });

  it("keeps older snapshots when the newest is unreadable, and refuses to start", async () => {
    const { dir, sealed } = await sealedLog();
    const [older, newer] = snapshotsAt(dir, sealed, [1, sealed.length]);
    const bytes = readFileSync(newer!);
    bytes[bytes.length - 10]! ^= 0x10;
    writeFileSync(newer!, bytes);

    expect(() => recover(dir, CONFIG, silentLogger)).toThrow(RecoveryError);
    expect(listSnapshots(dir).map((snapshot) => snapshot.path)).toEqual([newer, older]);
  });
});

describe("after recovery the logical clock and the fencing counter are at least what they were", () => {
  it("resumes tokens after the last one issued, and time never before the last stamp", async () => {
    const root = tempDir();
    await writeLog(root, 5);
    const dir = openDataDir(root);
    const recovered = recover(dir, CONFIG, silentLogger);
    expect(recovered.stateMachine.nextFencingToken).toBe(16);
    // A wall clock far behind the log: time stands still rather than going back.
    const log = new SegmentLog({ dir, files: nodeLogFiles, fsync: "always", segmentBytes: 1 << 20, logger: silentLogger, active: recovered.active, lastIndex: recovered.lastIndex, onSegmentSealed: () => {} });
    const harness = new PipelineHarness(recovered.stateMachine, log, { nextIndex: recovered.lastIndex + 1, startMs: 5 });
    const [next, old] = await harness.run(acquire({ lock: 999n, owner: 1n }, 1000n), inspect({ lock: 0n, owner: 1n }));
    expect(next!.fencingToken).toBe(16n);
    expect(next!.expiresAt).toBe(BigInt(recovered.stateMachine.logicalNowMs + 1000));
    expect(old!.status).toBe(Status.Ok);
    await log.close();
  });

  it("continues segment naming and indexes after a restart", async () => {
    const root = tempDir();
    await writeLog(root, 3);
    await writeLog(root, 3, 1 << 20, 1000);
    const recovered = recover(openDataDir(root), CONFIG, silentLogger);
    expect(recovered.lastIndex).toBe(18);
    expect(listSegments(openDataDir(root))[0]!.path).toBe(segmentPath(openDataDir(root), 1));
  });
});

describe("a long recovery reports its progress; a short one says nothing", () => {
  it("stays silent at the real threshold, and with a tiny one announces the replay and reports each window", async () => {
    const root = tempDir();
    const batches = 400;
    const segments = await writeLog(root, batches, 65_536);
    expect(segments.length).toBeGreaterThan(1);

    const quiet = capturingLogger();
    recover(openDataDir(root), CONFIG, quiet);
    expect(quiet.lines).toEqual([]);

    const logger = capturingLogger();
    let nowMs = 0;
    const recovered = recover(openDataDir(root), CONFIG, logger, { announcedBytes: 1, now: () => (nowMs += REPLAY_PROGRESS_EVERY_MS) });
    expect(recovered.entriesReplayed).toBe(batches * 3);
    expect(logger.lines[0]).toBe(`recovering ${root}: up to ${batches * 3} log entries to replay`);
    // One window per segment here; the fake clock moves a reporting interval at every reading.
    const progress = logger.lines.slice(1);
    expect(progress).toHaveLength(segments.length);
    expect(progress.at(-1)).toMatch(new RegExp(`^recovery: ${batches * 3} of ${batches * 3} log entries replayed \\(100%\\) after \\d+\\.\\d s$`));
  });
});
