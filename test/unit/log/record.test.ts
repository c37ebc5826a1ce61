/**
 * A record's count field carries its place among the log's writes in its top three bits; recovery
 * depends on reading back exactly the place that was written, and on refusing combinations no writer
 * produces.
 */
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { RECORD_COUNT_AT, entryCount, readRecord, recordBytes, sealRecord, type WritePlace } from "../../../src/log/record.js";

const PLACES: readonly WritePlace[] = ["unmarked", "later", "first", "first-after-durable"];

function sealed(count: number, place: WritePlace): Buffer {
  const bytes = Buffer.alloc(recordBytes(count));
  bytes.fill(0xab, 36);
  sealRecord(bytes, 0, { term: 2, firstIndex: 41, stampMs: 1234, count, place });
  return bytes;
}

describe("a record's place among the writes", () => {
  it("reads back as written, with the count and every other field intact", () => {
    for (const place of PLACES) {
      for (const count of [1, 7, 1000]) {
        const scan = readRecord(sealed(count, place), 0);
        expect(scan).toMatchObject({ kind: "record", header: { term: 2, firstIndex: 41, stampMs: 1234, count, place } });
      }
    }
  });

  it("is written in the count field's top bits, which a log written before the marks leaves clear", () => {
    const fields = PLACES.map((place) => sealed(3, place).readUInt32BE(RECORD_COUNT_AT));
    expect(fields).toEqual([3, 0x8000_0003, 0xc000_0003, 0xe000_0003]);
    expect(fields.map(entryCount)).toEqual([3, 3, 3, 3]);
  });

  it("refuses a combination of marks no writer sets, even under a valid checksum", () => {
    for (const bits of [0x2000_0000, 0x4000_0000, 0x6000_0000, 0xa000_0000]) {
      const bytes = sealed(2, "unmarked");
      bytes.writeUInt32BE((bits | 2) >>> 0, RECORD_COUNT_AT);
      bytes.writeUInt32BE(crc32(bytes.subarray(8)), 4);
      expect(readRecord(bytes, 0)).toEqual({ kind: "corrupt", reason: `impossible write marks 0x${bits.toString(16)}` });
    }
  });
});
