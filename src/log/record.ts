/**
 * The log's unit of storage: a record of one or more command entries stamped with the same leader
 * time. The encoding does not depend on where it is stored: the local segment files hold these bytes,
 * and a replicated log would carry the same bytes.
 *
 *   u32 length        bytes after this field
 *   u32 crc32         zlib CRC-32 of every byte after this field
 *   u64 term          leader epoch that appended the record (1 for a single node)
 *   u64 first_index   log index of the first entry; entry i has index first_index + i
 *   u64 stamp_ms      the leader's logical time for every entry in the record
 *   u32 count         bits 0-28: number of entries (>= 1); bits 29-31: the record's place among
 *                     the log's writes (WritePlace, below)
 *   count x 57 bytes  entries: the request body (cmd, request_id, lock_id, owner_id, ttl_ms),
 *                     RELEASE/INSPECT with ttl_ms = 0
 */
import { crc32 } from "node:zlib";
import { LONG_BODY_BYTES } from "../protocol/wire.js";
import { readU32, readU64, writeU32, writeU64 } from "../protocol/u64.js";

export const ENTRY_BYTES = LONG_BODY_BYTES;
export const RECORD_HEADER_BYTES = 4 + 4 + 8 + 8 + 8 + 4; // 36
const CRC_AT = 4;
const TERM_AT = 8;
const FIRST_INDEX_AT = 16;
const STAMP_AT = 24;
/** Offset of the entry count in a record's header. */
export const RECORD_COUNT_AT = 32;
/** Entries per record at most: readers refuse more, and the writer starts a new record at it (commit-pipeline.ts). */
export const MAX_RECORD_ENTRIES = 1 << 20;

/**
 * Where a record sits among the log's writes (one write: the records of one append, made durable by
 * one fdatasync), so that recovery can tell a write that never finished from damage to acknowledged
 * records (see recovery.ts):
 *   "first"               the first record of a write;
 *   "first-after-durable" the first record of a write issued when every earlier record was durable;
 *   "later"               any other record of a write;
 *   "unmarked"            written by a version that did not mark writes (all three bits clear).
 */
export type WritePlace = "unmarked" | "later" | "first" | "first-after-durable";

export interface RecordHeader {
  readonly term: number;
  readonly firstIndex: number;
  readonly stampMs: number;
  readonly count: number;
  readonly place: WritePlace;
}

/**
 * The place bits of the count field. Bit 31 is set on every record this version writes (so its other
 * two bits mean something), bit 30 on a write's first record, bit 29 when that write came after every
 * earlier record was durable.
 */
const PLACE_BITS = 0xe000_0000;
const COUNT_BITS = 0x1fff_ffff;
const PLACE_CODES: Readonly<Record<WritePlace, number>> = {
  unmarked: 0,
  later: 0x8000_0000,
  first: 0xc000_0000,
  "first-after-durable": 0xe000_0000,
};

const PLACES_BY_CODE: ReadonlyMap<number, WritePlace> = new Map(
  (Object.entries(PLACE_CODES) as [WritePlace, number][]).map(([place, code]) => [code, place]),
);

/** Whether a count field marks the first record of a write issued when every earlier record was durable. */
export function startsWriteAfterDurable(countField: number): boolean {
  return ((countField & PLACE_BITS) >>> 0) === PLACE_CODES["first-after-durable"];
}

/** The place a count field's top bits name, or null for a combination no writer sets. */
function placeOf(countField: number): WritePlace | null {
  return PLACES_BY_CODE.get((countField & PLACE_BITS) >>> 0) ?? null;
}

/** The entry count a header's count field holds, without its place bits. */
export function entryCount(countField: number): number {
  return countField & COUNT_BITS;
}

export function recordBytes(count: number): number {
  return RECORD_HEADER_BYTES + count * ENTRY_BYTES;
}

/**
 * Whether a header's entry count agrees with its length field (the bytes after it) and stays within
 * the sanity bound. readRecord requires it of every record; recovery's sizing walk, which reads
 * headers only, stops where it fails.
 */
export function countFitsLength(count: number, length: number): boolean {
  return recordBytes(count) === 4 + length && count <= MAX_RECORD_ENTRIES;
}

/** Fills in the header of a record whose entries are already at `at + RECORD_HEADER_BYTES`. */
export function sealRecord(target: Buffer, at: number, header: RecordHeader): number {
  const end = at + recordBytes(header.count);
  writeU32(target, at, end - at - 4);
  writeU64(target, at + TERM_AT, header.term);
  writeU64(target, at + FIRST_INDEX_AT, header.firstIndex);
  writeU64(target, at + STAMP_AT, header.stampMs);
  writeU32(target, at + RECORD_COUNT_AT, (header.count | PLACE_CODES[header.place]) >>> 0);
  writeU32(target, at + CRC_AT, crc32(target.subarray(at + TERM_AT, end)));
  return end;
}

/** The first log index of the record at `at`, from its header alone (no checksum is verified). */
export function recordFirstIndex(bytes: Uint8Array, at: number): number {
  return readU64(bytes, at + FIRST_INDEX_AT);
}

export type RecordScan =
  | { readonly kind: "record"; readonly header: RecordHeader; readonly entriesAt: number; readonly end: number }
  | { readonly kind: "end" }
  /** The bytes from `at` cannot be a complete record: a partial write or garbage. */
  | { readonly kind: "incomplete"; readonly reason: string }
  /** A complete record whose checksum or fields are wrong. */
  | { readonly kind: "corrupt"; readonly reason: string };

/** Reads the record at `at`, verifying its length, checksum and fields. */
export function readRecord(bytes: Buffer, at: number): RecordScan {
  const available = bytes.length - at;
  if (available === 0) return { kind: "end" };
  // Segments are preallocated with zeros: a zero length field starts the unwritten space, but only if
  // every byte after it is zero too (a zeroed length in the middle of data is damage, not the end).
  // Fewer than 4 zero bytes are unwritten space as well: a segment continued after a power loss can
  // end its data a few bytes short of where an earlier, unsynced and since reverted, write had
  // already extended the file.
  if (available < 4 ? firstNonZero(bytes, at) < 0 : readU32(bytes, at) === 0) {
    const dataAt = firstNonZero(bytes, at);
    return dataAt < 0 ? { kind: "end" } : { kind: "corrupt", reason: `zero length field followed by data at offset ${dataAt}` };
  }
  if (available < RECORD_HEADER_BYTES) return { kind: "incomplete", reason: `${available} bytes, shorter than a record header` };
  const length = readU32(bytes, at);
  if (length < RECORD_HEADER_BYTES - 4 + ENTRY_BYTES || (length - (RECORD_HEADER_BYTES - 4)) % ENTRY_BYTES !== 0) {
    return { kind: "corrupt", reason: `impossible record length ${length}` };
  }
  if (available < 4 + length) return { kind: "incomplete", reason: `record of ${4 + length} bytes but only ${available} present` };
  const end = at + 4 + length;
  const stored = readU32(bytes, at + CRC_AT);
  const actual = crc32(bytes.subarray(at + TERM_AT, end));
  if (stored !== actual) return { kind: "corrupt", reason: `checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})` };
  const countField = readU32(bytes, at + RECORD_COUNT_AT);
  const count = entryCount(countField);
  if (!countFitsLength(count, length)) {
    return { kind: "corrupt", reason: `entry count ${count} does not match length ${length}` };
  }
  const place = placeOf(countField);
  if (place === null) return { kind: "corrupt", reason: `impossible write marks ${hex((countField & PLACE_BITS) >>> 0)}` };
  const header: RecordHeader = {
    term: readU64(bytes, at + TERM_AT),
    firstIndex: readU64(bytes, at + FIRST_INDEX_AT),
    stampMs: readU64(bytes, at + STAMP_AT),
    count,
    place,
  };
  return { kind: "record", header, entriesAt: at + RECORD_HEADER_BYTES, end };
}

/** Offset of the first non-zero byte at or after `from`, or -1. */
export function firstNonZero(bytes: Buffer, from: number): number {
  const CHUNK = 4096;
  const zeros = Buffer.alloc(CHUNK);
  for (let at = from; at < bytes.length; at += CHUNK) {
    const end = Math.min(at + CHUNK, bytes.length);
    if (bytes.compare(zeros, 0, end - at, at, end) !== 0) {
      for (let i = at; i < end; i++) if (bytes[i] !== 0) return i;
    }
  }
  return -1;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}
