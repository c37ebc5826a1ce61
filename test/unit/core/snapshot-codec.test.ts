/**
 * The snapshot holds the entries a retry could still be answered from. An entry superseded by a
 * later request with the same id (the old one had expired but was not pruned yet) is left out, and
 * the snapshot's size still matches the counts in its header.
 */
import { describe, expect, it } from "vitest";
import { bufferSource, decodeSnapshot, encodeSnapshot, readSnapshot, writeSnapshot } from "../../../src/core/snapshot-codec.js";
import { Command, encodeRequest } from "../../../src/protocol/index.js";
import { Driver } from "../../support/state-machine-driver.js";
import { u128 } from "../../support/frames.js";

const WINDOW_MS = 1_000;
const HEADER_BYTES = 76;
const LOCK_BYTES = 48;
const DEDUPE_BYTES = 49;
const TRAILER_BYTES = 4;

function acquire(requestId: number, lockId: number): Uint8Array {
  return encodeRequest({ command: Command.Acquire, requestId: u128(BigInt(requestId)), lockId: u128(BigInt(lockId)), ownerId: u128(1n), ttlMs: 100n });
}

describe("snapshot encoding", () => {
  it("leaves a superseded dedupe entry out and still matches its header's counts", () => {
    const driver = new Driver({ dedupeWindowMs: WINDOW_MS, expiredRetentionMs: 10 });
    for (let n = 1; n <= 40; n++) driver.send(acquire(n, n), n);
    // Long after the window: this command prunes a few of the oldest entries (its budget), and
    // finds request id 40 expired but still in the table, so its new entry supersedes the old one.
    const reused = driver.send(acquire(40, 1_000), 10_000);
    expect(reused.status).toBe(0);
    const stored = driver.sm.dedupeEntryCount;
    expect(stored).toBeGreaterThan(2); // the superseded entry is still counted here

    const position = { lastIndex: 41, lastTerm: 1 };
    const snapshot = encodeSnapshot(driver.sm, position);
    const locks = driver.sm.lockRecordCount;
    expect(snapshot.length).toBe(HEADER_BYTES + locks * LOCK_BYTES + (stored - 1) * DEDUPE_BYTES + TRAILER_BYTES);
    const decoded = decodeSnapshot(snapshot, driver.sm.config);
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(decoded.stateMachine.dedupeEntryCount).toBe(stored - 1);
    expect(encodeSnapshot(decoded.stateMachine, position).equals(snapshot)).toBe(true);
  });
});

describe("restoring lock records from a snapshot", () => {
  it("restores a record under its lock id and owner, and refuses the same lock id a second time", () => {
    const driver = new Driver();
    driver.sm.restoreScalars(1_000, 10);
    const record = Buffer.concat([u128(5n), u128(9n)]); // lock id, then owner id
    driver.sm.restoreLock(record, 0, 3, 2_000);
    const inspect = encodeRequest({ command: Command.Inspect, requestId: u128(1n), lockId: u128(5n), ownerId: u128(9n), ttlMs: 0n });
    const seen = driver.send(inspect, 1_500);
    expect(seen.status).toBe(0); // held by that owner, with its token and expiry
    expect(seen.reply.subarray(1).toString("hex")).toBe("0000000000000003" + "00000000000007d0");
    expect(() => driver.sm.restoreLock(record, 0, 4, 2_000)).toThrow("snapshot holds a lock twice");
    expect(driver.sm.lockRecordCount).toBe(1);
  });
});

/** A state with locks held and answers remembered: 30 locks and 60 answers. */
function busyState(): Driver {
  const driver = new Driver({ dedupeWindowMs: 60_000, expiredRetentionMs: 10 });
  for (let n = 1; n <= 60; n++) driver.send(acquire(n, n % 30), n);
  return driver;
}

/** A source over `bytes` that records the largest single read. */
function countingSource(bytes: Buffer): { size: number; read(into: Buffer, length: number): void; largestRead: number } {
  let at = 0;
  return {
    size: bytes.length,
    largestRead: 0,
    read(into, length) {
      if (at + length > bytes.length) throw new Error("past the end");
      this.largestRead = Math.max(this.largestRead, length);
      bytes.copy(into, 0, at, at + length);
      at += length;
    },
  };
}

describe("snapshots in pieces (never one buffer: a large one exceeds what Node reads or allocates at once)", () => {
  const position = { lastIndex: 60, lastTerm: 2 };

  it("writes the same bytes in pieces of any size, none larger than asked or a record", () => {
    const driver = busyState();
    const whole = encodeSnapshot(driver.sm, position);
    expect(whole.length).toBe(HEADER_BYTES + 30 * LOCK_BYTES + 60 * DEDUPE_BYTES + TRAILER_BYTES);
    for (const pieceBytes of [1, 49, 60, 97, 500, 1 << 20]) {
      const pieces: Buffer[] = [];
      const size = writeSnapshot(driver.sm, position, { write: (piece) => pieces.push(Buffer.from(piece)) }, pieceBytes);
      expect(size).toBe(whole.length);
      expect(Buffer.concat(pieces).equals(whole)).toBe(true);
      const largest = Math.max(...pieces.map((piece) => piece.length));
      expect(largest).toBeLessThanOrEqual(Math.max(pieceBytes, HEADER_BYTES));
      if (pieceBytes < whole.length) expect(pieces.length).toBeGreaterThan(1);
    }
  });

  it("reads back the same state in pieces of any size, reading no more at once than a piece", () => {
    const driver = busyState();
    const whole = encodeSnapshot(driver.sm, position);
    for (const pieceBytes of [1, 48, 49, 100, 1 << 20]) {
      const source = countingSource(whole);
      const decoded = readSnapshot(source, driver.sm.config, 0, pieceBytes);
      if (!decoded.ok) throw new Error(decoded.reason);
      expect(encodeSnapshot(decoded.stateMachine, position).equals(whole)).toBe(true);
      expect(source.largestRead).toBeLessThanOrEqual(Math.max(pieceBytes, HEADER_BYTES, DEDUPE_BYTES));
    }
  });

  it("refuses a snapshot with any byte changed, or cut short, whatever the piece size", () => {
    const driver = busyState();
    const whole = encodeSnapshot(driver.sm, position);
    for (let at = 0; at < whole.length; at += 7) {
      const damaged = Buffer.from(whole);
      damaged[at] = damaged[at]! ^ 0x10;
      for (const pieceBytes of [49, 1 << 20]) {
        const decoded = readSnapshot(bufferSource(damaged), driver.sm.config, 0, pieceBytes);
        expect(decoded.ok, `byte ${at} changed, pieces of ${pieceBytes}`).toBe(false);
      }
    }
    const cut = readSnapshot(bufferSource(whole.subarray(0, whole.length - 1)), driver.sm.config);
    // A disk or memory failure while reading is not damage: it is thrown as it is, never "unreadable".
    const failing = (error: Error) => {
      let at = 0;
      return {
        size: whole.length,
        read(into: Buffer, length: number) {
          if (at + length > HEADER_BYTES) throw error; // the header reads, the records fail
          whole.copy(into, 0, at, at + length);
          at += length;
        },
      };
    };
    const eio = Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
    expect(() => readSnapshot(failing(eio), driver.sm.config)).toThrow("EIO: i/o error, read");
    expect(() => readSnapshot(failing(new RangeError("Array buffer allocation failed")), driver.sm.config)).toThrow(RangeError);
    expect(cut).toEqual({ ok: false, reason: `size ${whole.length - 1} does not match its counts (expected ${whole.length})` });
  });
});
