/**
 * SET_RETENTION, the log-only command a start logs when its --dedupe-window or --expired-retention
 * differ from the data directory's: both settings decide answers, so they are state, set at a place
 * in the log and carried by snapshots, and every replay decides each command with the settings it
 * was first decided with, whatever the flags of the start that replays it.
 */
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { DEFAULT_RETENTION, SET_RETENTION, StateMachine, writeRetentionEntry, type RetentionSettings } from "../../../src/core/state-machine.js";
import { decodeSnapshot, encodeSnapshot } from "../../../src/core/snapshot-codec.js";
import { LONG_BODY_BYTES, RESPONSE_BYTES, Status, decodeResponse, isWellFormedRequestBody, type Response } from "../../../src/protocol/index.js";
import { DEFAULT_SM_CONFIG, Driver } from "../../support/state-machine-driver.js";
import { stateBytes } from "../../support/state-bytes.js";
import { acquire, renew } from "../../support/frames.js";

function retentionEntry(settings: RetentionSettings): Buffer {
  const entry = Buffer.alloc(LONG_BODY_BYTES);
  writeRetentionEntry(entry, 0, settings);
  return entry;
}

function setRetention(sm: StateMachine, settings: RetentionSettings, stampMs: number): Response {
  const reply = Buffer.alloc(RESPONSE_BYTES);
  sm.execute(retentionEntry(settings), 0, stampMs, reply, 0, null);
  return decodeResponse(reply, 0);
}

const answer = (driver: Driver, frame: Buffer, stampMs: number): Response => decodeResponse(driver.send(frame, stampMs).reply, 0);
const SHORT: RetentionSettings = { dedupeWindowMs: 500, expiredRetentionMs: 0 };

describe("SET_RETENTION", () => {
  it("answers 0, remembers no request id, and the commands after it are decided with its settings", () => {
    const driver = new Driver();
    const first = acquire({ lock: 1n, owner: 0xan, request: 7n }, 100n);
    expect(answer(driver, first, 1000)).toMatchObject({ status: Status.Ok, fencingToken: 1n });
    expect(answer(driver, acquire({ lock: 2n, owner: 0xan, request: 8n }, 100n), 1000)).toMatchObject({ status: Status.Ok, fencingToken: 2n });
    expect(setRetention(driver.sm, SHORT, 1100)).toEqual({ status: Status.Ok, fencingToken: 0n, expiresAt: 0n });
    expect(driver.sm.retention).toEqual(SHORT);
    expect(driver.sm.dedupeEntryCount).toBe(2);
    // 700 ms after it was first decided, past the new 500 ms window: a new request, not a retry.
    expect(answer(driver, first, 1700)).toEqual({ status: Status.Ok, fencingToken: 3n, expiresAt: 1800n });
    // An expired lease is forgotten at once with retention 0: its owner's RENEW gets 2, not 5.
    expect(answer(driver, renew({ lock: 2n, owner: 0xan, request: 9n }, 100n), 1700).status).toBe(Status.NotHeld);
  });

  it("forgets, before raising them, what the old settings had given up, however far pruning had got", () => {
    const driver = new Driver();
    setRetention(driver.sm, SHORT, 900);
    const first = acquire({ lock: 1n, owner: 0xan, request: 7n }, 100n);
    expect(answer(driver, first, 1000)).toMatchObject({ status: Status.Ok, fencingToken: 1n });
    // Nothing ran since: the answer (past its 500 ms window) and the lease (expired, retention 0)
    // are still in the tables, unpruned.
    expect(driver.sm.dedupeEntryCount).toBe(1);
    expect(driver.sm.lockRecordCount).toBe(1);
    setRetention(driver.sm, DEFAULT_RETENTION, 1600);
    expect(driver.sm.dedupeEntryCount).toBe(0);
    expect(driver.sm.lockRecordCount).toBe(0);
    // The same request id is a new request, as it was under the old window: not its old answer.
    expect(answer(driver, first, 1700)).toEqual({ status: Status.Ok, fencingToken: 2n, expiresAt: 1800n });
    // And the old lease's owner is told 2 (forgotten), not 5, on another lock's record left behind.
    const other = new Driver();
    setRetention(other.sm, SHORT, 900);
    answer(other, acquire({ lock: 2n, owner: 0xan }, 100n), 1000);
    setRetention(other.sm, DEFAULT_RETENTION, 1200);
    expect(answer(other, renew({ lock: 2n, owner: 0xan }, 100n), 1300).status).toBe(Status.NotHeld);
  });

  it("gives the same answers and state when a log holding it is replayed", () => {
    const frames = [acquire({ lock: 1n, owner: 1n, request: 1n }, 100n), acquire({ lock: 1n, owner: 1n, request: 1n }, 100n)];
    const run = (): { answers: Response[]; state: string } => {
      const driver = new Driver();
      const answers = [answer(driver, frames[0]!, 1000)];
      setRetention(driver.sm, SHORT, 1001);
      answers.push(answer(driver, frames[1]!, 1600));
      return { answers, state: stateBytes(driver.sm) };
    };
    const live = run();
    expect(live.answers.map((a) => a.fencingToken)).toEqual([1n, 2n]);
    expect(run()).toEqual(live);
  });

  it("is carried by a snapshot, which a state machine configured otherwise restores", () => {
    const driver = new Driver();
    answer(driver, acquire({ lock: 1n, owner: 1n }, 100n), 1000);
    setRetention(driver.sm, { dedupeWindowMs: 123_456, expiredRetentionMs: 7 }, 1001);
    const restored = decodeSnapshot(encodeSnapshot(driver.sm, { lastIndex: 2, lastTerm: 1 }), { ...DEFAULT_SM_CONFIG, ...SHORT });
    if (!restored.ok) throw new Error(restored.reason);
    expect(restored.stateMachine.retention).toEqual({ dedupeWindowMs: 123_456, expiredRetentionMs: 7 });
    expect(stateBytes(restored.stateMachine)).toBe(stateBytes(driver.sm));
  });

  it("reads a version 1 snapshot, which has no settings, with the settings it is read with", () => {
    const driver = new Driver();
    answer(driver, acquire({ lock: 1n, owner: 1n }, 100n), 1000);
    const v2 = encodeSnapshot(driver.sm, { lastIndex: 1, lastTerm: 1 });
    expect(v2.readUInt32BE(8)).toBe(2);
    const body = Buffer.concat([v2.subarray(0, 60), v2.subarray(76, v2.length - 4)]);
    body.writeUInt32BE(1, 8);
    const v1 = Buffer.concat([body, Buffer.alloc(4)]);
    v1.writeUInt32BE(crc32(body), body.length);
    const restored = decodeSnapshot(v1, { ...DEFAULT_SM_CONFIG, ...SHORT });
    if (!restored.ok) throw new Error(restored.reason);
    expect(restored.stateMachine.retention).toEqual(SHORT);
    expect(restored.stateMachine.lockRecordCount).toBe(1);
    expect(restored.stateMachine.dedupeEntryCount).toBe(1);
  });

  it("starts from the defaults, and is not a command a client can send: its frame is invalid (3)", () => {
    expect(new StateMachine({ ...DEFAULT_RETENTION, hashSeed: 1 }).retention).toEqual({ dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 });
    const body = retentionEntry(SHORT);
    body.fill(1, 1, 17);
    expect(body[0]).toBe(SET_RETENTION);
    expect(isWellFormedRequestBody(body, 0, LONG_BODY_BYTES)).toBe(false);
    const driver = new Driver();
    expect(driver.send(Buffer.concat([Buffer.from([0, 0, 0, LONG_BODY_BYTES]), body]), 1000).status).toBe(Status.Invalid);
    expect(driver.sm.retention).toEqual(DEFAULT_RETENTION);
  });
});
