import { describe, expect, it } from "vitest";
import { readIdWords } from "../../../src/core/command-words.js";
import { DedupeTable } from "../../../src/core/dedupe-table.js";
import { hashWords } from "../../../src/core/hash.js";
import { readU64 } from "../../../src/protocol/u64.js";
import { seededRandom } from "../../support/seeded-random.js";

const WINDOW_MS = 1000;

/** The table as the state machine uses it: a live lookup, and an insert that unindexes an expired twin. */
class TestTable extends DedupeTable {
  find(bytes: Uint8Array, at: number, nowMs: number, windowMs: number): number {
    const slot = this.lookup(bytes, at);
    return slot >= 0 && this.isLive(slot, nowMs, windowMs) ? slot : -1;
  }

  record(id: Uint8Array, idAt: number, f0: number, f1: number, answer: Uint8Array, answerAt: number, nowMs: number): void {
    const status = answer[answerAt]!;
    const words = new Int32Array(4);
    readIdWords(id, idAt, words, 0);
    const hash = this.hashOf(words, 0);
    this.insertWords(words, 0, hash, this.lookupWords(words, 0, hash), f0, f1, status, readU64(answer, answerAt + 1), readU64(answer, answerAt + 9), nowMs);
  }
}

function idOf(n: number): Buffer {
  const id = Buffer.alloc(16);
  id.writeUInt32BE(n >>> 0, 12);
  id.writeUInt32BE(0xd00d, 0);
  return id;
}

/** An answer whose bytes identify `n`, so a wrong slot shows up as a wrong answer. */
function answerOf(n: number): Buffer {
  const answer = Buffer.alloc(17);
  answer[0] = n % 6;
  answer.writeUInt32BE(n >>> 0, 5);
  answer.writeUInt32BE((n * 7) >>> 0, 13);
  return answer;
}

function lookup(table: TestTable, id: Buffer, nowMs: number): Buffer | null {
  const slot = table.find(id, 0, nowMs, WINDOW_MS);
  if (slot < 0) return null;
  const out = Buffer.alloc(17);
  table.copyAnswer(slot, out, 0);
  return out;
}

describe("a dedupe entry keeps the parameter fingerprint and the 17-byte answer", () => {
  it("matches fingerprints of any 32-bit value, the top bit set included", () => {
    const table = new TestTable(1);
    const cases: [number, number][] = [[0x80000001, 5], [5, 0xffffffff], [0xdeadbeef, 0xcafebabe], [0, 0], [0x7fffffff, 1]];
    for (const [n, [f0, f1]] of cases.entries()) table.record(idOf(n + 1), 0, f0, f1, answerOf(n), 0, 10);
    for (const [n, [f0, f1]] of cases.entries()) {
      const slot = table.find(idOf(n + 1), 0, 10, WINDOW_MS);
      expect(slot).toBeGreaterThanOrEqual(0);
      expect(table.matches(slot, f0, f1)).toBe(true);
      expect(table.matches(slot, f0 ^ 1, f1)).toBe(false);
      expect(table.matches(slot, f0, (f1 ^ 0x80000000) >>> 0)).toBe(false);
    }
  });

  it("gives back the byte-identical answer at any offset", () => {
    const table = new TestTable(7);
    const carrier = Buffer.concat([Buffer.alloc(3, 0xaa), answerOf(42)]);
    table.record(Buffer.concat([Buffer.alloc(5), idOf(9)]), 5, 1, 2, carrier, 3, 100);
    const out = Buffer.alloc(20, 0xcc);
    table.copyAnswer(table.find(idOf(9), 0, 100, WINDOW_MS), out, 2);
    expect(out.subarray(2, 19)).toEqual(answerOf(42));
    expect(out[1]).toBe(0xcc);
    expect(out[19]).toBe(0xcc);
    expect(table.answerStatus(table.find(idOf(9), 0, 100, WINDOW_MS))).toBe(answerOf(42)[0]);
  });
});

describe("a dedupe entry lives the window from when it was first processed", () => {
  it("is found until firstSeen + window, not at it", () => {
    const table = new TestTable(3);
    table.record(idOf(1), 0, 1, 1, answerOf(1), 0, 500);
    expect(lookup(table, idOf(1), 500)).toEqual(answerOf(1));
    expect(lookup(table, idOf(1), 500 + WINDOW_MS - 1)).toEqual(answerOf(1));
    expect(lookup(table, idOf(1), 500 + WINDOW_MS)).toBeNull();
    expect(lookup(table, idOf(2), 500)).toBeNull();
  });

  it("an id whose old entry expired but was not pruned yet finds only its new entry", () => {
    const table = new TestTable(3);
    table.record(idOf(1), 0, 1, 1, answerOf(1), 0, 0);
    table.record(idOf(1), 0, 2, 2, answerOf(2), 0, WINDOW_MS);
    expect(table.size).toBe(2);
    const slot = table.find(idOf(1), 0, WINDOW_MS, WINDOW_MS);
    expect(table.matches(slot, 2, 2)).toBe(true);
    expect(lookup(table, idOf(1), WINDOW_MS)).toEqual(answerOf(2));
  });
});

describe("pruning drops expired entries in time order, within a budget", () => {
  it("drops oldest first and stops at the first live entry", () => {
    const table = new TestTable(5);
    for (let n = 0; n < 10; n++) table.record(idOf(n), 0, n, n, answerOf(n), 0, n * 10);
    expect(table.prune(WINDOW_MS + 45, WINDOW_MS, 3)).toBe(3); // 0, 10, 20 have expired
    expect(table.size).toBe(7);
    expect(table.prune(WINDOW_MS + 45, WINDOW_MS, Infinity)).toBe(2); // 30, 40; 50 is live
    expect(table.size).toBe(5);
    for (let n = 0; n < 5; n++) expect(table.find(idOf(n), 0, 0, 1e9)).toBe(-1);
    for (let n = 5; n < 10; n++) expect(lookup(table, idOf(n), WINDOW_MS + 45)).toEqual(answerOf(n));
    expect(table.prune(WINDOW_MS + 45, WINDOW_MS, Infinity)).toBe(0);
  });
});

describe("the table grows across many entries and deletes correctly from colliding probe runs", () => {
  it("finds every one of 50,000 entries after growing from 16 slots", () => {
    const table = new TestTable(11, 16);
    const count = 50_000;
    for (let n = 0; n < count; n++) table.record(idOf(n), 0, n, ~n, answerOf(n), 0, n);
    expect(table.size).toBe(count);
    const lost: number[] = [];
    for (let n = 0; n < count; n++) {
      const slot = table.find(idOf(n), 0, count, 1e9);
      if (slot < 0 || !table.matches(slot, n, ~n)) lost.push(n);
    }
    expect(lost).toEqual([]);
    const firstSeen: number[] = [];
    const visited = table.forEachEntry((_ids, _idAt, _f0, _f1, _status, _token, _expires, firstSeenMs) => firstSeen.push(firstSeenMs));
    expect(visited).toBe(count);
    expect(firstSeen).toEqual(Array.from({ length: count }, (_, n) => n)); // oldest first
  });

  it("keeps every live entry reachable when entries sharing one home slot are deleted", () => {
    const seed = 0x5eed;
    const table = new TestTable(seed, 64); // index of 128 slots until it grows
    const home = (id: Buffer) => hashWords(id, 0, 4, seed) & 127;
    const colliding: Buffer[] = [];
    for (let n = 0; colliding.length < 40; n++) if (home(idOf(n)) === 17) colliding.push(idOf(n));
    const others: Buffer[] = [];
    for (let n = 1_000_000; others.length < 20; n++) if (home(idOf(n)) === 18 || home(idOf(n)) === 16) others.push(idOf(n));
    const all = [...colliding.slice(0, 20), ...others, ...colliding.slice(20)];
    all.forEach((id, t) => table.record(id, 0, t, t, answerOf(t), 0, t));
    for (let dropped = 1; dropped <= all.length; dropped++) {
      table.prune(dropped - 1 + WINDOW_MS, WINDOW_MS, 1);
      all.forEach((id, t) => {
        const found = lookup(table, id, dropped - 1 + WINDOW_MS - 1);
        if (t < dropped) expect(table.find(id, 0, 0, 1e9)).toBe(-1);
        else expect(found).toEqual(answerOf(t));
      });
    }
    expect(table.size).toBe(0);
  });

  it("a rolling window of random ids over 100,000 inserts matches a Map (seeded)", () => {
    const random = seededRandom("dedupe-table rolling window");
    const table = new TestTable(random.int(0, 0x7fffffff), 16);
    const model = new Map<string, { t: number; n: number }>();
    const order: { key: string; t: number }[] = [];
    let head = 0;
    for (let n = 0; n < 100_000; n++) {
      const t = Math.floor(n / 8);
      const id = random.bytes(16);
      const key = id.toString("hex");
      if (model.has(key) && model.get(key)!.t + WINDOW_MS > t) continue;
      table.record(id, 0, n, n, answerOf(n), 0, t);
      model.set(key, { t, n });
      order.push({ key, t });
      const dropped = table.prune(t, WINDOW_MS, 4);
      for (let d = 0; d < dropped; d++) {
        const old = order[head++]!;
        if (old.t + WINDOW_MS > t) throw new Error(`seed ${random.seed}: pruned a live entry`);
        if (model.get(old.key)?.t === old.t) model.delete(old.key);
      }
      if (n % 4999 === 0) {
        for (const [k, v] of model) {
          const slot = table.find(Buffer.from(k, "hex"), 0, t, WINDOW_MS);
          if (v.t + WINDOW_MS > t && !(slot >= 0 && table.matches(slot, v.n, v.n))) throw new Error(`seed ${random.seed}: lost ${k}`);
        }
      }
    }
    expect(table.size).toBe(order.length - head);
  });
});
