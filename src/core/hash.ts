/**
 * 32-bit mixing for the in-memory tables. The seed keeps a hostile client from predicting which ids
 * collide in the id index; it changes the layout of a table, never an answer.
 */

export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function readWord(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) | 0;
}

/** A seeded hash of a 16-byte id given as four words, as a signed 32-bit value (how typed arrays store it). */
export function hashIdWords(w0: number, w1: number, w2: number, w3: number, seed: number): number {
  let h = seed | 0;
  h = Math.imul(h ^ w0, 0x9e3779b1);
  h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ w1, 0x9e3779b1);
  h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ w2, 0x9e3779b1);
  h = (h << 13) | (h >>> 19);
  h = Math.imul(h ^ w3, 0x9e3779b1);
  h = (h << 13) | (h >>> 19);
  return mix32(h ^ 4) | 0;
}

/**
 * Two independent hashes of `count` words already read (`words[from..from+count)`), each equal to
 * `hashWords` over their bytes with its seed, written to `out[0]` and `out[1]` as signed values.
 */
export function hashWordsTwice(words: Int32Array, from: number, count: number, seed0: number, seed1: number, out: Int32Array): void {
  let h0 = seed0 | 0;
  let h1 = seed1 | 0;
  for (let i = 0; i < count; i++) {
    const word = words[from + i]!;
    h0 = Math.imul(h0 ^ word, 0x9e3779b1);
    h0 = (h0 << 13) | (h0 >>> 19);
    h1 = Math.imul(h1 ^ word, 0x9e3779b1);
    h1 = (h1 << 13) | (h1 >>> 19);
  }
  out[0] = mix32(h0 ^ count);
  out[1] = mix32(h1 ^ count);
}

/** Hash of `words` consecutive big-endian 32-bit words, with a seed. */
export function hashWords(bytes: Uint8Array, at: number, words: number, seed: number): number {
  let h = seed | 0;
  for (let i = 0; i < words; i++) {
    h = Math.imul(h ^ readWord(bytes, at + 4 * i), 0x9e3779b1);
    h = (h << 13) | (h >>> 19);
  }
  return mix32(h ^ words);
}
