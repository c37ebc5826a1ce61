/**
 * The idempotency table: request id -> (parameter fingerprint, the answer, when first seen).
 *
 * It is the memory and speed hot spot (millions of entries at full speed), so entries live in typed
 * arrays (≈ 53 bytes each plus the id index) instead of objects, in fixed-size chunks:
 *   - an answer is kept as its three fields (status, token, expires_at), not as its 17 wire bytes:
 *     three stores instead of a 17-step byte copy on every command, the same memory;
 *   - entries form a queue in insertion order; logical time never goes backwards, so the oldest entry
 *     is always at the head and pruning is a pop from the front;
 *   - the queue is a list of chunks: a chunk emptied at the head is reused at the tail, and growing
 *     adds a chunk without moving any entry, so slot numbers never change and the IdIndex from
 *     request id to slot never has to be rebuilt.
 * The caller bounds the number of entries (max dedupe entries).
 */
import { writeResponse } from "../protocol/response.js";
import { IdIndex, SLOT_CHUNK, SLOT_CHUNK_BITS } from "./id-index.js";
import { FRESH_MEMORY, type TableMemory } from "./table-memory.js";

const SLOT_CHUNK_MASK = SLOT_CHUNK - 1;

/** One entry as `DedupeTable.forEachEntry` hands it over. */
export type DedupeEntryVisitor = (
  ids: Int32Array,
  idAt: number,
  fingerprint0: number,
  fingerprint1: number,
  status: number,
  token: number,
  expiresAtMs: number,
  firstSeenMs: number,
) => void;

export class DedupeTable {
  private readonly index: IdIndex;
  private readonly fingerprintChunks: Int32Array[] = [];
  private readonly statusChunks: Uint8Array[] = [];
  /** Pairs per entry: [2i] fencing token, [2i + 1] expires_at. */
  private readonly answerValueChunks: Float64Array[] = [];
  private readonly firstSeenChunks: Float64Array[] = [];
  /** 1 while the slot's id is in the index (an expired entry is unindexed when its id comes back). */
  private readonly indexedChunks: Uint8Array[] = [];
  /** Chunk numbers in queue order: the head entry is in blocks[0], the tail entry in the last. */
  private readonly blocks: number[] = [];
  private readonly freeChunks: number[] = [];
  private headOffset = 0;
  /** Next free offset in the last block; SLOT_CHUNK when a new block is needed. */
  private tailOffset = SLOT_CHUNK;
  private count = 0;
  /** Scratch of `prefetch`: the entries the next commands will prune. */
  private dueSlots = new Int32Array(0);

  constructor(
    seed: number,
    expectedEntries = SLOT_CHUNK,
    private readonly memory: TableMemory = FRESH_MEMORY,
  ) {
    this.index = new IdIndex(seed, expectedEntries, memory);
  }

  get size(): number {
    return this.count;
  }

  /**
   * The slot of the entry for the request id at `bytes[at..at+16]`, or -1. The entry may be past its
   * window and not pruned yet: check `isLive`, and pass the slot on to `insertWords` either way.
   */
  lookup(bytes: Uint8Array, at: number): number {
    return this.index.find(bytes, at);
  }

  /** The hash of the request id `words[at..at+4)`, for `lookupWords` and `insertWords`. */
  hashOf(words: Int32Array, at: number): number {
    return this.index.hashOf(words, at);
  }

  /** `lookup` for the request id `words[at..at+4)`, whose hash is `hash`. */
  lookupWords(words: Int32Array, at: number, hash: number): number {
    return this.index.findWords(words, at, hash);
  }

  /**
   * Warms the cache for the `count` commands about to be executed (see IdIndex.prefetch): their
   * lookups, and the deletes of up to `pruneLimit` of the oldest entries, those past their window at
   * `nowMs`, which those commands will prune. Once the table holds a window's worth of entries, a
   * command prunes about one on average, in bursts: with time stamps in whole milliseconds, every
   * entry of one millisecond falls due at once. Each delete is as much a cache miss as a lookup.
   */
  prefetch(bytes: Uint8Array, starts: Int32Array, count: number, offset: number, nowMs: number, windowMs: number, pruneLimit: number): void {
    this.index.prefetch(bytes, starts, count, offset);
    this.index.prefetchSlots(this.dueSlots, this.collectDue(nowMs, windowMs, pruneLimit));
  }

  /** Warms the cache for inserting the ids at `bytes[starts[i] + offset]`, i < count (snapshot loading). */
  prefetchIds(bytes: Uint8Array, starts: Int32Array, count: number, offset: number): void {
    this.index.prefetch(bytes, starts, count, offset);
  }

  /** Puts the slots of up to `limit` of the oldest entries past their window at `nowMs` in `dueSlots`. */
  private collectDue(nowMs: number, windowMs: number, limit: number): number {
    if (this.dueSlots.length < limit) this.dueSlots = new Int32Array(limit);
    const due = this.dueSlots;
    let found = 0;
    let looked = 0;
    for (let b = 0; b < this.blocks.length; b++) {
      const chunk = this.blocks[b]!;
      const firstSeen = this.firstSeenChunks[chunk]!;
      const indexed = this.indexedChunks[chunk]!;
      const to = b === this.blocks.length - 1 ? this.tailOffset : SLOT_CHUNK;
      for (let offset = b === 0 ? this.headOffset : 0; offset < to; offset++) {
        if (looked++ === limit || firstSeen[offset]! + windowMs > nowMs) return found;
        if (indexed[offset] === 1) due[found++] = chunk * SLOT_CHUNK + offset;
      }
    }
    return found;
  }

  isLive(slot: number, nowMs: number, windowMs: number): boolean {
    return this.firstSeenChunks[slot >>> SLOT_CHUNK_BITS]![slot & SLOT_CHUNK_MASK]! + windowMs > nowMs;
  }

  matches(slot: number, fingerprint0: number, fingerprint1: number): boolean {
    const fingerprints = this.fingerprintChunks[slot >>> SLOT_CHUNK_BITS]!;
    const at = (slot & SLOT_CHUNK_MASK) * 2;
    // Stored as signed 32-bit words: compare in the same form.
    return fingerprints[at] === (fingerprint0 | 0) && fingerprints[at + 1] === (fingerprint1 | 0);
  }

  /** Writes the remembered answer as its 17 wire bytes at `out[outAt..]`. */
  copyAnswer(slot: number, out: Uint8Array, outAt: number): void {
    const chunk = slot >>> SLOT_CHUNK_BITS;
    const offset = slot & SLOT_CHUNK_MASK;
    const values = this.answerValueChunks[chunk]!;
    writeResponse(out, outAt, this.statusChunks[chunk]![offset]!, values[offset * 2]!, values[offset * 2 + 1]!);
  }

  answerStatus(slot: number): number {
    return this.statusChunks[slot >>> SLOT_CHUNK_BITS]![slot & SLOT_CHUNK_MASK]!;
  }

  /**
   * Records a decided answer for the request id `words[at..at+4)` (hash `hash`), which has no live
   * entry; `expired` is what the lookup found for it (an entry past its window, or -1). `nowMs` must
   * not be smaller than any earlier insert's.
   */
  insertWords(
    words: Int32Array,
    at: number,
    hash: number,
    expired: number,
    fingerprint0: number,
    fingerprint1: number,
    status: number,
    token: number,
    expiresAtMs: number,
    nowMs: number,
  ): void {
    if (expired >= 0 && this.indexedChunks[expired >>> SLOT_CHUNK_BITS]![expired & SLOT_CHUNK_MASK] === 1) {
      // The id's old entry is past its window but not pruned yet (pruning since the lookup may have
      // dropped it already): it stops answering for the id now.
      this.index.delete(expired);
      this.indexedChunks[expired >>> SLOT_CHUNK_BITS]![expired & SLOT_CHUNK_MASK] = 0;
    }
    if (this.tailOffset === SLOT_CHUNK) {
      this.blocks.push(this.takeChunk());
      this.tailOffset = 0;
    }
    const chunk = this.blocks[this.blocks.length - 1]!;
    const offset = this.tailOffset++;
    const slot = chunk * SLOT_CHUNK + offset;
    this.count++;
    const fingerprints = this.fingerprintChunks[chunk]!;
    fingerprints[offset * 2] = fingerprint0;
    fingerprints[offset * 2 + 1] = fingerprint1;
    this.statusChunks[chunk]![offset] = status;
    const values = this.answerValueChunks[chunk]!;
    values[offset * 2] = token;
    values[offset * 2 + 1] = expiresAtMs;
    this.firstSeenChunks[chunk]![offset] = nowMs;
    this.index.addWords(slot, words, at, hash);
    this.indexedChunks[chunk]![offset] = 1;
  }

  /** Drops up to `budget` entries whose window has passed; returns how many were dropped. */
  prune(nowMs: number, windowMs: number, budget: number): number {
    let dropped = 0;
    while (dropped < budget && this.count > 0) {
      const chunk = this.blocks[0]!;
      const offset = this.headOffset;
      if (this.firstSeenChunks[chunk]![offset]! + windowMs > nowMs) break;
      const indexed = this.indexedChunks[chunk]!;
      if (indexed[offset] === 1) this.index.delete(chunk * SLOT_CHUNK + offset);
      indexed[offset] = 0;
      this.count--;
      dropped++;
      this.headOffset++;
      if (this.headOffset === SLOT_CHUNK || this.count === 0) this.releaseHeadBlock();
    }
    return dropped;
  }

  /** How many entries `forEachEntry` visits, counted without visiting them (a snapshot's header needs it first). */
  liveEntryCount(): number {
    let live = 0;
    const last = this.blocks.length - 1;
    for (let b = 0; b <= last; b++) {
      const indexed = this.indexedChunks[this.blocks[b]!]!;
      const to = b === last ? this.tailOffset : SLOT_CHUNK;
      for (let offset = b === 0 ? this.headOffset : 0; offset < to; offset++) live += indexed[offset]!;
    }
    return live;
  }

  /**
   * Every entry oldest first, superseded ones left out (those a snapshot holds); returns how many
   * were visited. The id is `ids[idAt..idAt+4)`. Nothing is allocated per entry: a snapshot walks
   * millions of them.
   */
  forEachEntry(visit: DedupeEntryVisitor): number {
    let visited = 0;
    const last = this.blocks.length - 1;
    for (let b = 0; b <= last; b++) {
      const chunk = this.blocks[b]!;
      const indexed = this.indexedChunks[chunk]!;
      const ids = this.index.idChunk(chunk * SLOT_CHUNK);
      const fingerprints = this.fingerprintChunks[chunk]!;
      const statuses = this.statusChunks[chunk]!;
      const values = this.answerValueChunks[chunk]!;
      const firstSeen = this.firstSeenChunks[chunk]!;
      const to = b === last ? this.tailOffset : SLOT_CHUNK;
      for (let offset = b === 0 ? this.headOffset : 0; offset < to; offset++) {
        if (indexed[offset] !== 1) continue;
        visit(
          ids,
          offset * 4,
          fingerprints[offset * 2]!,
          fingerprints[offset * 2 + 1]!,
          statuses[offset]!,
          values[offset * 2]!,
          values[offset * 2 + 1]!,
          firstSeen[offset]!,
        );
        visited++;
      }
    }
    return visited;
  }

  /** A chunk for the tail: one emptied at the head earlier, or a new one. */
  private takeChunk(): number {
    const reused = this.freeChunks.pop();
    if (reused !== undefined) return reused;
    const memory = this.memory;
    this.fingerprintChunks.push(new Int32Array(memory.take(SLOT_CHUNK * 2 * 4)));
    this.statusChunks.push(new Uint8Array(memory.take(SLOT_CHUNK)));
    this.answerValueChunks.push(new Float64Array(memory.take(SLOT_CHUNK * 2 * 8)));
    this.firstSeenChunks.push(new Float64Array(memory.take(SLOT_CHUNK * 8)));
    this.indexedChunks.push(new Uint8Array(memory.take(SLOT_CHUNK)));
    return this.fingerprintChunks.length - 1;
  }

  /** The head block is used up (or the queue is empty): recycle it. */
  private releaseHeadBlock(): void {
    if (this.count === 0) {
      // Keep writing into the tail block if there is room; the head simply catches up to the tail.
      if (this.tailOffset < SLOT_CHUNK && this.blocks.length === 1) {
        this.headOffset = this.tailOffset;
        return;
      }
    }
    this.freeChunks.push(this.blocks.shift()!);
    this.headOffset = 0;
    if (this.blocks.length === 0) this.tailOffset = SLOT_CHUNK;
  }
}
