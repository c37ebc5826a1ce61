import { describe, expect, it } from "vitest";
import { LockTable, RECORD_ROOM_MAX } from "../../../src/core/lock-table.js";
import { IdIndex } from "../../../src/core/id-index.js";
import type { TableMemory } from "../../../src/core/table-memory.js";
import { lockRecordBuffers, recordingMemory } from "../../support/recording-memory.js";
import { seededRandom } from "../../support/seeded-random.js";
import { u128 } from "../../support/frames.js";

const OWNER = u128(77n);

/** Drains the table in expiry order through earliest()/remove(). */
function drainExpiries(table: LockTable): number[] {
  const out: number[] = [];
  for (let slot = table.earliest(); slot >= 0; slot = table.earliest()) {
    out.push(table.expiresAtOf(slot));
    table.remove(slot);
  }
  return out;
}

describe("lock records are found by lock id and handed out in expiry order", () => {
  it("matches a model through 30,000 seeded inserts, renewals and removals", () => {
    const random = seededRandom("lock-table operations");
    const table = new LockTable(12345);
    const model = new Map<bigint, { expires: number; token: number }>();
    for (let n = 0; n < 30_000; n++) {
      const id = BigInt(random.int(0, 3000));
      const key = u128(id);
      const slot = table.find(key, 0);
      expect(slot >= 0, `seed ${random.seed} step ${n}`).toBe(model.has(id));
      const action = random.int(0, 9);
      if (slot < 0) {
        const expires = random.int(0, 100_000);
        table.insert(key, 0, OWNER, 0, n, expires);
        model.set(id, { expires, token: n });
      } else if (action < 6) {
        const expires = random.int(0, 100_000);
        table.setExpiry(slot, expires);
        model.get(id)!.expires = expires;
      } else {
        expect(table.tokenOf(slot)).toBe(model.get(id)!.token);
        table.remove(slot);
        model.delete(id);
      }
      if (n % 1000 === 0 && model.size > 0) {
        const min = Math.min(...[...model.values()].map((v) => v.expires));
        expect(table.expiresAtOf(table.earliest())).toBe(min);
      }
    }
    expect(table.size).toBe(model.size);
    expect(drainExpiries(table)).toEqual([...model.values()].map((v) => v.expires).sort((a, b) => a - b));
    expect(table.size).toBe(0);
  });

  it("compares owners as bytes and keeps every field across growth", () => {
    const table = new LockTable(1);
    for (let n = 0; n < 5000; n++) table.insert(u128(BigInt(n)), 0, u128(BigInt(n % 7)), 0, n + 1, 1000 + n);
    for (let n = 0; n < 5000; n++) {
      const slot = table.find(u128(BigInt(n)), 0);
      expect(table.ownerMatches(slot, u128(BigInt(n % 7)), 0)).toBe(true);
      expect(table.ownerMatches(slot, u128(BigInt((n + 1) % 7)), 0)).toBe(false);
      expect(table.tokenOf(slot)).toBe(n + 1);
    }
  });
});

describe("record room reserved up front (a replay's)", () => {
  it("is filled without a second records buffer, while the index grows from its own size", () => {
    const { memory, onceSizes } = recordingMemory();
    const table = new LockTable(3, 16, memory, 5000);
    for (let n = 0; n < 5000; n++) table.insert(u128(BigInt(n)), 0, OWNER, 0, n + 1, 1000 + n);
    expect(lockRecordBuffers(onceSizes)).toEqual([5000 * 40]);
    expect(onceSizes.length).toBeGreaterThan(1); // the index, sized for 16, doubled meanwhile
    table.insert(u128(5000n), 0, OWNER, 0, 5001, 6000);
    expect(lockRecordBuffers(onceSizes)).toEqual([5000 * 40, 10_000 * 40]);
    for (let n = 0; n <= 5000; n++) expect(table.tokenOf(table.find(u128(BigInt(n)), 0))).toBe(n + 1);
    expect(drainExpiries(table)).toEqual(Array.from({ length: 5001 }, (_, n) => 1000 + n));
  });

  it("is capped: a huge replay reserves RECORD_ROOM_MAX records, no more", () => {
    const { memory, onceSizes } = recordingMemory();
    new LockTable(3, 16, memory, 1e12);
    expect(lockRecordBuffers(onceSizes)).toEqual([RECORD_ROOM_MAX * 40]);
  });

  it("is given up, not fatal, where the address space is refused", () => {
    const { memory: recording, onceSizes } = recordingMemory();
    const refusing: TableMemory = {
      ...recording,
      takeOnce: (bytes) => {
        if (bytes > 1_000_000) throw new RangeError("Array buffer allocation failed");
        return recording.takeOnce(bytes);
      },
    };
    const table = new LockTable(3, 1024, refusing, 1_000_000);
    for (let n = 0; n < 3000; n++) table.insert(u128(BigInt(n)), 0, OWNER, 0, n + 1, 1000 + n);
    expect(lockRecordBuffers(onceSizes)).toEqual([1024 * 40, 2048 * 40, 4096 * 40]);
    for (let n = 0; n < 3000; n++) expect(table.tokenOf(table.find(u128(BigInt(n)), 0))).toBe(n + 1);
  });
});

describe("the id index survives deletion inside long probe runs", () => {
  it("finds every remaining id after deleting half of 20,000 (linear probing, backward shift)", () => {
    const random = seededRandom("id-index deletes");
    const capacity = 20_000;
    const index = new IdIndex(random.int(0, 2 ** 30), capacity);
    const ids = Array.from({ length: capacity }, (_, n) => u128(BigInt(n) * 0x9e3779b97f4a7c15n));
    ids.forEach((id, slot) => index.add(slot, id, 0));
    const deleted = new Set<number>();
    while (deleted.size < capacity / 2) {
      const slot = random.int(0, capacity - 1);
      if (deleted.has(slot)) continue;
      index.delete(slot);
      deleted.add(slot);
    }
    ids.forEach((id, slot) => expect(index.find(id, 0)).toBe(deleted.has(slot) ? -1 : slot));
  });
});

describe("the id index grows a few buckets at a time, never losing an entry", () => {
  it("finds exactly the live ids through 200,000 seeded adds and deletes from a 16-bucket start", () => {
    const random = seededRandom("id-index growth");
    const index = new IdIndex(random.int(0, 2 ** 30), 16);
    const live = new Map<number, Buffer>(); // slot -> id
    const liveSlots: number[] = [];
    let nextSlot = 0;
    for (let step = 0; step < 200_000; step++) {
      if (liveSlots.length > 0 && random.next() < 0.3) {
        const at = random.int(0, liveSlots.length - 1);
        const slot = liveSlots[at]!;
        liveSlots[at] = liveSlots[liveSlots.length - 1]!;
        liveSlots.pop();
        index.delete(slot);
        live.delete(slot);
      } else {
        const id = random.bytes(16);
        index.add(nextSlot, id, 0);
        live.set(nextSlot, id);
        liveSlots.push(nextSlot++);
      }
      // Every step, also while a doubling is half done: one live id is found, one unknown id is not.
      if (liveSlots.length > 0) {
        const probe = liveSlots[random.int(0, liveSlots.length - 1)]!;
        if (index.find(live.get(probe)!, 0) !== probe) throw new Error(`seed ${random.seed}: slot ${probe} not found at step ${step}`);
      }
      if (index.find(random.bytes(16), 0) !== -1) throw new Error(`seed ${random.seed}: an unknown id was found at step ${step}`);
      if (step % 20_000 === 0 || step === 199_999) {
        for (const [slot, id] of live) if (index.find(id, 0) !== slot) throw new Error(`seed ${random.seed}: slot ${slot} lost at step ${step}`);
      }
    }
    expect(live.size).toBeGreaterThan(50_000);
    expect(index.find(Buffer.alloc(16, 0xee), 0)).toBe(-1);
  });
});
