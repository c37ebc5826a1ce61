/**
 * Random command sequences against the StateMachine and against a naive reference model written
 * from the protocol text with plain Maps: every answer must be byte-identical. Replay: the logged
 * commands (answers other than 3 and 6) executed again on a fresh machine give the same answers.
 * Some runs lower the maximum ttl part way, as a restart with a smaller --max-ttl would.
 *
 * fast-check prints the seed and path of a failing run; BATON_SEED=<n> replays a whole run.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AdmissionLimits } from "../../../src/core/state-machine.js";
import { Command, encodeRequest, RESPONSE_BYTES } from "../../../src/protocol/index.js";
import { Driver } from "../../support/state-machine-driver.js";
import { testSeed } from "../../support/seeded-random.js";
import { u128 } from "../../support/frames.js";

const MAX_TTL_MS = 1000;
/** The maximum ttl after a run lowers it: below many of the ttls drawn, so remembered ones exceed it. */
const LOWERED_MAX_TTL_MS = 3;
const NUM_RUNS = 300;
const seed = Number(testSeed("state machine vs reference model")) | 0;

interface Op {
  readonly cmd: Command;
  /** 0 is the invalid all-zero request id. */
  readonly request: number;
  readonly lock: number;
  readonly owner: number;
  readonly ttlMs: number;
  /** RELEASE/INSPECT: send the 57-byte form with this trailer. */
  readonly trailer: number | null;
  /** Added to the previous stamp: may be 0 or negative (a clock that stands still or goes back). */
  readonly stepMs: number;
  /**
   * Resend an earlier op's exact frame instead (a client's retry): the one this many ops back, counted
   * modulo the ops so far. Random fields rarely repeat a request exactly, so without these few
   * remembered answers would ever be replayed.
   */
  readonly retryOf: number | null;
}

interface Setup {
  readonly dedupeWindowMs: number;
  readonly expiredRetentionMs: number;
  readonly limits: Omit<AdmissionLimits, "maxTtlMs"> | null;
  /** From this op on, the maximum ttl is LOWERED_MAX_TTL_MS; null: never lowered. */
  readonly lowerMaxTtlAt: number | null;
}

function frameOf(op: Op): Buffer {
  const long = op.trailer !== null && (op.cmd === Command.Release || op.cmd === Command.Inspect);
  const frame = encodeRequest({
    command: op.cmd,
    requestId: u128(BigInt(op.request)),
    lockId: u128(BigInt(op.lock)),
    ownerId: u128(BigInt(op.owner)),
    ttlMs: BigInt(op.ttlMs),
    longForm: long,
  });
  if (long) frame.writeBigUInt64BE(BigInt(op.trailer!), 4 + 49);
  return frame;
}

// ---- the reference model: the protocol's rules, as plainly as possible ----

interface ModelLock { owner: number; token: number; expiresAt: number }
interface ModelEntry { key: string; answer: string; at: number }

class Model {
  private now = 0;
  private nextToken = 1;
  private readonly locks = new Map<number, ModelLock>();
  private readonly dedupe = new Map<number, ModelEntry>();

  constructor(private readonly setup: Setup) {}

  apply(op: Op, stamp: number, maxTtlMs: number): string {
    const { dedupeWindowMs: window, expiredRetentionMs: retention, limits } = this.setup;
    const takesTtl = op.cmd === Command.Acquire || op.cmd === Command.Renew;
    if (op.request === 0 || (takesTtl && op.ttlMs < 1)) return answer(3, 0, 0);
    const now = Math.max(this.now, stamp);
    const key = `${op.cmd}/${op.lock}/${op.owner}/${takesTtl ? op.ttlMs : ""}`;
    const seen = this.dedupe.get(op.request);
    if (seen !== undefined && seen.at + window > now) {
      if (op.cmd === Command.Inspect || seen.key !== key) return answer(3, 0, 0);
      this.now = now;
      return seen.answer;
    }
    // The maximum ttl is checked after the remembered ids: a retry keeps its answer when it is lowered.
    if (takesTtl && op.ttlMs > maxTtlMs) return answer(3, 0, 0);
    // A record is remembered until its expiry plus the retention; the model never prunes, it only looks.
    const visible = (record: ModelLock | undefined) => record !== undefined && record.expiresAt + retention > now;
    const stored = this.locks.get(op.lock);
    const lock = visible(stored) ? stored : undefined;
    const live = lock !== undefined && lock.expiresAt > now;
    const mine = lock !== undefined && lock.owner === op.owner;
    let reply: string;
    if (op.cmd === Command.Inspect) {
      if (mine) reply = answer(live ? 0 : 5, lock.token, lock.expiresAt);
      else reply = live ? answer(1, 0, lock!.expiresAt) : answer(2, 0, 0);
      this.now = now;
      return reply;
    }
    // A capacity check moves the clock to `now` even when it answers 6 (the state machine prunes at `now`).
    const liveEntries = [...this.dedupe.values()].filter((e) => e.at + window > now).length;
    if (limits !== null && liveEntries >= limits.maxDedupeEntries) {
      this.now = now;
      return answer(6, 0, 0);
    }
    if (op.cmd === Command.Acquire) {
      if (live) reply = answer(1, 0, lock.expiresAt);
      else if (lock === undefined && limits !== null && [...this.locks.values()].filter(visible).length >= limits.maxLocks) {
        this.now = now;
        return answer(6, 0, 0);
      }
      else {
        const granted = { owner: op.owner, token: this.nextToken++, expiresAt: now + op.ttlMs };
        this.locks.set(op.lock, granted);
        reply = answer(0, granted.token, granted.expiresAt);
      }
    } else if (!mine) reply = answer(2, 0, 0);
    else if (!live) reply = answer(5, lock.token, lock.expiresAt);
    else if (op.cmd === Command.Renew) {
      lock.expiresAt = now + op.ttlMs;
      reply = answer(0, lock.token, lock.expiresAt);
    } else {
      this.locks.delete(op.lock);
      reply = answer(0, lock.token, now);
    }
    this.dedupe.set(op.request, { key, answer: reply, at: now });
    this.now = now;
    return reply;
  }
}

/** The ops as sent: each retry replaced by the op it repeats, with its own step of the clock. */
function withRetries(drawn: readonly Op[]): Op[] {
  const sent: Op[] = [];
  for (const op of drawn) {
    const n = sent.length;
    sent.push(op.retryOf === null || n === 0 ? op : { ...sent[n - 1 - ((op.retryOf - 1) % n)]!, stepMs: op.stepMs, retryOf: null });
  }
  return sent;
}

function maxTtlAt(setup: Setup, op: number): number {
  return setup.lowerMaxTtlAt !== null && op >= setup.lowerMaxTtlAt ? LOWERED_MAX_TTL_MS : MAX_TTL_MS;
}

function answer(status: number, token: number, expiresAt: number): string {
  const bytes = Buffer.alloc(RESPONSE_BYTES);
  bytes[0] = status;
  bytes.writeBigUInt64BE(BigInt(token), 1);
  bytes.writeBigUInt64BE(BigInt(expiresAt), 9);
  return bytes.toString("hex");
}

// ---- generators: few locks, owners and request ids, so collisions and retries are common ----

const opArb: fc.Arbitrary<Op> = fc.record({
  cmd: fc.constantFrom(Command.Acquire, Command.Acquire, Command.Renew, Command.Release, Command.Inspect),
  request: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 30, arbitrary: fc.integer({ min: 1, max: 12 }) }),
  lock: fc.integer({ min: 0, max: 2 }),
  owner: fc.integer({ min: 0, max: 2 }),
  ttlMs: fc.oneof(
    { weight: 1, arbitrary: fc.constantFrom(0, 1, MAX_TTL_MS, MAX_TTL_MS + 1) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 5 }) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 300 }) },
  ),
  trailer: fc.option(fc.constantFrom(0, 1, 0xdead), { nil: null }),
  retryOf: fc.option(fc.integer({ min: 1, max: 20 }), { nil: null, freq: 3 }),
  stepMs: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 120 }) },
    { weight: 1, arbitrary: fc.integer({ min: -200, max: -1 }) },
  ),
});

const setupArb: fc.Arbitrary<Setup> = fc.record({
  dedupeWindowMs: fc.constantFrom(1, 2, 5, 50, 400, 60_000),
  expiredRetentionMs: fc.constantFrom(0, 1, 3, 30, 300, 60_000),
  limits: fc.option(
    fc.record({ maxLocks: fc.integer({ min: 1, max: 3 }), maxDedupeEntries: fc.integer({ min: 1, max: 10 }) }),
    { nil: null },
  ),
  lowerMaxTtlAt: fc.option(fc.integer({ min: 0, max: 150 }), { nil: null }),
});

const scenarioArb = fc.record({ setup: setupArb, ops: fc.array(opArb, { minLength: 1, maxLength: 150 }), hashSeed: fc.integer() });

describe("random command sequences: the state machine answers exactly as the reference model", () => {
  it("every response is byte-identical to the model's", () => {
    fc.assert(
      fc.property(scenarioArb, ({ setup, ops: drawn, hashSeed }) => {
        const ops = withRetries(drawn);
        const driver = new Driver({ ...setup, hashSeed }, setup.limits, MAX_TTL_MS);
        const model = new Model(setup);
        let stamp = 1000;
        for (const [n, op] of ops.entries()) {
          stamp = Math.max(0, stamp + op.stepMs);
          const maxTtlMs = maxTtlAt(setup, n);
          driver.setMaxTtl(maxTtlMs);
          const actual = driver.send(frameOf(op), stamp).reply.toString("hex");
          const expected = model.apply(op, stamp, maxTtlMs);
          if (actual !== expected) throw new Error(`op ${n} ${JSON.stringify(op)} at ${stamp}: state machine ${actual}, model ${expected}`);
        }
      }),
      { seed, numRuns: NUM_RUNS },
    );
  });
});

describe("replay: executing the logged commands on a fresh state machine reproduces every answer", () => {
  it("commands answered other than 3 and 6, replayed with their stamps and no limits, answer identically, read-only ones left out once their time is logged", () => {
    fc.assert(
      fc.property(scenarioArb, ({ setup, ops: drawn, hashSeed }) => {
        const ops = withRetries(drawn);
        const leader = new Driver({ ...setup, hashSeed }, setup.limits, MAX_TTL_MS);
        const log: { entry: Buffer; stamp: number; reply: string }[] = [];
        let stamp = 1000;
        // A 6 from a capacity check may move the leader's clock without a log entry. The log carries
        // the time each command was decided at (as the pipeline stamps records: never behind the
        // clock), and the clock it must reproduce is the one after the last logged command.
        let loggedNowMs = leader.sm.logicalNowMs;
        for (const [n, op] of ops.entries()) {
          stamp = Math.max(0, stamp + op.stepMs);
          leader.setMaxTtl(maxTtlAt(setup, n));
          const { reply, status, entry } = leader.send(frameOf(op), stamp);
          // As the pipeline does, a read-only command (INSPECT, a remembered answer) is left out of the
          // log when an entry already there carries its time.
          if (status !== 3 && status !== 6 && !(leader.sm.lastWasReadOnly && leader.sm.logicalNowMs <= loggedNowMs)) {
            loggedNowMs = leader.sm.logicalNowMs;
            log.push({ entry: entry!, stamp: loggedNowMs, reply: reply.toString("hex") });
          }
        }
        const follower = new Driver({ ...setup, hashSeed: hashSeed ^ 0x5a5a5a5a }, null, MAX_TTL_MS);
        const out = Buffer.alloc(RESPONSE_BYTES);
        for (const [n, record] of log.entries()) {
          follower.sm.execute(record.entry, 0, record.stamp, out, 0, null);
          if (out.toString("hex") !== record.reply) throw new Error(`log entry ${n}: replayed ${out.toString("hex")}, leader ${record.reply}`);
        }
        expect(follower.sm.logicalNowMs).toBe(loggedNowMs);
        expect(follower.sm.nextFencingToken).toBe(leader.sm.nextFencingToken);
      }),
      { seed, numRuns: NUM_RUNS },
    );
  });
});
