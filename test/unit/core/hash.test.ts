/**
 * The table hashes are persisted only through fingerprints (in snapshots), so the one-pass and the
 * word-at-a-time forms must agree bit for bit, and the id hash must match its general form.
 */
import { describe, expect, it } from "vitest";
import { hashIdWords, hashWords, hashWordsTwice, readWord } from "../../../src/core/hash.js";
import { seededRandom } from "../../support/seeded-random.js";

describe("hash forms agree", () => {
  it("hashWordsTwice over words read from bytes gives hashWords over the bytes, under each seed", () => {
    const random = seededRandom("hashWordsTwice");
    const out = new Int32Array(2);
    const words = new Int32Array(12);
    for (let n = 0; n < 2_000; n++) {
      const bytes = random.bytes(64);
      const at = random.int(0, 24);
      const seed0 = random.int(0, 0x7fffffff) ^ random.int(0, 3);
      const seed1 = random.int(0, 0x7fffffff);
      for (let k = 0; k < 10; k++) words[2 + k] = readWord(bytes, at + 4 * k);
      hashWordsTwice(words, 2, 10, seed0, seed1, out);
      expect(out[0]).toBe(hashWords(bytes, at, 10, seed0) | 0);
      expect(out[1]).toBe(hashWords(bytes, at, 10, seed1) | 0);
    }
  });

  it("hashIdWords is hashWords over the id's four words", () => {
    const random = seededRandom("hashIdWords");
    for (let n = 0; n < 2_000; n++) {
      const id = random.bytes(16);
      const seed = random.int(0, 0x7fffffff);
      const words = [0, 4, 8, 12].map((at) => readWord(id, at)) as [number, number, number, number];
      expect(hashIdWords(...words, seed)).toBe(hashWords(id, 0, 4, seed) | 0);
    }
  });
});
