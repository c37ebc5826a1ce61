/**
 * An open-addressing index from 16-byte ids to slot numbers, with no per-entry objects: the ids live in
 * an Int32Array (four words per slot), lookups compare words, and the table uses linear probing at a
 * load of at most 1/2 with backward-shift deletion (no tombstones, so lookups never slow down with
 * churn). The hash is seeded so a hostile client cannot aim its ids at one probe chain.
 *
 * The owner of the index decides what a slot is (a lock record, a dedupe entry) and keeps the other
 * fields in arrays of its own, indexed by the same slot numbers.
 */
import { hashWords, readWord } from "./hash.js";

const ID_WORDS = 4;

export class IdIndex {
  private ids: Int32Array;
  private hashes: Int32Array;
  /** Holds slot + 1; 0 is an empty position. */
  private table: Int32Array;
  private tableMask: number;

  constructor(private readonly seed: number, slotCapacity: number) {
    this.ids = new Int32Array(slotCapacity * ID_WORDS);
    this.hashes = new Int32Array(slotCapacity);
    this.table = new Int32Array(tableSizeFor(slotCapacity));
    this.tableMask = this.table.length - 1;
  }

  /** The slot whose id equals `bytes[at..at+16]`, or -1. */
  find(bytes: Uint8Array, at: number): number {
    const w0 = readWord(bytes, at);
    const w1 = readWord(bytes, at + 4);
    const w2 = readWord(bytes, at + 8);
    const w3 = readWord(bytes, at + 12);
    const ids = this.ids;
    const table = this.table;
    const mask = this.tableMask;
    let position = hashWords(bytes, at, ID_WORDS, this.seed) & mask;
    for (;;) {
      const stored = table[position]!;
      if (stored === 0) return -1;
      const base = (stored - 1) * ID_WORDS;
      if (ids[base] === w0 && ids[base + 1] === w1 && ids[base + 2] === w2 && ids[base + 3] === w3) return stored - 1;
      position = (position + 1) & mask;
    }
  }

  /** Indexes `slot` under the id at `bytes[at..]`. The id must not be indexed already. */
  add(slot: number, bytes: Uint8Array, at: number): void {
    const base = slot * ID_WORDS;
    this.ids[base] = readWord(bytes, at);
    this.ids[base + 1] = readWord(bytes, at + 4);
    this.ids[base + 2] = readWord(bytes, at + 8);
    this.ids[base + 3] = readWord(bytes, at + 12);
    const hash = hashWords(bytes, at, ID_WORDS, this.seed);
    this.hashes[slot] = hash;
    this.place(hash, slot);
  }

  /** Indexes `slot` under the id that `source` holds for `sourceSlot` (moving entries between tables). */
  addFrom(slot: number, source: IdIndex, sourceSlot: number): void {
    const to = slot * ID_WORDS;
    const from = sourceSlot * ID_WORDS;
    for (let w = 0; w < ID_WORDS; w++) this.ids[to + w] = source.ids[from + w]!;
    const hash = source.hashes[sourceSlot]!;
    this.hashes[slot] = hash;
    this.place(hash, slot);
  }

  delete(slot: number): void {
    const table = this.table;
    const mask = this.tableMask;
    let hole = this.hashes[slot]! & mask;
    while (table[hole] !== slot + 1) {
      if (table[hole] === 0) throw new Error(`id index lost slot ${slot}`);
      hole = (hole + 1) & mask;
    }
    // Backward shift: pull later members of the probe run into the hole when their home allows it.
    let probe = hole;
    for (;;) {
      probe = (probe + 1) & mask;
      const stored = table[probe]!;
      if (stored === 0) break;
      const home = this.hashes[stored - 1]! & mask;
      if (((probe - hole) & mask) <= ((probe - home) & mask)) {
        table[hole] = stored;
        hole = probe;
      }
    }
    table[hole] = 0;
  }

  /** The id of `slot` as four big-endian words (signed), e.g. for snapshots. */
  idWords(slot: number): Int32Array {
    return this.ids.subarray(slot * ID_WORDS, slot * ID_WORDS + ID_WORDS);
  }

  /** Makes room for slots up to `slotCapacity`, keeping every slot number and entry. */
  growSlots(slotCapacity: number, slotsInUse: Iterable<number>): void {
    const ids = new Int32Array(slotCapacity * ID_WORDS);
    ids.set(this.ids);
    const hashes = new Int32Array(slotCapacity);
    hashes.set(this.hashes);
    this.ids = ids;
    this.hashes = hashes;
    this.table = new Int32Array(tableSizeFor(slotCapacity));
    this.tableMask = this.table.length - 1;
    for (const slot of slotsInUse) this.place(hashes[slot]!, slot);
  }

  private place(hash: number, slot: number): void {
    const table = this.table;
    const mask = this.tableMask;
    let position = hash & mask;
    while (table[position] !== 0) position = (position + 1) & mask;
    table[position] = slot + 1;
  }
}

/** A power of two at least twice the slot capacity: load factor <= 1/2. */
function tableSizeFor(slotCapacity: number): number {
  let size = 16;
  while (size < slotCapacity * 2) size *= 2;
  return size;
}
