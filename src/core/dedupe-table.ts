/**
 * The idempotency table: request id -> (parameter fingerprint, the 17-byte answer, when first seen).
 *
 * It is the memory and speed hot spot (millions of entries at full speed), so entries live in typed
 * arrays (≈ 53 bytes each plus the id index) instead of objects:
 *   - a ring in insertion order; logical time never goes backwards, so the oldest entry is always at
 *     the head and pruning is a pop from the front;
 *   - an IdIndex from request id to ring slot.
 * The ring grows by doubling; the caller bounds the number of entries (max dedupe entries).
 */
import { RESPONSE_BYTES } from "../protocol/wire.js";
import { IdIndex } from "./id-index.js";

const INITIAL_CAPACITY = 1 << 12;

export class DedupeTable {
  private capacity: number;
  private mask: number;
  private index: IdIndex;
  private fingerprints: Int32Array;
  private answers: Uint8Array;
  private firstSeenMs: Float64Array;
  /** 1 while the slot's id is in the index (an expired entry is unindexed when its id comes back). */
  private indexed: Uint8Array;
  /** Sequence numbers of the oldest entry and of the next one; slot = seq & mask. */
  private head = 0;
  private tail = 0;

  constructor(private readonly seed: number, initialCapacity = INITIAL_CAPACITY) {
    this.capacity = ceilPowerOfTwo(Math.max(16, initialCapacity));
    this.mask = this.capacity - 1;
    this.index = new IdIndex(seed, this.capacity);
    this.fingerprints = new Int32Array(this.capacity * 2);
    this.answers = new Uint8Array(this.capacity * RESPONSE_BYTES);
    this.firstSeenMs = new Float64Array(this.capacity);
    this.indexed = new Uint8Array(this.capacity);
  }

  get size(): number {
    return this.tail - this.head;
  }

  /**
   * The slot of the entry for the request id at `bytes[at..at+16]`, or -1. The entry may be past its
   * window and not pruned yet: check `isLive`, and pass the slot on to `insert` either way.
   */
  lookup(bytes: Uint8Array, at: number): number {
    return this.index.find(bytes, at);
  }

  isLive(slot: number, nowMs: number, windowMs: number): boolean {
    return this.firstSeenMs[slot]! + windowMs > nowMs;
  }

  matches(slot: number, fingerprint0: number, fingerprint1: number): boolean {
    // Stored as signed 32-bit words: compare in the same form.
    return this.fingerprints[slot * 2] === (fingerprint0 | 0) && this.fingerprints[slot * 2 + 1] === (fingerprint1 | 0);
  }

  copyAnswer(slot: number, out: Uint8Array, outAt: number): void {
    const answers = this.answers;
    const from = slot * RESPONSE_BYTES;
    for (let i = 0; i < RESPONSE_BYTES; i++) out[outAt + i] = answers[from + i]!;
  }

  answerStatus(slot: number): number {
    return this.answers[slot * RESPONSE_BYTES]!;
  }

  /**
   * Records a decided answer for a request id with no live entry; `expired` is what `lookup` found for
   * it (an entry past its window, or -1). `nowMs` must not be smaller than any earlier insert's.
   */
  insert(
    idBytes: Uint8Array,
    idAt: number,
    expired: number,
    fingerprint0: number,
    fingerprint1: number,
    answer: Uint8Array,
    answerAt: number,
    nowMs: number,
  ): void {
    if (expired >= 0 && this.indexed[expired] === 1) {
      // The id's old entry is past its window but not pruned yet (pruning since the lookup may have
      // dropped it already): it stops answering for the id now.
      this.index.delete(expired);
      this.indexed[expired] = 0;
    }
    if (this.size === this.capacity) this.grow();
    const slot = this.tail & this.mask;
    this.tail++;
    this.fingerprints[slot * 2] = fingerprint0;
    this.fingerprints[slot * 2 + 1] = fingerprint1;
    const answers = this.answers;
    const to = slot * RESPONSE_BYTES;
    for (let i = 0; i < RESPONSE_BYTES; i++) answers[to + i] = answer[answerAt + i]!;
    this.firstSeenMs[slot] = nowMs;
    this.index.add(slot, idBytes, idAt);
    this.indexed[slot] = 1;
  }

  /** Drops up to `budget` entries whose window has passed; returns how many were dropped. */
  prune(nowMs: number, windowMs: number, budget: number): number {
    let dropped = 0;
    while (dropped < budget && this.head < this.tail) {
      const slot = this.head & this.mask;
      if (this.firstSeenMs[slot]! + windowMs > nowMs) break;
      if (this.indexed[slot] === 1) this.index.delete(slot);
      this.indexed[slot] = 0;
      this.head++;
      dropped++;
    }
    return dropped;
  }

  /** Entries oldest first, for snapshots: calls `visit` with the ring slot. */
  forEachSlot(visit: (slot: number) => void): void {
    for (let seq = this.head; seq < this.tail; seq++) {
      const slot = seq & this.mask;
      if (this.indexed[slot] === 1) visit(slot);
    }
  }

  /** Entries a snapshot holds (unindexed, superseded entries are left out). */
  get liveCount(): number {
    let count = 0;
    this.forEachSlot(() => count++);
    return count;
  }

  idWords(slot: number): Int32Array {
    return this.index.idWords(slot);
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

  /**
   * Doubles the ring. Slots move (slot = seq & mask), so the index is rebuilt: O(entries) on the
   * event loop, which is why the server sizes the table for its expected load up front.
   */
  private grow(): void {
    const oldMask = this.mask;
    const capacity = this.capacity * 2;
    const mask = capacity - 1;
    const index = new IdIndex(this.seed, capacity);
    const fingerprints = new Int32Array(capacity * 2);
    const answers = new Uint8Array(capacity * RESPONSE_BYTES);
    const firstSeenMs = new Float64Array(capacity);
    const indexed = new Uint8Array(capacity);
    for (let seq = this.head; seq < this.tail; seq++) {
      const from = seq & oldMask;
      const to = seq & mask;
      fingerprints[to * 2] = this.fingerprints[from * 2]!;
      fingerprints[to * 2 + 1] = this.fingerprints[from * 2 + 1]!;
      answers.set(this.answers.subarray(from * RESPONSE_BYTES, from * RESPONSE_BYTES + RESPONSE_BYTES), to * RESPONSE_BYTES);
      firstSeenMs[to] = this.firstSeenMs[from]!;
      if (this.indexed[from] === 1) {
        index.addFrom(to, this.index, from);
        indexed[to] = 1;
      }
    }
    this.capacity = capacity;
    this.mask = mask;
    this.index = index;
    this.fingerprints = fingerprints;
    this.answers = answers;
    this.firstSeenMs = firstSeenMs;
    this.indexed = indexed;
  }
}

function ceilPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
