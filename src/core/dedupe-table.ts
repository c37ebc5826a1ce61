/**
 * The idempotency table: request id -> (parameter fingerprint, the 17-byte answer, when first seen).
 *
 * It is the memory and speed hot spot (millions of entries at full speed), so entries live in
 * preallocated typed arrays (≈ 53 bytes each plus 8 bytes of index) instead of objects:
 *   - a ring in insertion order; logical time never goes backwards, so the oldest entry is always at
 *     the head and pruning is a pop from the front;
 *   - an open-addressing index (linear probing, load <= 1/2, backward-shift deletion) from the id's
 *     hash to the ring slot.
 * Both grow by doubling; the caller bounds the number of entries (max dedupe entries).
 */
import { RESPONSE_BYTES } from "../protocol/wire.js";
import { hashWords, readWord } from "./hash.js";

const ID_WORDS = 4;
const INITIAL_CAPACITY = 1 << 12;

export class DedupeTable {
  private capacity: number;
  private mask: number;
  private ids: Int32Array;
  private hashes: Int32Array;
  private fingerprints: Int32Array;
  private answers: Uint8Array;
  private firstSeenMs: Float64Array;
  /** Sequence numbers of the oldest entry and of the next one; slot = seq & mask. */
  private head = 0;
  private tail = 0;
  /** Index slots hold ring slot + 1; 0 marks an empty index slot. */
  private index: Int32Array;
  private indexMask: number;

  constructor(private readonly seed: number, initialCapacity = INITIAL_CAPACITY) {
    this.capacity = ceilPowerOfTwo(Math.max(16, initialCapacity));
    this.mask = this.capacity - 1;
    this.ids = new Int32Array(this.capacity * ID_WORDS);
    this.hashes = new Int32Array(this.capacity);
    this.fingerprints = new Int32Array(this.capacity * 2);
    this.answers = new Uint8Array(this.capacity * RESPONSE_BYTES);
    this.firstSeenMs = new Float64Array(this.capacity);
    this.index = new Int32Array(this.capacity * 2);
    this.indexMask = this.index.length - 1;
  }

  get size(): number {
    return this.tail - this.head;
  }

  /**
   * The ring slot of the entry for the request id at `bytes[at..at+16]` that is still inside its
   * window at `nowMs`, or -1. An id may also have an older, expired entry not yet pruned: skip it.
   */
  find(bytes: Uint8Array, at: number, nowMs: number, windowMs: number): number {
    const w0 = readWord(bytes, at);
    const w1 = readWord(bytes, at + 4);
    const w2 = readWord(bytes, at + 8);
    const w3 = readWord(bytes, at + 12);
    const ids = this.ids;
    let i = hashWords(bytes, at, ID_WORDS, this.seed) & this.indexMask;
    for (;;) {
      const stored = this.index[i]!;
      if (stored === 0) return -1;
      const slot = stored - 1;
      const base = slot * ID_WORDS;
      if (ids[base] === w0 && ids[base + 1] === w1 && ids[base + 2] === w2 && ids[base + 3] === w3) {
        if (this.firstSeenMs[slot]! + windowMs > nowMs) return slot;
      }
      i = (i + 1) & this.indexMask;
    }
  }

  /** Fingerprints are 32-bit hashes; they are stored signed, so compare them as int32 (`| 0`). */
  matches(slot: number, fingerprint0: number, fingerprint1: number): boolean {
    return this.fingerprints[slot * 2] === (fingerprint0 | 0) && this.fingerprints[slot * 2 + 1] === (fingerprint1 | 0);
  }

  copyAnswer(slot: number, out: Uint8Array, outAt: number): void {
    const from = slot * RESPONSE_BYTES;
    out.set(this.answers.subarray(from, from + RESPONSE_BYTES), outAt);
  }

  answerStatus(slot: number): number {
    return this.answers[slot * RESPONSE_BYTES]!;
  }

  /** Records a decided answer. `nowMs` must not be smaller than any earlier insert's. */
  insert(
    idBytes: Uint8Array,
    idAt: number,
    fingerprint0: number,
    fingerprint1: number,
    answer: Uint8Array,
    answerAt: number,
    nowMs: number,
  ): void {
    if (this.size === this.capacity) this.grow();
    const slot = this.tail & this.mask;
    this.tail++;
    const base = slot * ID_WORDS;
    this.ids[base] = readWord(idBytes, idAt);
    this.ids[base + 1] = readWord(idBytes, idAt + 4);
    this.ids[base + 2] = readWord(idBytes, idAt + 8);
    this.ids[base + 3] = readWord(idBytes, idAt + 12);
    this.fingerprints[slot * 2] = fingerprint0;
    this.fingerprints[slot * 2 + 1] = fingerprint1;
    this.answers.set(answer.subarray(answerAt, answerAt + RESPONSE_BYTES), slot * RESPONSE_BYTES);
    this.firstSeenMs[slot] = nowMs;
    const hash = hashWords(idBytes, idAt, ID_WORDS, this.seed);
    this.hashes[slot] = hash;
    this.indexInsert(hash, slot);
  }

  /** Drops up to `budget` entries whose window has passed; returns how many were dropped. */
  prune(nowMs: number, windowMs: number, budget: number): number {
    let dropped = 0;
    while (dropped < budget && this.head < this.tail) {
      const slot = this.head & this.mask;
      if (this.firstSeenMs[slot]! + windowMs > nowMs) break;
      this.indexRemove(slot);
      this.head++;
      dropped++;
    }
    return dropped;
  }

  /** Live entries oldest first, for snapshots: calls `visit` with the ring slot. */
  forEachSlot(visit: (slot: number) => void): void {
    for (let seq = this.head; seq < this.tail; seq++) visit(seq & this.mask);
  }

  idWords(slot: number): Int32Array {
    return this.ids.subarray(slot * ID_WORDS, slot * ID_WORDS + ID_WORDS);
  }

  fingerprintOf(slot: number): [number, number] {
    return [this.fingerprints[slot * 2]!, this.fingerprints[slot * 2 + 1]!];
  }

  answerBytes(slot: number): Uint8Array {
    return this.answers.subarray(slot * RESPONSE_BYTES, slot * RESPONSE_BYTES + RESPONSE_BYTES);
  }

  firstSeenOf(slot: number): number {
    return this.firstSeenMs[slot]!;
  }

  private indexInsert(hash: number, slot: number): void {
    let i = hash & this.indexMask;
    while (this.index[i] !== 0) i = (i + 1) & this.indexMask;
    this.index[i] = slot + 1;
  }

  private indexRemove(slot: number): void {
    const index = this.index;
    const mask = this.indexMask;
    let hole = this.hashes[slot]! & mask;
    while (index[hole] !== slot + 1) {
      if (index[hole] === 0) throw new Error("dedupe index lost an entry");
      hole = (hole + 1) & mask;
    }
    // Backward-shift deletion: pull later entries of the probe run into the hole when their home
    // position allows it, so lookups never need tombstones.
    let probe = hole;
    for (;;) {
      probe = (probe + 1) & mask;
      const stored = index[probe]!;
      if (stored === 0) break;
      const home = this.hashes[stored - 1]! & mask;
      const distanceToProbe = (probe - home) & mask;
      const distanceToHole = (probe - hole) & mask;
      if (distanceToHole <= distanceToProbe) {
        index[hole] = stored;
        hole = probe;
      }
    }
    index[hole] = 0;
  }

  private grow(): void {
    const oldMask = this.mask;
    const count = this.size;
    const capacity = this.capacity * 2;
    const ids = new Int32Array(capacity * ID_WORDS);
    const hashes = new Int32Array(capacity);
    const fingerprints = new Int32Array(capacity * 2);
    const answers = new Uint8Array(capacity * RESPONSE_BYTES);
    const firstSeenMs = new Float64Array(capacity);
    for (let n = 0; n < count; n++) {
      const from = (this.head + n) & oldMask;
      ids.set(this.ids.subarray(from * ID_WORDS, from * ID_WORDS + ID_WORDS), n * ID_WORDS);
      hashes[n] = this.hashes[from]!;
      fingerprints[n * 2] = this.fingerprints[from * 2]!;
      fingerprints[n * 2 + 1] = this.fingerprints[from * 2 + 1]!;
      answers.set(this.answers.subarray(from * RESPONSE_BYTES, from * RESPONSE_BYTES + RESPONSE_BYTES), n * RESPONSE_BYTES);
      firstSeenMs[n] = this.firstSeenMs[from]!;
    }
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.ids = ids;
    this.hashes = hashes;
    this.fingerprints = fingerprints;
    this.answers = answers;
    this.firstSeenMs = firstSeenMs;
    this.head = 0;
    this.tail = count;
    this.index = new Int32Array(capacity * 2);
    this.indexMask = this.index.length - 1;
    for (let slot = 0; slot < count; slot++) this.indexInsert(hashes[slot]!, slot);
  }
}

function ceilPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
