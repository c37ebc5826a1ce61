/**
 * The state machine's whole state as bytes, and back: locks, fencing counter, logical clock and the
 * dedupe table, plus the log position the state includes. Pure: the storage layer writes and reads
 * the bytes.
 *
 *   8  magic "BATONSNP"        4  version (2)             8  last_index   8  last_term
 *   8  now_ms                  8  next_token              8  lock_count   8  dedupe_count
 *   8  dedupe_window_ms        8  expired_retention_ms    (version 2 on; version 1 has neither, and
 *                                                           its state has the settings it is read with)
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
const VERSION = 2;
const V1_HEADER_BYTES = 8 + 4 + 8 * 6;
const HEADER_BYTES = V1_HEADER_BYTES + 8 * 2;
const LOCK_BYTES = 48;
const DEDUPE_BYTES = 16 + 8 + RESPONSE_BYTES + 8;
const TRAILER_BYTES = 4;

/** The size of a snapshot (written now, at the current version) of `locks` lock records and `dedupeEntries` answers. */
export function snapshotBytesFor(locks: number, dedupeEntries: number): number {
  return HEADER_BYTES + locks * LOCK_BYTES + dedupeEntries * DEDUPE_BYTES + TRAILER_BYTES;
}
/** Records whose buckets are read ahead at once while loading. */
const LOAD_WINDOW = 32;

/**
 * Snapshots are written and read a piece at a time, never as one buffer: under load they hold tens of
 * millions of remembered answers (49 bytes each, so gigabytes), and Node reads no file over 2 GiB
 * into one buffer nor allocates one over 4 GiB. A piece holds whole records.
 */
export const SNAPSHOT_PIECE_BYTES = 1 << 20;

export interface SnapshotPosition {
  /** Index of the last log entry the state includes (0 = none). */
  readonly lastIndex: number;
  readonly lastTerm: number;
}

/** Takes an encoded snapshot in order, one piece per call; the piece is reused after the call returns. */
export interface SnapshotSink {
  write(piece: Buffer): void;
}

/** Hands out a snapshot's bytes in order. */
export interface SnapshotSource {
  /** Total size in bytes. */
  readonly size: number;
  /** Fills `into[0..length)` with the next bytes; throws if the source ends first. */
  read(into: Buffer, length: number): void;
}

/** Encodes the state into `sink`, piece by piece; returns the snapshot's size in bytes. */
export function writeSnapshot(sm: StateMachine, position: SnapshotPosition, sink: SnapshotSink, pieceBytes = SNAPSHOT_PIECE_BYTES): number {
  const locks = sm.lockTable();
  const dedupe = sm.dedupeTable();
  const piece = Buffer.allocUnsafe(Math.max(pieceBytes, HEADER_BYTES, LOCK_BYTES, DEDUPE_BYTES));
  const view = new DataView(piece.buffer, piece.byteOffset, piece.byteLength);
  let at = 0;
  let crc = 0;
  let total = 0;
  const flush = (): void => {
    const filled = piece.subarray(0, at);
    crc = crc32(filled, crc);
    sink.write(filled);
    total += at;
    at = 0;
  };

  MAGIC.copy(piece, 0);
  writeU32(piece, 8, VERSION);
  writeU64(piece, 12, position.lastIndex);
  writeU64(piece, 20, position.lastTerm);
  writeU64(piece, 28, sm.logicalNowMs);
  writeU64(piece, 36, sm.nextFencingToken);
  writeU64(piece, 44, locks.size);
  // Superseded answers (rare) are left out, and the header comes first: count them before writing.
  const dedupeCount = dedupe.liveEntryCount();
  writeU64(piece, 52, dedupeCount);
  const retention = sm.retention;
  writeU64(piece, 60, retention.dedupeWindowMs);
  writeU64(piece, 68, retention.expiredRetentionMs);
  at = HEADER_BYTES;

  locks.forEachSlot((slot) => {
    if (at + LOCK_BYTES > piece.length) flush();
    const lock = locks.lockWords(slot);
    const owner = locks.ownerWords(slot);
    for (let w = 0; w < 4; w++) {
      writeU32(piece, at + 4 * w, lock[w]! >>> 0);
      writeU32(piece, at + 16 + 4 * w, owner[w]! >>> 0);
    }
    writeU64(piece, at + 32, locks.tokenOf(slot));
    writeU64(piece, at + 40, locks.expiresAtOf(slot));
    at += LOCK_BYTES;
  });
  // Millions of entries under load: word stores through the view (ids and answers were validated
  // when they entered the table).
  const written = dedupe.forEachEntry((ids, idAt, fingerprint0, fingerprint1, status, token, expiresAtMs, firstSeenMs) => {
    if (at + DEDUPE_BYTES > piece.length) flush();
    view.setInt32(at, ids[idAt]!);
    view.setInt32(at + 4, ids[idAt + 1]!);
    view.setInt32(at + 8, ids[idAt + 2]!);
    view.setInt32(at + 12, ids[idAt + 3]!);
    view.setInt32(at + 16, fingerprint0);
    view.setInt32(at + 20, fingerprint1);
    piece[at + 24 + RESPONSE_STATUS] = status;
    setU64(view, at + 24 + RESPONSE_TOKEN, token);
    setU64(view, at + 24 + RESPONSE_EXPIRES_AT, expiresAtMs);
    setU64(view, at + 24 + RESPONSE_BYTES, firstSeenMs);
    at += DEDUPE_BYTES;
  });
  if (written !== dedupeCount) throw new Error(`snapshot: counted ${dedupeCount} answers, visited ${written}`);
  if (at + TRAILER_BYTES > piece.length) flush();
  crc = crc32(piece.subarray(0, at), crc);
  writeU32(piece, at, crc);
  at += TRAILER_BYTES;
  const last = piece.subarray(0, at);
  sink.write(last);
  return total + at;
}

/** The whole snapshot as one buffer: for tests and small states (see SNAPSHOT_PIECE_BYTES). */
export function encodeSnapshot(sm: StateMachine, position: SnapshotPosition): Buffer {
  const pieces: Buffer[] = [];
  writeSnapshot(sm, position, { write: (piece) => pieces.push(Buffer.from(piece)) });
  return Buffer.concat(pieces);
}

/** A source over bytes already in memory. */
export function bufferSource(bytes: Buffer): SnapshotSource {
  let at = 0;
  return {
    size: bytes.length,
    read(into, length) {
      if (at + length > bytes.length) throw new Error(`snapshot ends at ${bytes.length} bytes, ${at + length} wanted`);
      bytes.copy(into, 0, at, at + length);
      at += length;
    },
  };
}

export type DecodedSnapshot =
  | { readonly ok: true; readonly stateMachine: StateMachine; readonly position: SnapshotPosition }
  | { readonly ok: false; readonly reason: string };

/** `readSnapshot` over bytes in memory. */
export function decodeSnapshot(bytes: Buffer, config: StateMachineConfig, replayThrough = 0): DecodedSnapshot {
  return readSnapshot(bufferSource(bytes), config, replayThrough);
}

/**
 * `replayThrough` is the log index the caller will replay up to right after (0: none). The tables are
 * sized up front for the snapshot's entries plus that many log entries, so neither loading nor the
 * replay grows them: growing moves every entry once more, and in a fresh process (a compaction, a
 * restart) every page it touches is a page fault.
 *
 * The checksum covers the whole file and is known only at its end, so the state is built as the
 * pieces arrive and thrown away if the checksum does not match.
 */
export function readSnapshot(source: SnapshotSource, config: StateMachineConfig, replayThrough = 0, pieceBytes = SNAPSHOT_PIECE_BYTES): DecodedSnapshot {
  if (source.size < V1_HEADER_BYTES + TRAILER_BYTES) return { ok: false, reason: `too short (${source.size} bytes)` };
  const piece = Buffer.allocUnsafe(Math.max(pieceBytes, HEADER_BYTES, LOCK_BYTES, DEDUPE_BYTES));
  source.read(piece, V1_HEADER_BYTES);
  if (!piece.subarray(0, 8).equals(MAGIC)) return { ok: false, reason: "not a baton snapshot (bad magic)" };
  const version = readU32(piece, 8);
  if (version !== VERSION && version !== 1) return { ok: false, reason: `unsupported snapshot version ${version}` };
  const headerBytes = version === 1 ? V1_HEADER_BYTES : HEADER_BYTES;
  const lockCount = readU64(piece, 44);
  const dedupeCount = readU64(piece, 52);
  const expected = headerBytes + lockCount * LOCK_BYTES + dedupeCount * DEDUPE_BYTES + TRAILER_BYTES;
  if (expected !== source.size) return { ok: false, reason: `size ${source.size} does not match its counts (expected ${expected})` };
  if (headerBytes > V1_HEADER_BYTES) source.read(piece.subarray(V1_HEADER_BYTES), headerBytes - V1_HEADER_BYTES);
  const lastIndex = readU64(piece, 12);
  const lastTerm = readU64(piece, 20);
  const logEntries = Math.max(0, replayThrough - lastIndex);
  const retention = version === 1 ? {} : { dedupeWindowMs: readU64(piece, 60), expiredRetentionMs: readU64(piece, 68) };
  const sm = new StateMachine({
    ...config,
    ...retention,
    initialCapacity: { locks: lockCount, lockRecords: lockCount + logEntries, dedupeEntries: dedupeCount + logEntries },
  });
  sm.restoreScalars(readU64(piece, 28), readU64(piece, 36));
  let crc: number;
  try {
    crc = loadRecords(source, piece, sm, lockCount, dedupeCount, crc32(piece.subarray(0, headerBytes)));
  } catch (error) {
    // Memory or the disk failing is not the snapshot's fault: say so as it is, never "unreadable".
    if (error instanceof RangeError || (error as NodeJS.ErrnoException).code !== undefined) throw error;
    // Damage the checksum would have caught, found first by the state refusing what it read, or a
    // file that ends early.
    return { ok: false, reason: (error as Error).message };
  }
  source.read(piece, TRAILER_BYTES);
  if (readU32(piece, 0) !== crc) return { ok: false, reason: "checksum mismatch" };
  return { ok: true, stateMachine: sm, position: { lastIndex, lastTerm } };
}

/** Loads the records into `sm`, a piece at a time; returns the checksum so far. */
function loadRecords(source: SnapshotSource, piece: Buffer, sm: StateMachine, lockCount: number, dedupeCount: number, crcSoFar: number): number {
  const locks = sm.lockTable();
  let crc = readPieces(
    source,
    piece,
    LOCK_BYTES,
    lockCount,
    crcSoFar,
    (starts, window) => locks.prefetch(piece, starts, window, 0),
    (at) => sm.restoreLock(piece, at, readU64(piece, at + 32), readU64(piece, at + 40)),
  );
  const dedupe = sm.dedupeTable();
  const requestId = new Int32Array(4);
  crc = readPieces(
    source,
    piece,
    DEDUPE_BYTES,
    dedupeCount,
    crc,
    (starts, window) => dedupe.prefetchIds(piece, starts, window, 0),
    (at) => {
      const answerAt = at + 24;
      readIdWords(piece, at, requestId, 0);
      const hash = dedupe.hashOf(requestId, 0);
      dedupe.insertWords(
        requestId,
        0,
        hash,
        dedupe.lookupWords(requestId, 0, hash),
        readU32(piece, at + 16) | 0,
        readU32(piece, at + 20) | 0,
        piece[answerAt + RESPONSE_STATUS]!,
        readU64(piece, answerAt + RESPONSE_TOKEN),
        readU64(piece, answerAt + RESPONSE_EXPIRES_AT),
        readU64(piece, answerAt + RESPONSE_BYTES),
      );
    },
  );
  return crc;
}

/**
 * Reads `count` records of `recordBytes` into `piece`, as many as fit at a time, and loads each with
 * `load(offset in piece)`. Each insert lands on a random bucket of a table sized for everything, so
 * the records are taken in windows whose buckets are read first (`prefetch`), and their cache misses
 * overlap (as replay does). Returns the checksum carried on over the bytes read.
 */
function readPieces(
  source: SnapshotSource,
  piece: Buffer,
  recordBytes: number,
  count: number,
  crcSoFar: number,
  prefetch: (starts: Int32Array, window: number) => void,
  load: (at: number) => void,
): number {
  let crc = crcSoFar;
  const starts = new Int32Array(LOAD_WINDOW);
  const perPiece = Math.floor(piece.length / recordBytes);
  for (let done = 0; done < count; ) {
    const inPiece = Math.min(perPiece, count - done);
    source.read(piece, inPiece * recordBytes);
    crc = crc32(piece.subarray(0, inPiece * recordBytes), crc);
    for (let n = 0; n < inPiece; n++) {
      const at = n * recordBytes;
      if (n % LOAD_WINDOW === 0) {
        const window = Math.min(LOAD_WINDOW, inPiece - n);
        prefetch(fixedStarts(starts, at, recordBytes, window), window);
      }
      load(at);
    }
    done += inPiece;
  }
  return crc;
}

/** The state a log is replayed into when there is no snapshot, sized like decodeSnapshot's. */
export function emptyStateFor(config: StateMachineConfig, replayThrough: number): StateMachine {
  return new StateMachine({ ...config, initialCapacity: { lockRecords: replayThrough, dedupeEntries: replayThrough } });
}
