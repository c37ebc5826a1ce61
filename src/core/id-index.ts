/**
 * An index from 16-byte ids to slot numbers with no per-entry objects and no stop-the-world growth.
 *
 * - Per-slot data (the id as four words, its hash, the chain link) lives in fixed-size chunks of
 *   typed arrays, allocated as slots are first used: adding slots never copies the earlier ones.
 * - Buckets chain their slots (load factor at most 1). When the table must double, entries move to
 *   the new table a few buckets per add or delete (incremental rehashing), so no single command pays
 *   for re-indexing millions of entries. Until the move completes, a lookup tries the new table,
 *   then the old one; every entry is in exactly one of them.
 * - The hash is seeded so a hostile client cannot aim its ids at one chain.
 *
 * The owner of the index decides what a slot is (a lock record, a dedupe entry) and keeps its other
 * fields in arrays of its own, indexed by the same slot numbers.
 */
import { hashWords, readWord } from "./hash.js";

const ID_WORDS = 4;
export const SLOT_CHUNK_BITS = 16;
export const SLOT_CHUNK = 1 << SLOT_CHUNK_BITS;
const SLOT_CHUNK_MASK = SLOT_CHUNK - 1;
/** Old-table buckets moved per add or delete while growing: well ahead of the next doubling. */
const MIGRATE_BUCKETS_PER_OPERATION = 8;

export class IdIndex {
  private readonly idChunks: Int32Array[] = [];
  private readonly hashChunks: Int32Array[] = [];
  /** Chain links: slot + 1 of the next slot in the bucket, 0 at the end. */
  private readonly nextChunks: Int32Array[] = [];
  /** Bucket heads (slot + 1; 0 = empty). */
  private table: Int32Array;
  private mask: number;
  /** The table being emptied into `table` while growing, and the next bucket to move. */
  private old: Int32Array | null = null;
  private oldMask = 0;
  private cursor = 0;
  private count = 0;

  constructor(private readonly seed: number, expectedSlots: number) {
    this.table = new Int32Array(tableSizeFor(expectedSlots));
    this.mask = this.table.length - 1;
  }

  /** The slot whose id equals `bytes[at..at+16]`, or -1. */
  find(bytes: Uint8Array, at: number): number {
    const w0 = readWord(bytes, at);
    const w1 = readWord(bytes, at + 4);
    const w2 = readWord(bytes, at + 8);
    const w3 = readWord(bytes, at + 12);
    const hash = hashWords(bytes, at, ID_WORDS, this.seed);
    const found = this.findIn(this.table, this.mask, hash, w0, w1, w2, w3);
    if (found >= 0 || this.old === null) return found;
    return this.findIn(this.old, this.oldMask, hash, w0, w1, w2, w3);
  }

  /** Indexes `slot` under the id at `bytes[at..]`. The id must not be indexed already. */
  add(slot: number, bytes: Uint8Array, at: number): void {
    const chunk = slot >>> SLOT_CHUNK_BITS;
    while (this.idChunks.length <= chunk) {
      this.idChunks.push(new Int32Array(SLOT_CHUNK * ID_WORDS));
      this.hashChunks.push(new Int32Array(SLOT_CHUNK));
      this.nextChunks.push(new Int32Array(SLOT_CHUNK));
    }
    const offset = slot & SLOT_CHUNK_MASK;
    const ids = this.idChunks[chunk]!;
    ids[offset * 4] = readWord(bytes, at);
    ids[offset * 4 + 1] = readWord(bytes, at + 4);
    ids[offset * 4 + 2] = readWord(bytes, at + 8);
    ids[offset * 4 + 3] = readWord(bytes, at + 12);
    const hash = hashWords(bytes, at, ID_WORDS, this.seed);
    this.hashChunks[chunk]![offset] = hash;
    this.link(this.table, this.mask, hash, slot);
    this.count++;
    if (this.old !== null) this.migrate(MIGRATE_BUCKETS_PER_OPERATION);
    else if (this.count > this.table.length) this.startGrowing();
  }

  delete(slot: number): void {
    const hash = this.hashChunks[slot >>> SLOT_CHUNK_BITS]![slot & SLOT_CHUNK_MASK]!;
    if (!this.unlink(this.table, this.mask, hash, slot) && (this.old === null || !this.unlink(this.old, this.oldMask, hash, slot))) {
      throw new Error(`id index lost slot ${slot}`);
    }
    this.count--;
    if (this.old !== null) this.migrate(MIGRATE_BUCKETS_PER_OPERATION);
  }

  /** The id of `slot` as four big-endian words (signed), e.g. for snapshots. */
  idWords(slot: number): Int32Array {
    const offset = (slot & SLOT_CHUNK_MASK) * ID_WORDS;
    return this.idChunks[slot >>> SLOT_CHUNK_BITS]!.subarray(offset, offset + ID_WORDS);
  }

  private findIn(table: Int32Array, mask: number, hash: number, w0: number, w1: number, w2: number, w3: number): number {
    let slot = table[hash & mask]! - 1;
    while (slot >= 0) {
      const chunk = slot >>> SLOT_CHUNK_BITS;
      const offset = slot & SLOT_CHUNK_MASK;
      const ids = this.idChunks[chunk]!;
      const base = offset * ID_WORDS;
      if (ids[base] === w0 && ids[base + 1] === w1 && ids[base + 2] === w2 && ids[base + 3] === w3) return slot;
      slot = this.nextChunks[chunk]![offset]! - 1;
    }
    return -1;
  }

  private link(table: Int32Array, mask: number, hash: number, slot: number): void {
    const bucket = hash & mask;
    this.nextChunks[slot >>> SLOT_CHUNK_BITS]![slot & SLOT_CHUNK_MASK] = table[bucket]!;
    table[bucket] = slot + 1;
  }

  private unlink(table: Int32Array, mask: number, hash: number, slot: number): boolean {
    const bucket = hash & mask;
    let previous = -1;
    let current = table[bucket]! - 1;
    while (current >= 0) {
      const next = this.nextChunks[current >>> SLOT_CHUNK_BITS]![current & SLOT_CHUNK_MASK]!;
      if (current === slot) {
        if (previous < 0) table[bucket] = next;
        else this.nextChunks[previous >>> SLOT_CHUNK_BITS]![previous & SLOT_CHUNK_MASK] = next;
        return true;
      }
      previous = current;
      current = next - 1;
    }
    return false;
  }

  private startGrowing(): void {
    this.old = this.table;
    this.oldMask = this.mask;
    this.cursor = 0;
    this.table = new Int32Array(this.old.length * 2);
    this.mask = this.table.length - 1;
    this.migrate(MIGRATE_BUCKETS_PER_OPERATION);
  }

  /** Moves the chains of up to `buckets` old buckets into the new table. */
  private migrate(buckets: number): void {
    const old = this.old!;
    for (let n = 0; n < buckets && this.cursor <= this.oldMask; n++, this.cursor++) {
      let slot = old[this.cursor]! - 1;
      old[this.cursor] = 0;
      while (slot >= 0) {
        const chunk = slot >>> SLOT_CHUNK_BITS;
        const offset = slot & SLOT_CHUNK_MASK;
        const next = this.nextChunks[chunk]![offset]! - 1;
        this.link(this.table, this.mask, this.hashChunks[chunk]![offset]!, slot);
        slot = next;
      }
    }
    if (this.cursor > this.oldMask) this.old = null;
  }
}

/** A power of two at least the expected number of slots: load factor <= 1 until the next doubling. */
function tableSizeFor(expectedSlots: number): number {
  let size = 16;
  while (size < expectedSlots) size *= 2;
  return size;
}
