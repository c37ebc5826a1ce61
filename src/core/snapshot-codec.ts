/**
 * The state machine's whole state as bytes, and back: locks, fencing counter, logical clock and the
 * dedupe table, plus the log position the state includes. Pure: the storage layer writes and reads
 * the bytes.
 *
 *   8  magic "BATONSNP"        4  version (1)             8  last_index   8  last_term
 *   8  now_ms                  8  next_token              8  lock_count   8  dedupe_count
 *   lock_count   x 48: lock_id[16] owner_id[16] token u64 expires_at u64
 *   dedupe_count x 49: request_id[16] fingerprint[8] answer[17] first_seen_ms u64
 *   4  crc32 of everything before it
 */
import { crc32 } from "node:zlib";
import { readU32, readU64, setU64, writeU32, writeU64 } from "../protocol/u64.js";
import { RESPONSE_BYTES, RESPONSE_EXPIRES_AT, RESPONSE_STATUS, RESPONSE_TOKEN } from "../protocol/wire.js";
import { readIdWords } from "./command-words.js";
import { StateMachine, fixedStarts, type StateMachineConfig } from "./state-machine.js";

const MAGIC = Buffer.from("BATONSNP", "latin1");
const VERSION = 1;
const HEADER_BYTES = 8 + 4 + 8 * 6;
const LOCK_BYTES = 48;
const DEDUPE_BYTES = 16 + 8 + RESPONSE_BYTES + 8;
const TRAILER_BYTES = 4;
/** Records whose buckets are read ahead at once while loading. */
const LOAD_WINDOW = 32;

export interface SnapshotPosition {
  /** Index of the last log entry the state includes (0 = none). */
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export function encodeSnapshot(sm: StateMachine, position: SnapshotPosition): Buffer {
  const locks = sm.lockTable();
  const dedupe = sm.dedupeTable();
  // Room for every entry; superseded ones (rare) are left out, and the bytes trimmed to what was written.
  const room = HEADER_BYTES + locks.size * LOCK_BYTES + dedupe.size * DEDUPE_BYTES + TRAILER_BYTES;
  const bytes = Buffer.allocUnsafe(room);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  MAGIC.copy(bytes, 0);
  writeU32(bytes, 8, VERSION);
  writeU64(bytes, 12, position.lastIndex);
  writeU64(bytes, 20, position.lastTerm);
  writeU64(bytes, 28, sm.logicalNowMs);
  writeU64(bytes, 36, sm.nextFencingToken);
  writeU64(bytes, 44, locks.size);
  let at = HEADER_BYTES;
  locks.forEachSlot((slot) => {
    const lock = locks.lockWords(slot);
    const owner = locks.ownerWords(slot);
    for (let w = 0; w < 4; w++) {
      writeU32(bytes, at + 4 * w, lock[w]! >>> 0);
      writeU32(bytes, at + 16 + 4 * w, owner[w]! >>> 0);
    }
    writeU64(bytes, at + 32, locks.tokenOf(slot));
    writeU64(bytes, at + 40, locks.expiresAtOf(slot));
    at += LOCK_BYTES;
  });
  // Millions of entries under load: word stores through the view (ids and answers were validated
  // when they entered the table).
  const dedupeCount = dedupe.forEachEntry((ids, idAt, fingerprint0, fingerprint1, status, token, expiresAtMs, firstSeenMs) => {
    view.setInt32(at, ids[idAt]!);
    view.setInt32(at + 4, ids[idAt + 1]!);
    view.setInt32(at + 8, ids[idAt + 2]!);
    view.setInt32(at + 12, ids[idAt + 3]!);
    view.setInt32(at + 16, fingerprint0);
    view.setInt32(at + 20, fingerprint1);
    bytes[at + 24 + RESPONSE_STATUS] = status;
    setU64(view, at + 24 + RESPONSE_TOKEN, token);
    setU64(view, at + 24 + RESPONSE_EXPIRES_AT, expiresAtMs);
    setU64(view, at + 24 + RESPONSE_BYTES, firstSeenMs);
    at += DEDUPE_BYTES;
  });
  writeU64(bytes, 52, dedupeCount);
  writeU32(bytes, at, crc32(bytes.subarray(0, at)));
  return bytes.subarray(0, at + TRAILER_BYTES);
}

export type DecodedSnapshot =
  | { readonly ok: true; readonly stateMachine: StateMachine; readonly position: SnapshotPosition }
  | { readonly ok: false; readonly reason: string };

/**
 * `replayThrough` is the log index the caller will replay up to right after (0: none). The tables are
 * sized up front for the snapshot's entries plus that many log entries, so neither loading nor the
 * replay grows them: growing moves every entry once more, and in a fresh process (a compaction, a
 * restart) every page it touches is a page fault.
 */
export function decodeSnapshot(bytes: Buffer, config: StateMachineConfig, replayThrough = 0): DecodedSnapshot {
  if (bytes.length < HEADER_BYTES + TRAILER_BYTES) return { ok: false, reason: `too short (${bytes.length} bytes)` };
  if (!bytes.subarray(0, 8).equals(MAGIC)) return { ok: false, reason: "not a baton snapshot (bad magic)" };
  const version = readU32(bytes, 8);
  if (version !== VERSION) return { ok: false, reason: `unsupported snapshot version ${version}` };
  const lockCount = readU64(bytes, 44);
  const dedupeCount = readU64(bytes, 52);
  const expected = HEADER_BYTES + lockCount * LOCK_BYTES + dedupeCount * DEDUPE_BYTES + TRAILER_BYTES;
  if (expected !== bytes.length) return { ok: false, reason: `size ${bytes.length} does not match its counts (expected ${expected})` };
  const end = bytes.length - TRAILER_BYTES;
  const stored = readU32(bytes, end);
  const actual = crc32(bytes.subarray(0, end));
  if (stored !== actual) return { ok: false, reason: "checksum mismatch" };

  const lastIndex = readU64(bytes, 12);
  const logEntries = Math.max(0, replayThrough - lastIndex);
  const sm = new StateMachine({ ...config, initialCapacity: { locks: lockCount, dedupeEntries: dedupeCount + logEntries } });
  sm.restoreScalars(readU64(bytes, 28), readU64(bytes, 36));
  // Each insert lands on a random bucket of a table sized for everything: the entries are taken in
  // windows whose buckets are read first, so their cache misses overlap (as replay does).
  const starts = new Int32Array(LOAD_WINDOW);
  let at = HEADER_BYTES;
  const locks = sm.lockTable();
  for (let n = 0; n < lockCount; n++) {
    if (n % LOAD_WINDOW === 0) {
      const window = Math.min(LOAD_WINDOW, lockCount - n);
      locks.prefetch(bytes, fixedStarts(starts, at, LOCK_BYTES, window), window, 0);
    }
    sm.restoreLock(bytes, at, readU64(bytes, at + 32), readU64(bytes, at + 40));
    at += LOCK_BYTES;
  }
  const dedupe = sm.dedupeTable();
  const requestId = new Int32Array(4);
  for (let n = 0; n < dedupeCount; n++) {
    if (n % LOAD_WINDOW === 0) {
      const window = Math.min(LOAD_WINDOW, dedupeCount - n);
      dedupe.prefetchIds(bytes, fixedStarts(starts, at, DEDUPE_BYTES, window), window, 0);
    }
    const answerAt = at + 24;
    readIdWords(bytes, at, requestId, 0);
    const hash = dedupe.hashOf(requestId, 0);
    dedupe.insertWords(
      requestId,
      0,
      hash,
      dedupe.lookupWords(requestId, 0, hash),
      readU32(bytes, at + 16) | 0,
      readU32(bytes, at + 20) | 0,
      bytes[answerAt + RESPONSE_STATUS]!,
      readU64(bytes, answerAt + RESPONSE_TOKEN),
      readU64(bytes, answerAt + RESPONSE_EXPIRES_AT),
      readU64(bytes, answerAt + RESPONSE_BYTES),
    );
    at += DEDUPE_BYTES;
  }
  return { ok: true, stateMachine: sm, position: { lastIndex, lastTerm: readU64(bytes, 20) } };
}

/** The state a log is replayed into when there is no snapshot, sized like decodeSnapshot's. */
export function emptyStateFor(config: StateMachineConfig, replayThrough: number): StateMachine {
  return new StateMachine({ ...config, initialCapacity: { dedupeEntries: replayThrough } });
}
