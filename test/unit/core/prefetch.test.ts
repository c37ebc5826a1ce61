/**
 * StateMachine.prefetch only warms caches: a machine that is told to look ahead before every burst
 * of commands must give byte-identical answers and end in a byte-identical state (snapshot) to one
 * that is not, including while its tables double and entries sit in the old table. The look-ahead
 * scanner (wholeFrameStarts) must stop cleanly at partial, short and garbage frames.
 */
import { describe, expect, it } from "vitest";
import { encodeSnapshot } from "../../../src/core/snapshot-codec.js";
import { PREFETCH_MAX } from "../../../src/core/state-machine.js";
import { Command, encodeRequest, LENGTH_PREFIX_BYTES, wholeFrameStarts } from "../../../src/protocol/index.js";
import { Driver } from "../../support/state-machine-driver.js";
import { seededRandom, type SeededRandom } from "../../support/seeded-random.js";
import { u128 } from "../../support/frames.js";

function randomFrame(random: SeededRandom): Buffer {
  const command = random.pick([Command.Acquire, Command.Acquire, Command.Renew, Command.Release, Command.Inspect]);
  return encodeRequest({
    command,
    // A small request id space: retries (dedupe hits) and reuses with other parameters happen.
    requestId: u128(BigInt(random.int(1, 40_000))),
    lockId: u128(BigInt(random.int(0, 3_000))),
    ownerId: u128(BigInt(random.int(0, 3))),
    ttlMs: BigInt(random.int(1, 2_000)),
    longForm: random.next() < 0.2,
  });
}

describe("prefetch changes nothing but timing", () => {
  it("gives the same answers and the same snapshot as a machine that never prefetches", () => {
    const random = seededRandom("prefetch is invisible");
    // Tiny initial tables: the run grows both through several doublings.
    const config = { dedupeWindowMs: 5_000, expiredRetentionMs: 1_000, initialCapacity: { locks: 16, dedupeEntries: 16 } };
    const plain = new Driver(config);
    const looking = new Driver(config);
    const starts = new Int32Array(PREFETCH_MAX);
    let stampMs = 1_000;
    let commands = 0;
    while (commands < 60_000) {
      const burst = Array.from({ length: random.int(1, 300) }, () => randomFrame(random));
      // Garbage after the burst sometimes: the scanner must stop at it, not misread the rest.
      const chunk = Buffer.concat(random.next() < 0.2 ? [...burst, random.bytes(random.int(1, 80))] : burst);
      const count = wholeFrameStarts(chunk, starts);
      expect(count).toBe(Math.min(burst.length, PREFETCH_MAX));
      // The stamp it is told is only a hint of what is due: sometimes ahead of the real ones.
      looking.sm.prefetch(chunk, starts, count, stampMs + random.int(0, 400));
      for (const frame of burst) {
        stampMs += random.int(0, 3);
        const expected = plain.send(frame, stampMs).reply.toString("hex");
        const actual = looking.send(frame, stampMs).reply.toString("hex");
        if (actual !== expected) throw new Error(`seed ${random.seed}: command ${commands} answered ${actual}, expected ${expected}`);
        commands++;
      }
    }
    const position = { lastIndex: commands, lastTerm: 1 };
    expect(plain.sm.lockRecordCount).toBeGreaterThan(100);
    expect(plain.sm.dedupeEntryCount).toBeLessThan(commands / 2); // the window passed: entries were pruned
    expect(encodeSnapshot(looking.sm, position).equals(encodeSnapshot(plain.sm, position))).toBe(true);
  });
});

describe("wholeFrameStarts looks ahead over whole frames only", () => {
  const frame = (length: number): Buffer => {
    const bytes = Buffer.alloc(LENGTH_PREFIX_BYTES + length, 0x11);
    bytes.writeUInt32BE(length, 0);
    return bytes;
  };

  it("finds the body of every whole frame, in order", () => {
    const starts = new Int32Array(8);
    expect(wholeFrameStarts(Buffer.concat([frame(57), frame(49), frame(57)]), starts)).toBe(3);
    expect([...starts.subarray(0, 3)]).toEqual([4, 65, 118]);
  });

  it("stops at a partial frame, a frame shorter than a request body, an oversized length and an empty chunk", () => {
    const starts = new Int32Array(8);
    expect(wholeFrameStarts(Buffer.concat([frame(57), frame(57).subarray(0, 30)]), starts)).toBe(1);
    expect(wholeFrameStarts(Buffer.concat([frame(57), frame(3), frame(57)]), starts)).toBe(1);
    expect(wholeFrameStarts(Buffer.concat([frame(57), Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(60)]), starts)).toBe(1);
    expect(wholeFrameStarts(Buffer.alloc(0), starts)).toBe(0);
  });

  it("never writes more starts than there is room for", () => {
    const starts = new Int32Array(2);
    expect(wholeFrameStarts(Buffer.concat([frame(57), frame(57), frame(57)]), starts)).toBe(2);
  });

  it("survives random bytes", () => {
    const random = seededRandom("wholeFrameStarts on garbage");
    const starts = new Int32Array(PREFETCH_MAX);
    for (let i = 0; i < 2_000; i++) {
      const chunk = random.bytes(random.int(0, 600));
      if (random.next() < 0.5 && chunk.length >= 4) chunk.writeUInt32BE(random.int(0, 120), 0);
      const count = wholeFrameStarts(chunk, starts);
      for (let n = 0; n < count; n++) expect(starts[n]! + 49).toBeLessThanOrEqual(chunk.length);
    }
  });
});
