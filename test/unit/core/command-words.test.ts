/**
 * The server hands the state machine a command as words read while copying it into the log batch
 * (copyCommand + executeWords); recovery replays the logged bytes (execute). Both must be the same
 * command: the same bytes in the log, the same answers, the same state.
 */
import { describe, expect, it } from "vitest";
import { COMMAND_WORDS, copyCommand, readCommandWords } from "../../../src/core/command-words.js";
import { readWord } from "../../../src/core/hash.js";
import { encodeSnapshot } from "../../../src/core/snapshot-codec.js";
import { StateMachine } from "../../../src/core/state-machine.js";
import { Command, LENGTH_PREFIX_BYTES, LONG_BODY_BYTES, SHORT_BODY_BYTES, encodeRequest } from "../../../src/protocol/index.js";
import { seededRandom, type SeededRandom } from "../../support/seeded-random.js";
import { u128 } from "../../support/frames.js";

function randomBody(random: SeededRandom): Buffer {
  const command = random.pick([Command.Acquire, Command.Acquire, Command.Renew, Command.Release, Command.Inspect]);
  const frame = encodeRequest({
    command,
    requestId: u128(BigInt(random.int(1, 5_000)) << BigInt(random.int(0, 100))),
    lockId: u128(BigInt(random.int(0, 300)) * 0x1_0000_0001n),
    ownerId: u128(BigInt(random.int(0, 3)) << 120n),
    ttlMs: BigInt(random.int(1, 5_000)),
    longForm: random.next() < 0.3,
  });
  return frame.subarray(LENGTH_PREFIX_BYTES);
}

/** What the pipeline logs for a body: 57 bytes, the ttl of a short or RELEASE/INSPECT form zeroed. */
function loggedEntry(body: Buffer): Buffer {
  const entry = Buffer.alloc(LONG_BODY_BYTES);
  const takesTtl = body[0] === Command.Acquire || body[0] === Command.Renew;
  body.copy(entry, 0, 0, takesTtl ? LONG_BODY_BYTES : SHORT_BODY_BYTES);
  return entry;
}

describe("copyCommand", () => {
  it("writes the entry the log keeps and reads the same words as the entry's bytes give", () => {
    const random = seededRandom("copyCommand");
    const target = Buffer.alloc(8 + LONG_BODY_BYTES);
    const view = new DataView(target.buffer, target.byteOffset, target.length);
    const words = new Int32Array(COMMAND_WORDS);
    for (let n = 0; n < 2_000; n++) {
      const body = randomBody(random);
      const takesTtl = body[0] === Command.Acquire || body[0] === Command.Renew;
      const copied = takesTtl ? LONG_BODY_BYTES : SHORT_BODY_BYTES;
      target.fill(0xee); // leftovers of an earlier batch must not leak into the ttl of a short form
      const at = random.int(0, 8);
      const from = Buffer.concat([Buffer.alloc(3, 0x55), body]); // the body need not start a buffer
      copyCommand(new DataView(from.buffer, from.byteOffset, from.length), 3, copied, view, at, words);
      const expected = loggedEntry(body);
      expect(target.subarray(at, at + LONG_BODY_BYTES).equals(expected), `seed ${random.seed} step ${n}`).toBe(true);
      for (let k = 0; k < COMMAND_WORDS; k++) expect(words[k]).toBe(readWord(expected, 1 + 4 * k));
      const reread = new Int32Array(COMMAND_WORDS);
      readCommandWords(expected, 0, reread);
      expect(reread).toEqual(words);
    }
  });
});

describe("executeWords is execute", () => {
  it("gives the same answers and ends in the same state over a seeded stream of commands", () => {
    const random = seededRandom("executeWords");
    const config = { dedupeWindowMs: 2_000, expiredRetentionMs: 500, hashSeed: 99 };
    const live = new StateMachine(config);
    const replay = new StateMachine(config);
    const words = new Int32Array(COMMAND_WORDS);
    const scratch = Buffer.alloc(LONG_BODY_BYTES);
    const view = new DataView(scratch.buffer, scratch.byteOffset, scratch.length);
    const liveAnswer = Buffer.alloc(17);
    const replayAnswer = Buffer.alloc(17);
    let stampMs = 1_000;
    const statuses = new Set<number>();
    for (let n = 0; n < 20_000; n++) {
      stampMs += random.int(0, 5);
      const body = randomBody(random);
      const takesTtl = body[0] === Command.Acquire || body[0] === Command.Renew;
      copyCommand(new DataView(body.buffer, body.byteOffset, body.length), 0, takesTtl ? LONG_BODY_BYTES : SHORT_BODY_BYTES, view, 0, words);
      const status = live.executeWords(body[0]!, words, stampMs, liveAnswer, 0, null);
      replay.execute(loggedEntry(body), 0, stampMs, replayAnswer, 0, null);
      expect(replayAnswer.equals(liveAnswer), `seed ${random.seed} step ${n}`).toBe(true);
      expect(status).toBe(liveAnswer[0]);
      statuses.add(status);
    }
    expect([...statuses].sort()).toEqual([0, 1, 2, 3, 5]);
    const position = { lastIndex: 20_000, lastTerm: 1 };
    expect(encodeSnapshot(live, position).equals(encodeSnapshot(replay, position))).toBe(true);
  });
});
