/**
 * Replaying a segment through a window must stop exactly where, and why, a replay of the whole file
 * stops, leaving the same state: random logs, damaged in random ways, replayed through random windows
 * against `replayRecords` over the whole file.
 *
 * fast-check prints the seed and path of a failing run; BATON_SEED=<n> replays a whole run.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { StateMachine, type StateMachineConfig } from "../../../src/core/state-machine.js";
import { ENTRY_BYTES, RECORD_HEADER_BYTES, recordBytes, sealRecord } from "../../../src/log/record.js";
import { LENGTH_PREFIX_BYTES } from "../../../src/protocol/index.js";
import { SegmentReader } from "../../../src/storage/segment-reader.js";
import { replayRecords, replaySegment, type ReplayProgress } from "../../../src/storage/segment-replay.js";
import { acquire, release } from "../../support/frames.js";
import { testSeed } from "../../support/seeded-random.js";
import { entryOf } from "../../support/state-machine-driver.js";
import { stateBytes } from "../../support/state-bytes.js";
import { useTempDirs } from "../../support/temp-dir.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 50, expiredRetentionMs: 20, hashSeed: 9 };
const seed = Number(testSeed("windowed segment replay vs whole file")) | 0;
const tempDir = useTempDirs();

interface EntrySpec {
  readonly release: boolean;
  readonly lock: number;
  readonly owner: number;
  readonly ttlMs: number;
}

type Damage =
  | { readonly kind: "none" }
  | { readonly kind: "flip"; readonly where: number; readonly bit: number }
  | { readonly kind: "garbage after the data"; readonly bytes: number }
  | { readonly kind: "zeroed length"; readonly record: number }
  | { readonly kind: "record after the zeros"; readonly record: number }
  | { readonly kind: "out of sequence"; readonly record: number }
  | { readonly kind: "cut short"; readonly bytes: number };

interface Segment {
  readonly records: readonly (readonly EntrySpec[])[];
  readonly zeros: number;
  readonly damage: Damage;
}

/** The segment's bytes (records, then zeros, then the damage) and where its records end undamaged. */
function segmentBytes({ records, zeros, damage }: Segment): { readonly file: Buffer; readonly dataEnd: number; readonly starts: number[] } {
  const dataEnd = records.reduce((sum, entries) => sum + recordBytes(entries.length), 0);
  const file = Buffer.alloc(dataEnd + zeros);
  const starts: number[] = [];
  let at = 0;
  let index = 1;
  let request = 1;
  for (const [r, entries] of records.entries()) {
    starts.push(at);
    for (const [i, entry] of entries.entries()) {
      const ids = { lock: BigInt(entry.lock + 1), owner: BigInt(entry.owner + 1), request: BigInt(request++) };
      const frame = entry.release ? release(ids) : acquire(ids, BigInt(entry.ttlMs));
      entryOf(frame.subarray(LENGTH_PREFIX_BYTES)).copy(file, at + RECORD_HEADER_BYTES + i * ENTRY_BYTES);
    }
    const firstIndex = damage.kind === "out of sequence" && damage.record === r ? index + 3 : index;
    at = sealRecord(file, at, { term: 1, firstIndex, stampMs: 1000 + r * 7, count: entries.length, place: "first-after-durable" });
    index += entries.length;
  }
  switch (damage.kind) {
    case "none":
    case "out of sequence":
      return { file, dataEnd, starts };
    case "flip": {
      const where = Math.floor(damage.where * file.length);
      file[where]! ^= 1 << damage.bit;
      return { file, dataEnd, starts };
    }
    case "garbage after the data":
      file.fill(0x5a, dataEnd, Math.min(file.length, dataEnd + damage.bytes));
      return { file, dataEnd, starts };
    case "zeroed length":
      file.fill(0, starts[damage.record % starts.length]!, starts[damage.record % starts.length]! + 4);
      return { file, dataEnd, starts };
    case "record after the zeros": {
      const r = damage.record % starts.length;
      const end = starts[r + 1] ?? dataEnd;
      return { file: Buffer.concat([file, file.subarray(starts[r]!, end)]), dataEnd, starts };
    }
    case "cut short":
      return { file: file.subarray(0, Math.max(0, dataEnd - damage.bytes)), dataEnd, starts };
  }
}

const entryArb: fc.Arbitrary<EntrySpec> = fc.record({
  release: fc.boolean(),
  lock: fc.integer({ min: 0, max: 4 }),
  owner: fc.integer({ min: 0, max: 2 }),
  ttlMs: fc.integer({ min: 1, max: 60 }),
});

const damageArb: fc.Arbitrary<Damage> = fc.oneof(
  fc.constant({ kind: "none" as const }),
  fc.record({ kind: fc.constant("flip" as const), where: fc.double({ min: 0, max: 0.999, noNaN: true }), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("garbage after the data" as const), bytes: fc.integer({ min: 1, max: 120 }) }),
  fc.record({ kind: fc.constant("zeroed length" as const), record: fc.nat() }),
  fc.record({ kind: fc.constant("record after the zeros" as const), record: fc.nat() }),
  fc.record({ kind: fc.constant("out of sequence" as const), record: fc.nat() }),
  fc.record({ kind: fc.constant("cut short" as const), bytes: fc.integer({ min: 1, max: 200 }) }),
);

const segmentArb: fc.Arbitrary<Segment> = fc.record({
  records: fc.array(fc.array(entryArb, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 }),
  zeros: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 4, max: 600 })),
  damage: damageArb,
});

/** Where the caller says the records end: nowhere, where they really end, or anywhere in the file. */
type RecordsEndHint = { readonly kind: "none" } | { readonly kind: "data end" } | { readonly kind: "anywhere"; readonly fraction: number };
const hintArb: fc.Arbitrary<RecordsEndHint> = fc.oneof(
  fc.constant({ kind: "none" as const }),
  fc.constant({ kind: "data end" as const }),
  fc.record({ kind: fc.constant("anywhere" as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
);

function freshProgress(): ReplayProgress {
  return { snapshotIndex: 0, lastIndex: 0, lastTerm: 0, entries: 0 };
}

describe("a segment replayed through a window stops where the whole file's replay stops", () => {
  it("with the same offset, reason and state, whatever the window, the hint and the damage", () => {
    const dir = tempDir();
    let run = 0;
    fc.assert(
      fc.property(segmentArb, fc.integer({ min: 1, max: 700 }), hintArb, (segment, windowBytes, hint) => {
        const { file, dataEnd } = segmentBytes(segment);
        const path = join(dir, `segment-${run++}`);
        writeFileSync(path, file);

        const wholeMachine = new StateMachine(CONFIG);
        const wholeProgress = freshProgress();
        const whole = replayRecords(file, wholeMachine, wholeProgress);

        const machine = new StateMachine(CONFIG);
        const progress = freshProgress();
        const recordsEnd = hint.kind === "none" ? undefined : hint.kind === "data end" ? Math.min(dataEnd, file.length) : Math.floor(hint.fraction * file.length);
        const stop = replaySegment(new SegmentReader(), path, machine, progress, recordsEnd === undefined ? { windowBytes } : { windowBytes, recordsEnd });

        expect(stop.end).toBe(whole.end);
        expect(stop.clean).toBe(whole.damage === null);
        if (!stop.clean) {
          expect(stop.damage).toBe(whole.damage);
          expect(stop.intact).toBe(whole.intact);
          expect(stop.file.equals(file)).toBe(true);
        }
        expect(progress).toEqual(wholeProgress);
        expect(stateBytes(machine)).toBe(stateBytes(wholeMachine));
      }),
      { seed, numRuns: 400 },
    );
  });
});

describe("a clean segment is never held in memory whole", () => {
  /** A clean segment of `records` records of `entries` entries each, then `zeros` zero bytes. */
  function cleanSegment(records: number, entries: number, zeros: number): { readonly path: string; readonly file: Buffer } {
    const spec = Array.from({ length: entries }, (_, i) => ({ release: false, lock: i, owner: 0, ttlMs: 10 }));
    const { file } = segmentBytes({ records: Array.from({ length: records }, () => spec), zeros, damage: { kind: "none" } });
    const path = join(tempDir(), "segment");
    writeFileSync(path, file);
    return { path, file };
  }

  it("reads it through a window no larger than asked, each byte about once", () => {
    const { path, file } = cleanSegment(40, 3, 5000);
    const record = recordBytes(3);
    const windowBytes = 2 * record + 10; // records straddle the window's edge
    const reader = new SegmentReader();
    const progress = freshProgress();

    const stop = replaySegment(reader, path, new StateMachine(CONFIG), progress, { windowBytes });

    expect(stop).toEqual({ clean: true, end: 40 * record });
    expect(progress.lastIndex).toBe(120);
    expect(reader.bufferBytes).toBe(windowBytes);
    // Each window after the first starts at the record the last one cut: at most a record read twice per window.
    expect(reader.bytesRead).toBeGreaterThanOrEqual(40 * record);
    expect(reader.bytesRead).toBeLessThanOrEqual(file.length + Math.ceil(file.length / (windowBytes - record)) * record);
  });

  it("gives a record longer than the window a window of its own length", () => {
    const { path } = cleanSegment(4, 20, 100);
    const record = recordBytes(20);
    const reader = new SegmentReader();
    const progress = freshProgress();

    const stop = replaySegment(reader, path, new StateMachine(CONFIG), progress, { windowBytes: 100 });

    expect(stop).toEqual({ clean: true, end: 4 * record });
    expect(progress.lastIndex).toBe(80);
    expect(reader.bufferBytes).toBe(record);
  });

  it("reads the whole file when it is damaged, to decide there", () => {
    const { path, file } = cleanSegment(10, 3, 200);
    const damaged = Buffer.from(file);
    damaged[recordBytes(3) * 6 + 50]! ^= 0x10;
    writeFileSync(path, damaged);
    const reader = new SegmentReader();

    const stop = replaySegment(reader, path, new StateMachine(CONFIG), freshProgress(), { windowBytes: 300 });

    expect(stop.clean).toBe(false);
    expect(stop.end).toBe(recordBytes(3) * 6);
    expect(reader.bufferBytes).toBe(readFileSync(path).length);
  });
});
