/**
 * Lock records in flat typed arrays (structure of arrays), indexed by lock id.
 *
 * A record per lock as JS objects in a Map costs ~300 bytes (object header, boxed doubles, id strings,
 * Map entry) and makes every new lock garbage for the collector to move; here a record is the lock id
 * and owner id (16 bytes each), two doubles and a few int32s in typed arrays (~70 bytes with its
 * index), and serving a request allocates nothing. Growing copies these flat arrays (a memcpy); the
 * id index grows incrementally on its own.
 *
 * The table also keeps a binary min-heap of slots ordered by expiry, so the records whose time has
 * passed can be found and dropped in order with bounded work per command. Every record is in the heap
 * exactly once (renewal re-sorts it, release removes it), so the heap never outgrows the table.
 *
 * All five arrays share one buffer, so a doubling is one allocation. The lock ids' index takes its
 * memory where the request-id table does (see table-memory.ts), so a server can have its pages
 * written on another thread. The records' buffer is not announced before a doubling: prepared ahead,
 * it would hold as much memory again as the table, unused, for as long as the table does not grow.
 */
import { readIdWords } from "./command-words.js";
import { IdIndex } from "./id-index.js";
import { FRESH_MEMORY, type TableMemory } from "./table-memory.js";

const INITIAL_CAPACITY = 1024;
/** The most record room reserved beyond the index's size up front: 160 MiB of address space. */
export const RECORD_ROOM_MAX = 1 << 22;
/** Bytes per record in the shared buffer: owner id 16, token 8, expiry 8, heap position 4, heap entry 4. */
const RECORD_BYTES = 40;

export class LockTable {
  private capacity: number;
  private readonly index: IdIndex;
  private count = 0;
  private owners: Int32Array;
  private tokens: Float64Array;
  private expires: Float64Array;
  /** Position of each slot in `heap`. */
  private heapPosition: Int32Array;
  /** Slots ordered as a binary min-heap on `expires`. */
  private heap: Int32Array;
  private heapSize = 0;
  private readonly freeSlots: number[] = [];
  private nextUnused = 0;
  /** Lock id then owner id, for the byte-based entry points. */
  private readonly scratch = new Int32Array(8);

  /**
   * `initialCapacity` sizes the index and the records; `recordRoom`, if larger, the records alone (up
   * to RECORD_ROOM_MAX). A record is written only when its slot is first used, and slots are used
   * in order, so room reserved for records that never come costs address space, not memory. Where
   * even that is refused (a host that counts address space against a strict commit limit), the
   * table starts at `initialCapacity` and grows as it would have without the room.
   */
  constructor(
    hashSeed: number,
    initialCapacity = INITIAL_CAPACITY,
    private readonly memory: TableMemory = FRESH_MEMORY,
    recordRoom = 0,
  ) {
    const needed = Math.max(16, initialCapacity);
    let capacity = Math.max(needed, Math.min(recordRoom, RECORD_ROOM_MAX));
    let buffer: ArrayBuffer | SharedArrayBuffer;
    try {
      buffer = memory.takeOnce(capacity * RECORD_BYTES);
    } catch (error) {
      if (!(error instanceof RangeError) || capacity === needed) throw error;
      capacity = needed;
      buffer = memory.takeOnce(capacity * RECORD_BYTES);
    }
    this.capacity = capacity;
    const arrays = recordArrays(buffer, capacity);
    ({ owners: this.owners, tokens: this.tokens, expires: this.expires, heapPosition: this.heapPosition, heap: this.heap } = arrays);
    this.index = new IdIndex(hashSeed, needed, memory);
  }

  get size(): number {
    return this.count;
  }

  /** The slot holding the record of the lock id at `bytes[at..at+16]`, or -1. */
  find(bytes: Uint8Array, at: number): number {
    return this.index.find(bytes, at);
  }

  /** The hash of the lock id `words[at..at+4)`, for the word-based methods below. */
  hashOf(words: Int32Array, at: number): number {
    return this.index.hashOf(words, at);
  }

  /** The slot holding the record of the lock id `words[at..at+4)` (hash `hash`), or -1. */
  findWords(words: Int32Array, at: number, hash: number): number {
    return this.index.findWords(words, at, hash);
  }

  /** Warms the cache for lookups about to happen (see IdIndex.prefetch). */
  prefetch(bytes: Uint8Array, starts: Int32Array, count: number, offset: number): void {
    this.index.prefetch(bytes, starts, count, offset);
  }

  /** Creates a record for the lock id at `lock[lockAt..]` (which must have none) with the given lease. */
  insert(lock: Uint8Array, lockAt: number, owner: Uint8Array, ownerAt: number, token: number, expiresAtMs: number): number {
    const words = this.scratch;
    readIdWords(lock, lockAt, words, 0);
    readIdWords(owner, ownerAt, words, 4);
    return this.insertWords(words, 0, this.index.hashOf(words, 0), 4, token, expiresAtMs);
  }

  /**
   * Creates a record for the lock id `words[lockAt..lockAt+4)` (hash `lockHash`; it must have none),
   * held by the owner id `words[ownerAt..ownerAt+4)`.
   */
  insertWords(words: Int32Array, lockAt: number, lockHash: number, ownerAt: number, token: number, expiresAtMs: number): number {
    let slot = this.freeSlots.pop();
    if (slot === undefined) {
      if (this.nextUnused === this.capacity) this.grow();
      slot = this.nextUnused++;
    }
    this.index.addWords(slot, words, lockAt, lockHash);
    this.count++;
    this.writeOwner(slot, words, ownerAt);
    this.tokens[slot] = token;
    this.expires[slot] = expiresAtMs;
    this.heap[this.heapSize] = slot;
    this.heapPosition[slot] = this.heapSize;
    this.heapSize++;
    this.siftUp(this.heapSize - 1);
    return slot;
  }

  /** Gives an existing record a new lease (a new holder after expiry), to the owner `words[ownerAt..]`. */
  replace(slot: number, words: Int32Array, ownerAt: number, token: number, expiresAtMs: number): void {
    this.writeOwner(slot, words, ownerAt);
    this.tokens[slot] = token;
    this.setExpiry(slot, expiresAtMs);
  }

  setExpiry(slot: number, expiresAtMs: number): void {
    const before = this.expires[slot]!;
    this.expires[slot] = expiresAtMs;
    const at = this.heapPosition[slot]!;
    if (expiresAtMs < before) this.siftUp(at);
    else this.siftDown(at);
  }

  remove(slot: number): void {
    this.index.delete(slot);
    this.count--;
    const at = this.heapPosition[slot]!;
    const last = this.heap[--this.heapSize]!;
    if (last !== slot) {
      this.heap[at] = last;
      this.heapPosition[last] = at;
      this.siftUp(at);
      this.siftDown(this.heapPosition[last]!);
    }
    this.freeSlots.push(slot);
  }

  /** Whether the record's owner is the id at `owner[ownerAt..ownerAt+16]`. */
  ownerMatches(slot: number, owner: Uint8Array, ownerAt: number): boolean {
    const words = this.scratch;
    readIdWords(owner, ownerAt, words, 4);
    return this.ownerMatchesWords(slot, words, 4);
  }

  /** Whether the record's owner is the id `words[ownerAt..ownerAt+4)`. */
  ownerMatchesWords(slot: number, words: Int32Array, ownerAt: number): boolean {
    const base = slot * 4;
    const owners = this.owners;
    return (
      owners[base] === words[ownerAt] &&
      owners[base + 1] === words[ownerAt + 1] &&
      owners[base + 2] === words[ownerAt + 2] &&
      owners[base + 3] === words[ownerAt + 3]
    );
  }

  tokenOf(slot: number): number {
    return this.tokens[slot]!;
  }

  expiresAtOf(slot: number): number {
    return this.expires[slot]!;
  }

  /** Lock id words of a slot (big-endian 32-bit words as signed ints), for snapshots. */
  lockWords(slot: number): Int32Array {
    return this.index.idWords(slot);
  }

  /** Owner id words of a slot (big-endian 32-bit words as signed ints), for snapshots. */
  ownerWords(slot: number): Int32Array {
    return this.owners.subarray(slot * 4, slot * 4 + 4);
  }

  /** The slot with the earliest expiry, or -1 when empty. */
  earliest(): number {
    return this.heapSize === 0 ? -1 : this.heap[0]!;
  }

  /** Every slot in use, in heap order (deterministic for a given history). */
  forEachSlot(visit: (slot: number) => void): void {
    for (let i = 0; i < this.heapSize; i++) visit(this.heap[i]!);
  }

  private writeOwner(slot: number, words: Int32Array, ownerAt: number): void {
    const base = slot * 4;
    const owners = this.owners;
    owners[base] = words[ownerAt]!;
    owners[base + 1] = words[ownerAt + 1]!;
    owners[base + 2] = words[ownerAt + 2]!;
    owners[base + 3] = words[ownerAt + 3]!;
  }

  private grow(): void {
    const capacity = this.capacity * 2;
    const grown = recordArrays(this.memory.takeOnce(capacity * RECORD_BYTES), capacity);
    grown.owners.set(this.owners);
    grown.tokens.set(this.tokens);
    grown.expires.set(this.expires);
    grown.heapPosition.set(this.heapPosition);
    grown.heap.set(this.heap);
    ({ owners: this.owners, tokens: this.tokens, expires: this.expires, heapPosition: this.heapPosition, heap: this.heap } = grown);
    this.capacity = capacity;
  }

  private siftUp(at: number): void {
    const heap = this.heap;
    const expires = this.expires;
    const slot = heap[at]!;
    const key = expires[slot]!;
    while (at > 0) {
      const parentAt = (at - 1) >> 1;
      const parent = heap[parentAt]!;
      if (expires[parent]! <= key) break;
      heap[at] = parent;
      this.heapPosition[parent] = at;
      at = parentAt;
    }
    heap[at] = slot;
    this.heapPosition[slot] = at;
  }

  private siftDown(at: number): void {
    const heap = this.heap;
    const expires = this.expires;
    const count = this.heapSize;
    const slot = heap[at]!;
    const key = expires[slot]!;
    for (;;) {
      let child = 2 * at + 1;
      if (child >= count) break;
      if (child + 1 < count && expires[heap[child + 1]!]! < expires[heap[child]!]!) child++;
      const smaller = heap[child]!;
      if (expires[smaller]! >= key) break;
      heap[at] = smaller;
      this.heapPosition[smaller] = at;
      at = child;
    }
    heap[at] = slot;
    this.heapPosition[slot] = at;
  }
}

interface RecordArrays {
  readonly owners: Int32Array;
  readonly tokens: Float64Array;
  readonly expires: Float64Array;
  readonly heapPosition: Int32Array;
  readonly heap: Int32Array;
}

/** The five record arrays over one buffer of `capacity` records (RECORD_BYTES each). */
function recordArrays(buffer: ArrayBuffer | SharedArrayBuffer, capacity: number): RecordArrays {
  return {
    owners: new Int32Array(buffer, 0, capacity * 4),
    tokens: new Float64Array(buffer, capacity * 16, capacity),
    expires: new Float64Array(buffer, capacity * 24, capacity),
    heapPosition: new Int32Array(buffer, capacity * 32, capacity),
    heap: new Int32Array(buffer, capacity * 36, capacity),
  };
}
