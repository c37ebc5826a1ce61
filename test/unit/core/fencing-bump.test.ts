/**
 * BUMP_FENCING_TOKEN, the log-only command behind `lockd --bump-fencing-token`: it raises the
 * fencing counter, remembers nothing else, replays to the same state, and cannot be sent by a client.
 */
import { describe, expect, it } from "vitest";
import { BUMP_FENCING_TOKEN, MAX_FENCING_TOKEN, StateMachine, writeBumpEntry } from "../../../src/core/state-machine.js";
import { decodeSnapshot, encodeSnapshot } from "../../../src/core/snapshot-codec.js";
import { LONG_BODY_BYTES, RESPONSE_BYTES, Status, decodeResponse, isWellFormedRequestBody } from "../../../src/protocol/index.js";
import { DEFAULT_SM_CONFIG, Driver } from "../../support/state-machine-driver.js";
import { stateBytes } from "../../support/state-bytes.js";
import { acquire } from "../../support/frames.js";

function bumpEntry(amount: number): Buffer {
  const entry = Buffer.alloc(LONG_BODY_BYTES);
  writeBumpEntry(entry, 0, amount);
  return entry;
}

function execute(sm: StateMachine, entry: Buffer, stampMs: number) {
  const reply = Buffer.alloc(RESPONSE_BYTES);
  const status = sm.execute(entry, 0, stampMs, reply, 0, null);
  return { status, reply: decodeResponse(reply, 0) };
}

describe("BUMP_FENCING_TOKEN", () => {
  it("raises the next token by its amount, answers 0 with that token, and adds no dedupe entry", () => {
    const driver = new Driver();
    expect(driver.send(acquire({ lock: 1n, owner: 1n }, 60_000n), 1000).status).toBe(Status.Ok); // token 1
    expect(driver.sm.dedupeEntryCount).toBe(1);
    const bumped = execute(driver.sm, bumpEntry(1000), 1001);
    expect(bumped).toEqual({ status: Status.Ok, reply: { status: Status.Ok, fencingToken: 1002n, expiresAt: 0n } });
    expect(driver.sm.nextFencingToken).toBe(1002);
    expect(driver.sm.dedupeEntryCount).toBe(1);
    const next = decodeResponse(driver.send(acquire({ lock: 2n, owner: 1n }, 60_000n), 1002).reply, 0);
    expect(next.fencingToken).toBe(1002n);
  });

  it("refuses with 3, changing nothing, a bump that would leave no token to grant", () => {
    const sm = new StateMachine(DEFAULT_SM_CONFIG);
    const before = stateBytes(sm);
    const refused = execute(sm, bumpEntry(MAX_FENCING_TOKEN), 1000); // next would be 2^53 - 1
    expect(refused.status).toBe(Status.Invalid);
    expect(stateBytes(sm)).toBe(before);
    expect(execute(sm, bumpEntry(MAX_FENCING_TOKEN - 1), 1000).reply.fencingToken).toBe(BigInt(MAX_FENCING_TOKEN));
    expect(MAX_FENCING_TOKEN).toBe(2 ** 53 - 2);
  });

  it("grants the last token, then answers 6 to every grant, changing nothing; a snapshot still holds the counter", () => {
    const driver = new Driver();
    execute(driver.sm, bumpEntry(MAX_FENCING_TOKEN - 1), 1000); // next token: the last one
    const last = decodeResponse(driver.send(acquire({ lock: 1n, owner: 1n }, 60_000n), 1001).reply, 0);
    expect(last).toMatchObject({ status: Status.Ok, fencingToken: BigInt(MAX_FENCING_TOKEN) });
    const before = stateBytes(driver.sm);
    expect(driver.send(acquire({ lock: 2n, owner: 1n }, 60_000n), 1002).status).toBe(Status.Unavailable);
    expect(stateBytes(driver.sm)).toBe(before);
    // A held lock still answers 1, and the holder can still renew and release.
    expect(driver.send(acquire({ lock: 1n, owner: 2n }, 60_000n), 1003).status).toBe(Status.Held);
    const restored = decodeSnapshot(encodeSnapshot(driver.sm, { lastIndex: 2, lastTerm: 1 }), DEFAULT_SM_CONFIG);
    if (!restored.ok) throw new Error(restored.reason);
    expect(restored.stateMachine.nextFencingToken).toBe(MAX_FENCING_TOKEN + 1);
  });

  it("replays to the same state, and a snapshot taken after it keeps the raised counter", () => {
    const entries = [acquire({ lock: 1n, owner: 1n }, 60_000n), acquire({ lock: 2n, owner: 2n }, 60_000n)];
    const live = new Driver();
    const replayed = new Driver();
    for (const driver of [live, replayed]) {
      driver.send(entries[0]!, 1000);
      execute(driver.sm, bumpEntry(5_000_000), 1001);
      driver.send(entries[1]!, 1002);
    }
    expect(stateBytes(replayed.sm)).toBe(stateBytes(live.sm));
    expect(live.sm.nextFencingToken).toBe(5_000_003);
    const restored = decodeSnapshot(encodeSnapshot(live.sm, { lastIndex: 3, lastTerm: 1 }), DEFAULT_SM_CONFIG);
    if (!restored.ok) throw new Error(restored.reason);
    expect(restored.stateMachine.nextFencingToken).toBe(5_000_003);
  });

  it("is not a command a client can send: its frame is invalid (3)", () => {
    const body = bumpEntry(1000);
    body.fill(1, 1, 17); // a non-zero request id, so the command byte alone decides
    expect(body[0]).toBe(BUMP_FENCING_TOKEN);
    expect(isWellFormedRequestBody(body, 0, LONG_BODY_BYTES)).toBe(false);
    const driver = new Driver();
    const frame = Buffer.concat([Buffer.from([0, 0, 0, LONG_BODY_BYTES]), body]);
    expect(driver.send(frame, 1000).status).toBe(Status.Invalid);
    expect(driver.sm.nextFencingToken).toBe(1);
  });
});
