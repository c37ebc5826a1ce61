/**
 * decodeSnapshot sizes the tables for the log about to be replayed after it. That room is layout
 * only: a machine loaded with room for millions of entries must answer and snapshot byte for byte
 * like one loaded without, through the replay and the table growth after it.
 */
import { describe, expect, it } from "vitest";
import { decodeSnapshot, encodeSnapshot } from "../../../src/core/snapshot-codec.js";
import type { StateMachine } from "../../../src/core/state-machine.js";
import { Command, encodeRequest, RESPONSE_BYTES } from "../../../src/protocol/index.js";
import { DEFAULT_SM_CONFIG, Driver, entryOf } from "../../support/state-machine-driver.js";
import { seededRandom, type SeededRandom } from "../../support/seeded-random.js";
import { u128 } from "../../support/frames.js";

function randomEntry(random: SeededRandom): Buffer {
  const frame = encodeRequest({
    command: random.pick([Command.Acquire, Command.Acquire, Command.Renew, Command.Release]),
    // Mostly fresh request ids (the table fills), with some retries and reuses.
    requestId: u128(BigInt(random.int(1, 1_000_000))),
    lockId: u128(BigInt(random.int(0, 2_000))),
    ownerId: u128(BigInt(random.int(0, 3))),
    ttlMs: BigInt(random.int(1, 3_000)),
  });
  return entryOf(frame.subarray(4));
}

function answersOf(sm: StateMachine, entries: readonly Buffer[], startMs: number): string {
  const reply = Buffer.alloc(RESPONSE_BYTES);
  let out = "";
  entries.forEach((entry, i) => {
    sm.execute(entry, 0, startMs + i, reply, 0, null);
    out += reply.toString("hex");
  });
  return out;
}

describe("room reserved when loading a snapshot", () => {
  it("changes no answer and no snapshot byte", () => {
    const random = seededRandom("snapshot room");
    const config = { ...DEFAULT_SM_CONFIG, dedupeWindowMs: 60_000, expiredRetentionMs: 1_000 };
    const origin = new Driver(config);
    let stampMs = 1_000;
    for (let i = 0; i < 20_000; i++) origin.sm.execute(randomEntry(random), 0, (stampMs += random.int(0, 1)), Buffer.alloc(RESPONSE_BYTES), 0, null);
    const position = { lastIndex: 20_000, lastTerm: 1 };
    const snapshot = encodeSnapshot(origin.sm, position);

    const plain = decodeSnapshot(snapshot, config);
    const roomy = decodeSnapshot(snapshot, config, position.lastIndex + 3_000_000);
    if (!plain.ok || !roomy.ok) throw new Error(`seed ${random.seed}: snapshot did not load`);
    expect(encodeSnapshot(roomy.stateMachine, position).equals(snapshot)).toBe(true);
    expect(plain.stateMachine.dedupeEntryCount).toBeGreaterThan(1_000);

    // The same further commands: enough to grow the plain machine's tables, not the roomy one's.
    const more = Array.from({ length: 40_000 }, () => randomEntry(random));
    const loaded = plain.stateMachine.dedupeEntryCount;
    expect(answersOf(roomy.stateMachine, more, stampMs)).toBe(answersOf(plain.stateMachine, more, stampMs));
    expect(plain.stateMachine.dedupeEntryCount).toBeGreaterThan(2 * loaded);
    const after = { lastIndex: 60_000, lastTerm: 1 };
    expect(encodeSnapshot(roomy.stateMachine, after).equals(encodeSnapshot(plain.stateMachine, after))).toBe(true);
  });
});
