/**
 * An index from 16-byte ids to slot numbers with no per-entry objects and no stop-the-world growth.
 *
 * - Ids live in fixed-size chunks of a typed array, allocated as slots are first used: adding slots
 *   never copies the earlier ones. The owner decides what a slot is (a lock record, a dedupe entry)
 *   and keeps its other fields in arrays of its own, indexed by the same slot numbers.
 * - The table is open addressing with linear probing over (hash, slot + 1) pairs, at most 70% full.
 *   A lookup for an id that is not there (most request ids) usually reads one cache line and never
 *   touches the ids: only a bucket whose stored hash matches is compared word by word. Deletion
 *   shifts the rest of the probe run back, so the table never fills up with tombstones.
 * - When the table must double, entries move to the new table a few buckets per add or delete
 *   (incremental rehashing), so no single command pays for re-indexing millions of entries. Until
 *   the move completes, a lookup tries the new table, then the old one; every entry is in exactly one
 *   of them. The old table only ever loses entries: a moved or deleted entry leaves a marker there
 *   that probes step over.
 * - The doubled table is allocated a little before it is needed and its pages are faulted in one
 *   every few adds. The operating system hands out a large array's memory a page at a time, on
 *   first write; left to the move, the first adds after a doubling wrote to a fresh page nearly every
 *   time (new ids land anywhere), ~2 µs each on this VM: 11.7M ids doubling the table cost ~1.1 µs
 *   per add for the first 250k adds, against ~0.42 µs with the pages already there.
 * - The hash is seeded so a hostile client cannot aim its ids at one probe run.
 */
import { readIdWords } from "./command-words.js";
import { hashIdWords, readWord } from "./hash.js";
import { FRESH_MEMORY, type TableMemory } from "./table-memory.js";

const ID_WORDS = 4;
export const SLOT_CHUNK_BITS = 16;
export const SLOT_CHUNK = 1 << SLOT_CHUNK_BITS;
const SLOT_CHUNK_MASK = SLOT_CHUNK - 1;
/** Old-table buckets moved per add or delete while growing: well ahead of the next doubling. */
const MIGRATE_BUCKETS_PER_OPERATION = 8;
/** Bucket reference values besides slot + 1. */
const EMPTY = 0;
const GONE = -1; // old table only: moved to the new table, or deleted while growing
/** Grow past 7 entries per 10 buckets: probe runs stay short (≈ 2 buckets for a missing id). */
const MAX_LOAD_NUMERATOR = 7;
const MAX_LOAD_DENOMINATOR = 10;
/**
 * Past 6 entries per 10 buckets the doubled table is allocated, and one of its pages faulted in per
 * PREFAULT_EVERY_ADDS adds. It has bucket count / 256 pages of 4 KiB and 0.1 x bucket count adds
 * remain before it is needed: one page per 16 adds finishes by 6.6 entries per 10 buckets.
 */
const PREPARE_LOAD_NUMERATOR = 6;
const PREFAULT_EVERY_ADDS = 16;
/**
 * Past 5 entries per 10 buckets the table's memory is told the doubled table will be taken: a server
 * that writes its pages on another thread then has 0.1 x bucket count adds to do so.
 */
const EXPECT_LOAD_NUMERATOR = 5;
const PAGE_INT32S = 4096 / 4;

export class IdIndex {
  private readonly idChunks: Int32Array[] = [];
  /** Pairs per bucket: [2b] the id's hash, [2b + 1] slot + 1 (or EMPTY / GONE). */
  private table: Int32Array;
  private mask: number;
  /** The table being emptied into `table` while growing, and the next bucket to move. */
  private old: Int32Array | null = null;
  private oldMask = 0;
  private cursor = 0;
  private count = 0;
  /** The doubled table, allocated ahead of growing (see above), and the next offset to fault in. */
  private next: Int32Array | null = null;
  private nextFaulted = 0;
  private addsUntilFault = PREFAULT_EVERY_ADDS;
  /** Whether the memory was told the doubled table will be needed (see EXPECT_LOAD_NUMERATOR). */
  private nextExpected = false;
  /** Scratch and result sink of `prefetch`. */
  private hashes = new Int32Array(0);
  private touched = 0;
  /** The id being looked up or added through the byte-based entry points. */
  private readonly scratch = new Int32Array(ID_WORDS);

  /**
   * `expectedSlots` sizes the table. One sized for a known number of entries (a snapshot and the log
   * after it, being loaded) is not prepared to double before it holds more: it may never need to.
   */
  constructor(
    private readonly seed: number,
    private readonly expectedSlots: number,
    private readonly memory: TableMemory = FRESH_MEMORY,
  ) {
    const buckets = tableSizeFor(expectedSlots);
    this.table = new Int32Array(buckets * 2);
    this.mask = buckets - 1;
  }

  /** The slot whose id equals `bytes[at..at+16]`, or -1. */
  find(bytes: Uint8Array, at: number): number {
    const words = this.scratch;
    readIdWords(bytes, at, words, 0);
    return this.findWords(words, 0, this.hashOf(words, 0));
  }

  /** The seeded hash of the id `words[at..at+4)`, for `findWords` and `addWords`. */
  hashOf(words: Int32Array, at: number): number {
    return hashIdWords(words[at]!, words[at + 1]!, words[at + 2]!, words[at + 3]!, this.seed);
  }

  /** The slot whose id is `words[at..at+4)` (whose hash is `hash`), or -1. */
  findWords(words: Int32Array, at: number, hash: number): number {
    const w0 = words[at]!;
    const w1 = words[at + 1]!;
    const w2 = words[at + 2]!;
    const w3 = words[at + 3]!;
    const found = this.findIn(this.table, this.mask, hash, w0, w1, w2, w3);
    if (found >= 0 || this.old === null) return found;
    return this.findIn(this.old, this.oldMask, hash, w0, w1, w2, w3);
  }

  /**
   * Reads the home buckets of the ids at `bytes[starts[i] + offset]` for i < count, changing
   * nothing. In tables of millions of entries each lookup is a cache (and TLB) miss: hashing every
   * id first and then reading the buckets in a loop this small keeps many of those reads in flight at
   * once, so lookups that follow soon after find their buckets in cache instead of stalling one
   * after another. (The moves of a growing table need no such help: an entry of old bucket b lands
   * near new bucket b or b + old size, so the moves write two sequential streams.)
   */
  prefetch(bytes: Uint8Array, starts: Int32Array, count: number, offset: number): void {
    const hashes = this.hashScratch(count);
    for (let i = 0; i < count; i++) {
      const at = starts[i]! + offset;
      hashes[i] = hashIdWords(readWord(bytes, at), readWord(bytes, at + 4), readWord(bytes, at + 8), readWord(bytes, at + 12), this.seed);
    }
    this.touchHomes(hashes, count);
  }

  /**
   * Like `prefetch`, for the buckets of `slots[0..count)`: entries about to be deleted (the oldest
   * ones, when their time has passed) are as scattered over the table as new ids.
   */
  prefetchSlots(slots: Int32Array, count: number): void {
    const hashes = this.hashScratch(count);
    for (let i = 0; i < count; i++) {
      const slot = slots[i]!;
      hashes[i] = this.hashOf(this.idChunks[slot >>> SLOT_CHUNK_BITS]!, (slot & SLOT_CHUNK_MASK) * ID_WORDS);
    }
    this.touchHomes(hashes, count);
  }

  private hashScratch(count: number): Int32Array {
    if (this.hashes.length < count) this.hashes = new Int32Array(count);
    return this.hashes;
  }

  private touchHomes(hashes: Int32Array, count: number): void {
    const table = this.table;
    const mask = this.mask;
    let sum = 0;
    for (let i = 0; i < count; i++) sum ^= table[(hashes[i]! & mask) * 2 + 1]!;
    const old = this.old;
    if (old !== null) {
      const oldMask = this.oldMask;
      for (let i = 0; i < count; i++) sum ^= old[(hashes[i]! & oldMask) * 2 + 1]!;
    }
    this.touched = sum; // kept only so the reads are not optimised away
  }

  /** Indexes `slot` under the id at `bytes[at..]`. The id must not be indexed already. */
  add(slot: number, bytes: Uint8Array, at: number): void {
    const words = this.scratch;
    readIdWords(bytes, at, words, 0);
    this.addWords(slot, words, 0, this.hashOf(words, 0));
  }

  /** Indexes `slot` under the id `words[at..at+4)`, whose hash is `hash`. Not indexed already. */
  addWords(slot: number, words: Int32Array, at: number, hash: number): void {
    const chunk = slot >>> SLOT_CHUNK_BITS;
    while (this.idChunks.length <= chunk) this.idChunks.push(new Int32Array(this.memory.take(SLOT_CHUNK * ID_WORDS * 4)));
    const ids = this.idChunks[chunk]!;
    const base = (slot & SLOT_CHUNK_MASK) * ID_WORDS;
    ids[base] = words[at]!;
    ids[base + 1] = words[at + 1]!;
    ids[base + 2] = words[at + 2]!;
    ids[base + 3] = words[at + 3]!;
    place(this.table, this.mask, hash, slot + 1);
    this.count++;
    if (this.old !== null) this.migrate(MIGRATE_BUCKETS_PER_OPERATION);
    else if (this.count * MAX_LOAD_DENOMINATOR > (this.mask + 1) * MAX_LOAD_NUMERATOR) this.startGrowing();
    else if (this.count * MAX_LOAD_DENOMINATOR > (this.mask + 1) * PREPARE_LOAD_NUMERATOR && this.count > this.expectedSlots) this.prepareNext();
    else if (!this.nextExpected && this.count * MAX_LOAD_DENOMINATOR > (this.mask + 1) * EXPECT_LOAD_NUMERATOR && this.count > this.expectedSlots) {
      this.nextExpected = true;
      this.memory.expect(this.table.byteLength * 2);
    }
  }

  delete(slot: number): void {
    const ids = this.idChunks[slot >>> SLOT_CHUNK_BITS]!;
    const base = (slot & SLOT_CHUNK_MASK) * ID_WORDS;
    const hash = hashIdWords(ids[base]!, ids[base + 1]!, ids[base + 2]!, ids[base + 3]!, this.seed);
    const ref = slot + 1;
    const bucket = bucketOf(this.table, this.mask, hash, ref);
    if (bucket >= 0) {
      removeShifting(this.table, this.mask, bucket);
    } else {
      const oldBucket = this.old === null ? -1 : bucketOf(this.old, this.oldMask, hash, ref);
      if (oldBucket < 0) throw new Error(`id index lost slot ${slot}`);
      this.old![oldBucket * 2 + 1] = GONE;
    }
    this.count--;
    if (this.old !== null) this.migrate(MIGRATE_BUCKETS_PER_OPERATION);
  }

  /**
   * The chunk holding the ids of the slots `slot` shares a chunk with: the id of `slot` is the four
   * big-endian words (signed) from `(slot & (SLOT_CHUNK - 1)) * 4`. For walks over many slots.
   */
  idChunk(slot: number): Int32Array {
    return this.idChunks[slot >>> SLOT_CHUNK_BITS]!;
  }

  /** The id of `slot` as four big-endian words (signed), e.g. for snapshots. */
  idWords(slot: number): Int32Array {
    const offset = (slot & SLOT_CHUNK_MASK) * ID_WORDS;
    return this.idChunks[slot >>> SLOT_CHUNK_BITS]!.subarray(offset, offset + ID_WORDS);
  }

  private findIn(table: Int32Array, mask: number, hash: number, w0: number, w1: number, w2: number, w3: number): number {
    for (let bucket = hash & mask; ; bucket = (bucket + 1) & mask) {
      const ref = table[bucket * 2 + 1]!;
      if (ref === EMPTY) return -1;
      if (ref > 0 && table[bucket * 2] === hash) {
        const slot = ref - 1;
        const ids = this.idChunks[slot >>> SLOT_CHUNK_BITS]!;
        const base = (slot & SLOT_CHUNK_MASK) * ID_WORDS;
        if (ids[base] === w0 && ids[base + 1] === w1 && ids[base + 2] === w2 && ids[base + 3] === w3) return slot;
      }
    }
  }

  /** Allocates the doubled table, or faults in its next page every PREFAULT_EVERY_ADDS adds. */
  private prepareNext(): void {
    if (this.next === null) {
      this.next = new Int32Array(this.memory.takeOnce(this.table.byteLength * 2));
      this.nextFaulted = 0;
      return;
    }
    if (--this.addsUntilFault > 0 || this.nextFaulted >= this.next.length) return;
    this.addsUntilFault = PREFAULT_EVERY_ADDS;
    this.next[this.nextFaulted] = 0; // a write, so the page is really allocated (it is zero already)
    this.nextFaulted += PAGE_INT32S;
  }

  private startGrowing(): void {
    this.old = this.table;
    this.oldMask = this.mask;
    this.cursor = 0;
    this.table = this.next ?? new Int32Array(this.memory.takeOnce(this.old.byteLength * 2));
    this.next = null;
    this.nextExpected = false;
    this.mask = this.old.length - 1;
    this.migrate(MIGRATE_BUCKETS_PER_OPERATION);
  }

  /** Moves the entries of up to `buckets` old buckets into the new table. */
  private migrate(buckets: number): void {
    const old = this.old!;
    const end = Math.min(this.cursor + buckets, this.oldMask + 1);
    for (let bucket = this.cursor; bucket < end; bucket++) {
      const ref = old[bucket * 2 + 1]!;
      if (ref > 0) {
        place(this.table, this.mask, old[bucket * 2]!, ref);
        old[bucket * 2 + 1] = GONE;
      }
    }
    this.cursor = end;
    if (end > this.oldMask) this.old = null;
  }
}

/** Puts `ref` in the first free bucket of its probe run (a table with no GONE markers). */
function place(table: Int32Array, mask: number, hash: number, ref: number): void {
  let bucket = hash & mask;
  while (table[bucket * 2 + 1] !== EMPTY) bucket = (bucket + 1) & mask;
  table[bucket * 2] = hash;
  table[bucket * 2 + 1] = ref;
}

/** The bucket holding `ref`, or -1. */
function bucketOf(table: Int32Array, mask: number, hash: number, ref: number): number {
  for (let bucket = hash & mask; ; bucket = (bucket + 1) & mask) {
    const here = table[bucket * 2 + 1]!;
    if (here === ref) return bucket;
    if (here === EMPTY) return -1;
  }
}

/**
 * Empties `bucket` and moves later entries of the probe run back into the hole when their home
 * bucket allows it, so every entry stays reachable from its home without tombstones.
 */
function removeShifting(table: Int32Array, mask: number, bucket: number): void {
  let hole = bucket;
  for (let next = (hole + 1) & mask; ; next = (next + 1) & mask) {
    const ref = table[next * 2 + 1]!;
    if (ref === EMPTY) break;
    const hash = table[next * 2]!;
    // The entry at `next` may move into the hole if its home is not after the hole in this run.
    if (((next - (hash & mask)) & mask) >= ((next - hole) & mask)) {
      table[hole * 2] = hash;
      table[hole * 2 + 1] = ref;
      hole = next;
    }
  }
  table[hole * 2] = 0;
  table[hole * 2 + 1] = EMPTY;
}

/** A power of two with room for the expected slots below the maximum load. */
function tableSizeFor(expectedSlots: number): number {
  let size = 16;
  while (size * MAX_LOAD_NUMERATOR < expectedSlots * MAX_LOAD_DENOMINATOR) size *= 2;
  return size;
}
