import { describe, expect, it } from "vitest";
import type { AdmissionLimits, StateMachineConfig } from "../../../src/core/state-machine.js";
import { decodeResponse, Status, type Response } from "../../../src/protocol/index.js";
import { acquire, inspect, release, renew } from "../../support/frames.js";
import { Driver } from "../../support/state-machine-driver.js";
import { stateBytes } from "../../support/state-bytes.js";

const L1 = 0x1001n;
const L2 = 0x1002n;
const L3 = 0x1003n;
const A = 0xa1n;
const B = 0xb2n;

/** A state machine with a readable call per step: `s.at(1000, frame)` answers the decoded response. */
class Script {
  readonly driver: Driver;
  constructor(config: Partial<StateMachineConfig> = {}, capacity: Omit<AdmissionLimits, "maxTtlMs"> | null = null) {
    this.driver = new Driver(config, capacity);
  }
  at(stampMs: number, frame: Buffer): Response {
    return decodeResponse(this.driver.send(frame, stampMs).reply);
  }
  raw(stampMs: number, frame: Buffer): string {
    return this.driver.send(frame, stampMs).reply.toString("hex");
  }
  get sm() {
    return this.driver.sm;
  }
}

const ok = (token: number, expiresAt: number): Response => ({ status: Status.Ok, fencingToken: BigInt(token), expiresAt: BigInt(expiresAt) });
const held = (expiresAt: number): Response => ({ status: Status.Held, fencingToken: 0n, expiresAt: BigInt(expiresAt) });
const expired = (token: number, expiresAt: number): Response => ({ status: Status.Expired, fencingToken: BigInt(token), expiresAt: BigInt(expiresAt) });
const NOT_HELD: Response = { status: Status.NotHeld, fencingToken: 0n, expiresAt: 0n };
const INVALID: Response = { status: Status.Invalid, fencingToken: 0n, expiresAt: 0n };
const UNAVAILABLE: Response = { status: Status.Unavailable, fencingToken: 0n, expiresAt: 0n };

describe("ACQUIRE of a free or expired lock: 0, token = next value of ONE global fencing counter, expires_at = now + ttl", () => {
  it("grants a free lock with token 1 and expires_at = now + ttl", () => {
    const s = new Script();
    expect(s.at(1000, acquire({ lock: L1, owner: A }, 250n))).toEqual(ok(1, 1250));
  });

  it("grants an expired lock to anyone with the next token", () => {
    const s = new Script();
    expect(s.at(1000, acquire({ lock: L1, owner: A }, 100n))).toEqual(ok(1, 1100));
    expect(s.at(1100, acquire({ lock: L1, owner: B }, 100n))).toEqual(ok(2, 1200));
    expect(s.at(1300, acquire({ lock: L1, owner: B }, 100n))).toEqual(ok(3, 1400));
  });

  it("tokens start at 1 and strictly increase across every lock", () => {
    const s = new Script();
    let t = 1000;
    for (let n = 1; n <= 200; n++) {
      const lock = BigInt(n % 7);
      const reply = s.at(t, acquire({ lock, owner: BigInt(n) }, 5n));
      expect(reply).toEqual(ok(n, t + 5));
      t += 5; // each lease has just expired when the next command arrives
    }
    expect(s.sm.nextFencingToken).toBe(201);
  });

  it("treats all-zero lock and owner ids as ordinary ids", () => {
    const s = new Script();
    expect(s.at(10, acquire({ lock: 0n, owner: 0n }, 10n))).toEqual(ok(1, 20));
    expect(s.at(11, inspect({ lock: 0n, owner: 0n }))).toEqual(ok(1, 20));
    expect(s.at(12, acquire({ lock: 0n, owner: A }, 10n))).toEqual(held(20));
    expect(s.at(13, release({ lock: 0n, owner: 0n }))).toEqual(ok(1, 13));
  });
});

describe("ACQUIRE of a held lock (by anyone, the same owner included, with a new request id): 1", () => {
  it("answers 1 with the holder's expiry and token 0, to another owner and to the holder", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 500n));
    expect(s.at(1200, acquire({ lock: L1, owner: B }, 500n))).toEqual(held(1500));
    expect(s.at(1300, acquire({ lock: L1, owner: A }, 500n))).toEqual(held(1500));
    expect(s.sm.nextFencingToken).toBe(2);
  });
});

describe("a lock is held iff it has a holder and expires_at > now", () => {
  it("is held 1 ms before expires_at and free exactly at it", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1099, inspect({ lock: L1, owner: A }))).toEqual(ok(1, 1100));
    expect(s.at(1099, acquire({ lock: L1, owner: B }, 100n))).toEqual(held(1100));
    expect(s.at(1099, renew({ lock: L1, owner: A }, 1n))).toEqual(ok(1, 1100));
    expect(s.at(1100, inspect({ lock: L1, owner: A }))).toEqual(expired(1, 1100));
    expect(s.at(1100, renew({ lock: L1, owner: A }, 100n))).toEqual(expired(1, 1100));
    expect(s.at(1100, acquire({ lock: L1, owner: B }, 100n))).toEqual(ok(2, 1200));
  });

  it("expires without any timer: only the time stamps of later commands matter", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1_000_000, inspect({ lock: L1, owner: B }))).toEqual(NOT_HELD);
  });
});

describe("the logical clock: now = max(previous now, stamp), never going backwards", () => {
  it("treats a stamp lower than before as the previous now", () => {
    const s = new Script();
    expect(s.at(5000, acquire({ lock: L1, owner: A }, 100n))).toEqual(ok(1, 5100));
    expect(s.sm.logicalNowMs).toBe(5000);
    expect(s.at(100, acquire({ lock: L2, owner: A }, 1000n))).toEqual(ok(2, 6000));
    expect(s.sm.logicalNowMs).toBe(5000);
    expect(s.at(5200, inspect({ lock: L1, owner: A }))).toEqual(expired(1, 5100));
    // Going back to before the expiry does not make the lease live again.
    expect(s.at(5050, inspect({ lock: L1, owner: A }))).toEqual(expired(1, 5100));
    expect(s.at(5050, renew({ lock: L2, owner: A }, 10n))).toEqual(ok(2, 5210));
    expect(s.sm.logicalNowMs).toBe(5200);
  });

  it("INSPECT advances the clock too (every logged command carries its stamp)", () => {
    const s = new Script();
    s.at(7000, inspect({ lock: L1, owner: A }));
    expect(s.sm.logicalNowMs).toBe(7000);
  });
});

describe("RENEW by the holder before expiry: 0, same token, expires_at = now + ttl", () => {
  it("keeps the token and moves expires_at to now + ttl, later or earlier", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 1000n));
    expect(s.at(1500, renew({ lock: L1, owner: A }, 5000n))).toEqual(ok(1, 6500));
    expect(s.at(1600, renew({ lock: L1, owner: A }, 10n))).toEqual(ok(1, 1610));
    expect(s.at(1609, acquire({ lock: L1, owner: B }, 10n))).toEqual(held(1610));
    expect(s.at(1610, acquire({ lock: L1, owner: B }, 10n))).toEqual(ok(2, 1620));
  });
});

describe("RELEASE by the holder before expiry: 0, the released token, expires_at = now", () => {
  it("answers the released token and now, and frees the lock at once", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 1000n));
    expect(s.at(1200, release({ lock: L1, owner: A }))).toEqual(ok(1, 1200));
    expect(s.at(1200, acquire({ lock: L1, owner: B }, 100n))).toEqual(ok(2, 1300));
  });

  it("forgets a released lock at once: its last holder then gets 2, not 5", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 1000n));
    s.at(1200, release({ lock: L1, owner: A }, true));
    expect(s.sm.lockRecordCount).toBe(0);
    expect(s.at(1300, release({ lock: L1, owner: A }))).toEqual(NOT_HELD);
    expect(s.at(1300, renew({ lock: L1, owner: A }, 10n))).toEqual(NOT_HELD);
    expect(s.at(1300, inspect({ lock: L1, owner: A }))).toEqual(NOT_HELD);
  });
});

describe("RENEW/RELEASE when another owner holds it, or it is free and this owner was not its last holder: 2", () => {
  it("answers 2 for a lock never acquired", () => {
    const s = new Script();
    expect(s.at(1000, renew({ lock: L1, owner: A }, 10n))).toEqual(NOT_HELD);
    expect(s.at(1000, release({ lock: L1, owner: A }))).toEqual(NOT_HELD);
    expect(s.sm.lockRecordCount).toBe(0);
  });

  it("answers 2 while another owner holds it, and changes nothing", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 1000n));
    expect(s.at(1100, renew({ lock: L1, owner: B }, 5000n))).toEqual(NOT_HELD);
    expect(s.at(1100, release({ lock: L1, owner: B }))).toEqual(NOT_HELD);
    expect(s.at(1100, inspect({ lock: L1, owner: A }))).toEqual(ok(1, 2000));
  });

  it("answers 2 to another owner once the lease expired", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1200, renew({ lock: L1, owner: B }, 10n))).toEqual(NOT_HELD);
    expect(s.at(1200, release({ lock: L1, owner: B }))).toEqual(NOT_HELD);
  });
});

describe("when this owner's lease expired and nobody acquired since: 5 with that lease's token and expiry", () => {
  it("answers 5 to RENEW, RELEASE and INSPECT by the expired owner", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1500, renew({ lock: L1, owner: A }, 100n))).toEqual(expired(1, 1100));
    expect(s.at(1500, release({ lock: L1, owner: A }))).toEqual(expired(1, 1100));
    expect(s.at(1500, release({ lock: L1, owner: A }, true))).toEqual(expired(1, 1100));
    expect(s.at(1500, inspect({ lock: L1, owner: A }))).toEqual(expired(1, 1100));
  });

  it("an answer 5 changes nothing: a new request id answers 5 again, and the lock stays free for others", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    for (let n = 0; n < 3; n++) expect(s.at(1500 + n, release({ lock: L1, owner: A }))).toEqual(expired(1, 1100));
    for (let n = 0; n < 3; n++) expect(s.at(1600 + n, renew({ lock: L1, owner: A }, 100n))).toEqual(expired(1, 1100));
    expect(s.sm.nextFencingToken).toBe(2);
    expect(s.at(1700, inspect({ lock: L1, owner: B }))).toEqual(NOT_HELD);
    expect(s.at(1700, acquire({ lock: L1, owner: B }, 100n))).toEqual(ok(2, 1800));
  });

  it("answers 2 after someone acquired since, even once that lease expired too", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    s.at(1200, acquire({ lock: L1, owner: B }, 100n));
    expect(s.at(1250, renew({ lock: L1, owner: A }, 100n))).toEqual(NOT_HELD);
    expect(s.at(1400, release({ lock: L1, owner: A }))).toEqual(NOT_HELD);
    expect(s.at(1400, inspect({ lock: L1, owner: B }))).toEqual(expired(2, 1300));
  });

  it("ACQUIRE of its expired lock by the former owner is a new lease with the next token", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1200, acquire({ lock: L1, owner: A }, 100n))).toEqual(ok(2, 1300));
  });
});

describe("an expired lease is remembered for the expired retention after its expiry, then its owner gets 2", () => {
  it("answers 5 until expires_at + retention, 2 from then on", () => {
    const s = new Script({ expiredRetentionMs: 5000 });
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(6099, inspect({ lock: L1, owner: A }))).toEqual(expired(1, 1100));
    expect(s.sm.lockRecordCount).toBe(1);
    expect(s.at(6100, inspect({ lock: L1, owner: A }))).toEqual(NOT_HELD);
    expect(s.at(6100, renew({ lock: L1, owner: A }, 10n))).toEqual(NOT_HELD);
    expect(s.sm.lockRecordCount).toBe(0);
  });

  it("a renewal moves the retention with the new expiry", () => {
    const s = new Script({ expiredRetentionMs: 1000 });
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    s.at(1050, renew({ lock: L1, owner: A }, 2000n));
    expect(s.at(4049, release({ lock: L1, owner: A }))).toEqual(expired(1, 3050));
    expect(s.at(4050, release({ lock: L1, owner: A }))).toEqual(NOT_HELD);
  });

  it("with a retention of 0 the owner gets 2 as soon as the lease expires", () => {
    const s = new Script({ expiredRetentionMs: 0 });
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1100, renew({ lock: L1, owner: A }, 100n))).toEqual(NOT_HELD);
  });

  it("memory follows live records: 1000 expired leases are pruned as time advances", () => {
    const s = new Script({ expiredRetentionMs: 10, dedupeWindowMs: 10 });
    for (let n = 0; n < 1000; n++) s.at(1000, acquire({ lock: BigInt(n), owner: A }, 5n));
    expect(s.sm.lockRecordCount).toBe(1000);
    for (let n = 0; n < 200; n++) s.at(2000 + n, release({ lock: L1, owner: B })); // 2, remembered for 10 ms
    expect(s.sm.lockRecordCount).toBe(0);
    expect(s.sm.dedupeEntryCount).toBe(10); // the answers of 2190..2199
  });

  it("read-only commands (INSPECT, a retry answered from memory) move the clock and prune nothing", () => {
    const first = acquire({ lock: L1, owner: A, request: 0x7777_7777n }, 5n);
    /** 1000 leases granted at 1000 that expire at 1005, `first` among them. */
    const withExpiringLeases = () => {
      const script = new Script({ expiredRetentionMs: 10, dedupeWindowMs: 10_000 });
      script.at(1000, first);
      for (let n = 1; n < 1000; n++) script.at(1000, acquire({ lock: BigInt(n + 100), owner: A, request: BigInt(0x10000 + n) }, 5n));
      return script;
    };
    const s = withExpiringLeases();
    const before = stateBytes(s.sm);
    for (let n = 0; n < 100; n++) {
      s.at(2000 + n, inspect({ lock: L1, owner: B }));
      expect(s.sm.lastWasReadOnly).toBe(true);
      expect(s.at(2000 + n, first)).toEqual(ok(1, 1005));
      expect(s.sm.lastWasReadOnly).toBe(true);
    }
    expect(s.sm.logicalNowMs).toBe(2099);
    expect(s.sm.lockRecordCount).toBe(1000);
    // Only the clock moved, so a replay that leaves them out reaches the same state from a later entry.
    const replay = withExpiringLeases();
    expect(stateBytes(replay.sm)).toBe(before);
    const change = release({ lock: L2, owner: B, request: 0x8888_8888n });
    s.at(3000, change);
    expect(s.sm.lastWasReadOnly).toBe(false);
    replay.at(3000, change);
    expect(stateBytes(replay.sm)).toBe(stateBytes(s.sm));
  });
});

describe("INSPECT changes nothing: 0 held by this owner, 1 held by another, 2 free, 5 as above", () => {
  it("answers every case and leaves state, tokens and the dedupe table alone", () => {
    const s = new Script();
    expect(s.at(1000, inspect({ lock: L1, owner: A }))).toEqual(NOT_HELD);
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    const entries = s.sm.dedupeEntryCount;
    expect(s.at(1010, inspect({ lock: L1, owner: A }))).toEqual(ok(1, 1100));
    expect(s.at(1010, inspect({ lock: L1, owner: B }, true))).toEqual(held(1100));
    expect(s.at(1100, inspect({ lock: L1, owner: A }, true))).toEqual(expired(1, 1100));
    expect(s.at(1100, inspect({ lock: L1, owner: B }))).toEqual(NOT_HELD);
    expect(s.sm.dedupeEntryCount).toBe(entries);
    expect(s.sm.nextFencingToken).toBe(2);
    expect(s.sm.lockRecordCount).toBe(1);
    expect(s.at(1100, inspect({ lock: L2, owner: A }))).toEqual(NOT_HELD);
    expect(s.sm.lockRecordCount).toBe(1);
  });
});

describe("idempotency: a request id processed within the dedupe window gets the byte-identical original response", () => {
  it("replays the original answer of every command after the lock changed, and changes nothing", () => {
    const s = new Script();
    const first = acquire({ lock: L1, owner: A, request: 101n }, 100n);
    const refused = acquire({ lock: L1, owner: B, request: 102n }, 100n);
    const renewed = renew({ lock: L1, owner: A, request: 103n }, 200n);
    const stranger = renew({ lock: L1, owner: B, request: 104n }, 200n);
    const released = release({ lock: L1, owner: A, request: 105n });
    const answers = [s.raw(1000, first), s.raw(1010, refused), s.raw(1020, renewed), s.raw(1030, stranger), s.raw(1040, released)];
    s.at(1050, acquire({ lock: L1, owner: B }, 1000n));
    const gone = release({ lock: L2, owner: A, request: 106n });
    s.at(1060, acquire({ lock: L2, owner: A }, 10n));
    const lapsed = s.raw(1100, gone);
    expect(lapsed).toBe(decodedHex(expired(3, 1070)));
    const tokenBefore = s.sm.nextFencingToken;
    const inspectBefore = s.raw(1200, inspect({ lock: L1, owner: B }));
    expect([s.raw(1300, first), s.raw(1300, refused), s.raw(1300, renewed), s.raw(1300, stranger), s.raw(1300, released)]).toEqual(answers);
    s.at(1300, acquire({ lock: L2, owner: B }, 10n));
    expect(s.raw(1400, gone)).toBe(lapsed);
    expect(s.sm.nextFencingToken).toBe(tokenBefore + 1);
    expect(s.raw(1400, inspect({ lock: L1, owner: B }))).toBe(inspectBefore);
  });

  it("answers 3 to the same request id with a different cmd, lock, owner or ttl, and keeps the original", () => {
    const s = new Script();
    const original = acquire({ lock: L1, owner: A, request: 7n }, 100n);
    const answer = s.raw(1000, original);
    expect(s.at(1001, acquire({ lock: L1, owner: A, request: 7n }, 101n))).toEqual(INVALID);
    expect(s.at(1002, renew({ lock: L1, owner: A, request: 7n }, 100n))).toEqual(INVALID);
    expect(s.at(1003, release({ lock: L1, owner: A, request: 7n }))).toEqual(INVALID);
    expect(s.at(1004, acquire({ lock: L2, owner: A, request: 7n }, 100n))).toEqual(INVALID);
    expect(s.at(1005, acquire({ lock: L1, owner: B, request: 7n }, 100n))).toEqual(INVALID);
    expect(s.raw(1006, original)).toBe(answer);
    expect(s.sm.lockRecordCount).toBe(1);
    expect(s.sm.nextFencingToken).toBe(2);
  });

  it("replays a remembered answer whose ttl is above a maximum lowered since; a new request above it gets 3 and changes nothing", () => {
    const s = new Script();
    const acquired = acquire({ lock: L1, owner: A, request: 21n }, 5000n);
    const renewed = renew({ lock: L1, owner: A, request: 22n }, 6000n);
    const answers = [s.raw(1000, acquired), s.raw(1100, renewed)];
    expect(answers.map((hex) => decodeResponse(Buffer.from(hex, "hex")))).toEqual([ok(1, 6000), ok(1, 7100)]);
    s.driver.setMaxTtl(1000); // as a restart with a smaller --max-ttl would
    expect([s.raw(1200, acquired), s.raw(1200, renewed)]).toEqual(answers);
    expect(s.sm.logicalNowMs).toBe(1200);
    // Not remembered: 3 before any lock is looked at, and not even the clock moves.
    expect(s.at(1300, renew({ lock: L1, owner: A, request: 23n }, 1001n))).toEqual(INVALID);
    expect(s.at(1300, acquire({ lock: L2, owner: A, request: 24n }, 1001n))).toEqual(INVALID);
    expect(s.sm.logicalNowMs).toBe(1200);
    expect(s.sm.lockRecordCount).toBe(1);
    expect(s.sm.nextFencingToken).toBe(2);
    expect(s.sm.dedupeEntryCount).toBe(2);
    // A retry with other parameters is still 3, and the bound itself is accepted.
    expect(s.at(1400, renew({ lock: L1, owner: A, request: 22n }, 1000n))).toEqual(INVALID);
    expect(s.at(1400, renew({ lock: L1, owner: A, request: 25n }, 1000n))).toEqual(ok(1, 2400));
  });

  it("answers 3 to an ACQUIRE or RENEW whose lease would end past 2^53 - 1 ms, and changes nothing", () => {
    const s = new Script({}, null);
    s.driver.setMaxTtl(3_155_760_000_000);
    const latest = Number.MAX_SAFE_INTEGER;
    const at = latest - 5000;
    expect(s.at(at, acquire({ lock: L1, owner: A, request: 31n }, 5000n))).toEqual(ok(1, latest));
    expect(s.at(at + 1, acquire({ lock: L2, owner: A, request: 32n }, 5000n))).toEqual(INVALID);
    expect(s.at(at + 1, renew({ lock: L1, owner: A, request: 33n }, 5000n))).toEqual(INVALID);
    expect(s.sm.logicalNowMs).toBe(at);
    expect(s.sm.lockRecordCount).toBe(1);
    expect(s.sm.nextFencingToken).toBe(2);
    expect(s.at(at + 1, renew({ lock: L1, owner: A, request: 34n }, 4999n))).toEqual(ok(1, latest));
    // At the latest time itself a lease can only be released, which answers that time.
    expect(s.at(latest, acquire({ lock: L2, owner: B, request: 35n }, 1n))).toEqual(INVALID);
    expect(s.at(latest - 1, release({ lock: L1, owner: A, request: 36n }))).toEqual(ok(1, latest - 1));
  });

  it("the 49- and 57-byte forms of one RELEASE are the same request", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    const short = release({ lock: L1, owner: A, request: 9n });
    const long = release({ lock: L1, owner: A, request: 9n }, true);
    long.writeBigUInt64BE(0xfeedn, 4 + 49); // the trailer is not a parameter
    const answer = s.raw(1010, short);
    expect(s.raw(1020, long)).toBe(answer);
    const s2 = new Script();
    s2.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s2.raw(1010, long)).toBe(answer);
    expect(s2.raw(1020, short)).toBe(answer);
  });

  it("INSPECT is never recorded: it answers from current state, and its id serves a later request", () => {
    const s = new Script();
    const look = inspect({ lock: L1, owner: A, request: 50n });
    expect(s.at(1000, look)).toEqual(NOT_HELD);
    expect(s.sm.dedupeEntryCount).toBe(0);
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(1010, look)).toEqual(ok(1, 1100));
    expect(s.at(1020, acquire({ lock: L2, owner: A, request: 50n }, 100n))).toEqual(ok(2, 1120));
  });

  it("INSPECT reusing a recorded request id: 3", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A, request: 60n }, 100n));
    expect(s.at(1010, inspect({ lock: L1, owner: A, request: 60n }))).toEqual(INVALID);
    expect(s.at(1010, inspect({ lock: L1, owner: A, request: 60n }, true))).toEqual(INVALID);
  });

  it("records the answers 0, 1, 2 and 5 of ACQUIRE, RENEW and RELEASE, and only those", () => {
    const s = new Script();
    s.at(1000, acquire({ lock: L1, owner: A }, 100n)); // 0
    s.at(1000, acquire({ lock: L1, owner: B }, 100n)); // 1
    s.at(1000, renew({ lock: L1, owner: B }, 100n)); // 2
    s.at(1200, release({ lock: L1, owner: A })); // 5
    s.at(1200, inspect({ lock: L1, owner: A }));
    s.at(1200, acquire({ lock: L1, owner: A, request: 1n }, 0n)); // 3 by validation
    s.at(1200, acquire({ lock: L1, owner: A, request: 2n }, 0n));
    expect(s.sm.dedupeEntryCount).toBe(4);
  });

  it("an answer 3 is never recorded: its request id serves a valid request afterwards", () => {
    const s = new Script();
    expect(s.at(1000, acquire({ lock: L1, owner: A, request: 70n }, 0n))).toEqual(INVALID);
    expect(s.at(1000, acquire({ lock: L1, owner: A, request: 70n }, 3_600_001n))).toEqual(INVALID);
    expect(s.at(1000, renew({ lock: L1, owner: A, request: 70n }, 0n))).toEqual(INVALID);
    expect(s.at(1000, acquire({ lock: L1, owner: A, request: 70n }, 3_600_000n))).toEqual(ok(1, 3_601_000));
  });

  it("an entry lives the dedupe window from when it was first processed, with no refresh by retries", () => {
    const s = new Script({ dedupeWindowMs: 5000 });
    const first = acquire({ lock: L1, owner: A, request: 80n }, 100n);
    const answer = s.raw(1000, first);
    s.at(1050, release({ lock: L1, owner: A }));
    expect(s.raw(3000, first)).toBe(answer);
    expect(s.raw(5999, first)).toBe(answer);
    expect(s.at(6000, first)).toEqual(ok(2, 6100)); // processed anew
    expect(s.at(6050, first)).toEqual(ok(2, 6100)); // and recorded anew
  });
});

describe("capacity limits: 6, which changes nothing and is never recorded", () => {
  it("max locks: ACQUIRE of a lock with no record when full answers 6; the id is served later", () => {
    const s = new Script({ expiredRetentionMs: 1000 }, { maxLocks: 2, maxDedupeEntries: 1000 });
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    s.at(1000, acquire({ lock: L2, owner: A }, 100n));
    const third = acquire({ lock: L3, owner: A, request: 90n }, 100n);
    expect(s.at(1010, third)).toEqual(UNAVAILABLE);
    expect(s.sm.nextFencingToken).toBe(3);
    expect(s.sm.lockRecordCount).toBe(2);
    // Expired records still remembered count towards the limit.
    expect(s.at(1500, third)).toEqual(UNAVAILABLE);
    // A lock that has a record may be acquired when full.
    expect(s.at(1500, acquire({ lock: L1, owner: B }, 100n))).toEqual(ok(3, 1600));
    // RENEW, RELEASE and INSPECT create no record and are served.
    expect(s.at(1500, release({ lock: L1, owner: B }))).toEqual(ok(3, 1500));
    expect(s.at(1500, third)).toEqual(ok(4, 1600));
  });

  it("max locks: forgotten records make room again", () => {
    const s = new Script({ expiredRetentionMs: 1000 }, { maxLocks: 1, maxDedupeEntries: 1000 });
    s.at(1000, acquire({ lock: L1, owner: A }, 100n));
    expect(s.at(2099, acquire({ lock: L2, owner: A }, 100n))).toEqual(UNAVAILABLE);
    expect(s.at(2100, acquire({ lock: L2, owner: A }, 100n))).toEqual(ok(2, 2200));
  });

  it("max dedupe entries: ACQUIRE, RENEW and RELEASE answer 6 when full; INSPECT and retries are still served", () => {
    const s = new Script({ dedupeWindowMs: 1000 }, { maxLocks: 100, maxDedupeEntries: 2 });
    const first = acquire({ lock: L1, owner: A, request: 1n }, 5000n);
    const answer = s.raw(1000, first);
    s.at(1100, acquire({ lock: L2, owner: A, request: 2n }, 5000n));
    expect(s.at(1200, acquire({ lock: L3, owner: A, request: 3n }, 100n))).toEqual(UNAVAILABLE);
    expect(s.at(1200, renew({ lock: L1, owner: A, request: 3n }, 100n))).toEqual(UNAVAILABLE);
    expect(s.at(1200, release({ lock: L1, owner: A, request: 3n }))).toEqual(UNAVAILABLE);
    expect(s.at(1200, inspect({ lock: L1, owner: A }))).toEqual(ok(1, 6000));
    expect(s.raw(1200, first)).toBe(answer);
    expect(s.sm.nextFencingToken).toBe(3);
    expect(s.sm.dedupeEntryCount).toBe(2);
    // Once the oldest entry leaves its window, the same request id is served.
    expect(s.at(2000, release({ lock: L1, owner: A, request: 3n }))).toEqual(ok(1, 2000));
  });

  it("a full table answers 6 only to a request that passes validation: a malformed one still gets 3", () => {
    const s = new Script({}, { maxLocks: 1, maxDedupeEntries: 1 });
    s.at(1000, acquire({ lock: L1, owner: A, request: 1n }, 5000n));
    expect(s.at(1100, acquire({ lock: L2, owner: A, request: 2n }, 0n))).toEqual(INVALID);
    expect(s.at(1100, acquire({ lock: L2, owner: A, request: 2n }, 3_600_001n))).toEqual(INVALID);
    expect(s.at(1100, renew({ lock: L1, owner: A, request: 1n }, 5000n))).toEqual(INVALID); // a remembered id, other parameters
    expect(s.at(1100, acquire({ lock: L2, owner: A, request: 2n }, 100n))).toEqual(UNAVAILABLE);
  });

  it("ACQUIRE of a held lock: 1 with the lock table full, 6 with the dedupe table full (its 1 must be remembered)", () => {
    const locksFull = new Script({}, { maxLocks: 1, maxDedupeEntries: 1000 });
    locksFull.at(1000, acquire({ lock: L1, owner: A }, 5000n));
    expect(locksFull.at(1100, acquire({ lock: L1, owner: B }, 100n))).toEqual(held(6000));
    expect(locksFull.at(1100, acquire({ lock: L2, owner: B }, 100n))).toEqual(UNAVAILABLE);
    const answersFull = new Script({}, { maxLocks: 1000, maxDedupeEntries: 1 });
    answersFull.at(1000, acquire({ lock: L1, owner: A }, 5000n));
    expect(answersFull.at(1100, acquire({ lock: L1, owner: B }, 100n))).toEqual(UNAVAILABLE);
  });

  it("without limits (replay) nothing answers 6", () => {
    const s = new Script({}, null);
    for (let n = 0; n < 100; n++) expect(s.at(1000, acquire({ lock: BigInt(n), owner: A }, 100n)).status).toBe(Status.Ok);
  });
});

function decodedHex(r: Response): string {
  const bytes = Buffer.alloc(17);
  bytes[0] = r.status;
  bytes.writeBigUInt64BE(r.fencingToken, 1);
  bytes.writeBigUInt64BE(r.expiresAt, 9);
  return bytes.toString("hex");
}
