/**
 * The lock state machine: pure and deterministic. It owns the locks, the global fencing counter, the
 * logical clock and the dedupe table, and answers one command at a time. It does no I/O, reads no
 * clock and draws no random numbers: the caller passes the leader's time stamp with every command, so
 * replaying the same commands with the same stamps rebuilds the same state and the same answers.
 *
 * Commands are 57-byte entries in the wire body layout (RELEASE/INSPECT with a zero ttl field).
 */
import {
  BODY_CMD,
  BODY_LOCK_ID,
  BODY_OWNER_ID,
  BODY_REQUEST_ID,
  BODY_TTL,
  Command,
  Status,
} from "../protocol/wire.js";
import { readU64 } from "../protocol/u64.js";
import { writeResponse } from "../protocol/response.js";
import { DedupeTable } from "./dedupe-table.js";
import { ExpiryHeap } from "./expiry-heap.js";
import { hashWords } from "./hash.js";

export interface StateMachineConfig {
  /** How long (logical ms) a decided answer is remembered for retries with the same request id. */
  readonly dedupeWindowMs: number;
  /** How long after expiry a lease is remembered, so its owner gets "expired" (5) rather than "not held" (2). */
  readonly expiredRetentionMs: number;
  /** Seeds the dedupe index hash (layout only, never answers). */
  readonly hashSeed: number;
}

/** Capacity limits, enforced only where commands are admitted (the leader), never on replay. */
export interface AdmissionLimits {
  readonly maxLocks: number;
  readonly maxDedupeEntries: number;
}

export interface LockRecord {
  readonly lockKey: string;
  owner: string;
  token: number;
  expiresAtMs: number;
  /** expiresAtMs + retention: after this the record is gone, as if never held. */
  forgetAtMs: number;
  heapSlot: number;
}

/** Records dropped per executed command: more than one command can create, so memory catches up. */
const PRUNE_BUDGET_PER_COMMAND = 8;

/** Parameter fingerprint seeds. Fixed, because fingerprints are persisted in snapshots. */
const FINGERPRINT_SEED_0 = 0x6a09e667;
const FINGERPRINT_SEED_1 = 0x3c6ef372 | 0;

export class StateMachine {
  private nowMs = 0;
  private nextToken = 1;
  private readonly locks = new Map<string, LockRecord>();
  private readonly expiry = new ExpiryHeap<LockRecord>();
  private readonly dedupe: DedupeTable;

  constructor(readonly config: StateMachineConfig) {
    this.dedupe = new DedupeTable(config.hashSeed);
  }

  /** The logical clock: the largest time stamp applied so far. */
  get logicalNowMs(): number {
    return this.nowMs;
  }

  /** The token the next successful ACQUIRE will get. */
  get nextFencingToken(): number {
    return this.nextToken;
  }

  get lockRecordCount(): number {
    return this.locks.size;
  }

  get dedupeEntryCount(): number {
    return this.dedupe.size;
  }

  /**
   * Decides one command at time stamp `stampMs` and writes its 17-byte answer to `out[outAt..]`.
   * Returns the status. Answers 3 (a request id reused with other parameters, or by INSPECT) and 6
   * (a limit reached; only when `limits` is given) change nothing and must not be logged; every other
   * answer is a decision that the log must carry for replay.
   */
  execute(
    entry: Uint8Array,
    at: number,
    stampMs: number,
    out: Uint8Array,
    outAt: number,
    limits: AdmissionLimits | null,
  ): number {
    const now = stampMs > this.nowMs ? stampMs : this.nowMs;
    const cmd = entry[at + BODY_CMD]!;
    const requestIdAt = at + BODY_REQUEST_ID;
    const fingerprint0 = hashWords(entry, at + BODY_LOCK_ID, 10, FINGERPRINT_SEED_0 ^ cmd);
    const fingerprint1 = hashWords(entry, at + BODY_LOCK_ID, 10, FINGERPRINT_SEED_1 ^ cmd);

    const seen = this.dedupe.find(entry, requestIdAt, now, this.config.dedupeWindowMs);
    if (seen >= 0) {
      if (cmd === Command.Inspect || !this.dedupe.matches(seen, fingerprint0, fingerprint1)) {
        writeResponse(out, outAt, Status.Invalid, 0, 0);
        return Status.Invalid;
      }
      this.dedupe.copyAnswer(seen, out, outAt);
      this.advance(now);
      return this.dedupe.answerStatus(seen);
    }

    const lockKey = latin1(entry, at + BODY_LOCK_ID);
    const stored = this.locks.get(lockKey);
    // A record past its retention is semantically gone, whether or not pruning has reached it yet.
    const record = stored !== undefined && stored.forgetAtMs > now ? stored : undefined;

    if (cmd === Command.Inspect) {
      this.inspect(record, latin1(entry, at + BODY_OWNER_ID), now, out, outAt);
      this.advance(now);
      return out[outAt]!;
    }

    if (limits !== null && this.dedupe.size >= limits.maxDedupeEntries) {
      this.dedupe.prune(now, this.config.dedupeWindowMs, Infinity);
      if (this.dedupe.size >= limits.maxDedupeEntries) {
        writeResponse(out, outAt, Status.Unavailable, 0, 0);
        return Status.Unavailable;
      }
    }

    let status: number;
    if (cmd === Command.Acquire) {
      if (record !== undefined && record.expiresAtMs > now) {
        writeResponse(out, outAt, Status.Held, 0, record.expiresAtMs);
        status = Status.Held;
      } else {
        if (stored === undefined && limits !== null && this.locks.size >= limits.maxLocks) {
          this.pruneLocks(now, Infinity);
          if (this.locks.size >= limits.maxLocks) {
            writeResponse(out, outAt, Status.Unavailable, 0, 0);
            return Status.Unavailable;
          }
        }
        const ttlMs = readU64(entry, at + BODY_TTL);
        this.grant(lockKey, latin1(entry, at + BODY_OWNER_ID), now + ttlMs);
        const granted = this.locks.get(lockKey)!;
        writeResponse(out, outAt, Status.Ok, granted.token, granted.expiresAtMs);
        status = Status.Ok;
      }
    } else {
      status = this.renewOrRelease(cmd, record, entry, at, now, out, outAt);
    }

    this.dedupe.insert(entry, requestIdAt, fingerprint0, fingerprint1, out, outAt, now);
    this.advance(now);
    return status;
  }

  private renewOrRelease(
    cmd: number,
    record: LockRecord | undefined,
    entry: Uint8Array,
    at: number,
    now: number,
    out: Uint8Array,
    outAt: number,
  ): number {
    if (record === undefined || record.owner !== latin1(entry, at + BODY_OWNER_ID)) {
      writeResponse(out, outAt, Status.NotHeld, 0, 0);
      return Status.NotHeld;
    }
    if (record.expiresAtMs <= now) {
      writeResponse(out, outAt, Status.Expired, record.token, record.expiresAtMs);
      return Status.Expired;
    }
    if (cmd === Command.Renew) {
      record.expiresAtMs = now + readU64(entry, at + BODY_TTL);
      record.forgetAtMs = record.expiresAtMs + this.config.expiredRetentionMs;
      this.expiry.update(record);
      writeResponse(out, outAt, Status.Ok, record.token, record.expiresAtMs);
    } else {
      this.locks.delete(record.lockKey);
      this.expiry.remove(record);
      writeResponse(out, outAt, Status.Ok, record.token, now);
    }
    return Status.Ok;
  }

  private inspect(record: LockRecord | undefined, owner: string, now: number, out: Uint8Array, outAt: number): void {
    if (record === undefined) {
      writeResponse(out, outAt, Status.NotHeld, 0, 0);
    } else if (record.owner === owner) {
      const status = record.expiresAtMs > now ? Status.Ok : Status.Expired;
      writeResponse(out, outAt, status, record.token, record.expiresAtMs);
    } else if (record.expiresAtMs > now) {
      writeResponse(out, outAt, Status.Held, 0, record.expiresAtMs);
    } else {
      writeResponse(out, outAt, Status.NotHeld, 0, 0);
    }
  }

  private grant(lockKey: string, owner: string, expiresAtMs: number): void {
    const token = this.nextToken++;
    const forgetAtMs = expiresAtMs + this.config.expiredRetentionMs;
    const existing = this.locks.get(lockKey);
    if (existing !== undefined) {
      existing.owner = owner;
      existing.token = token;
      existing.expiresAtMs = expiresAtMs;
      existing.forgetAtMs = forgetAtMs;
      this.expiry.update(existing);
      return;
    }
    const record: LockRecord = { lockKey, owner, token, expiresAtMs, forgetAtMs, heapSlot: -1 };
    this.locks.set(lockKey, record);
    this.expiry.push(record);
  }

  /** Moves the clock to `now` and forgets a bounded number of records whose time has passed. */
  private advance(now: number): void {
    this.nowMs = now;
    this.pruneLocks(now, PRUNE_BUDGET_PER_COMMAND);
    this.dedupe.prune(now, this.config.dedupeWindowMs, PRUNE_BUDGET_PER_COMMAND);
  }

  private pruneLocks(now: number, budget: number): void {
    for (let n = 0; n < budget; n++) {
      const oldest = this.expiry.peek();
      if (oldest === undefined || oldest.forgetAtMs > now) return;
      this.expiry.remove(oldest);
      this.locks.delete(oldest.lockKey);
    }
  }

  // ---- snapshot support: the whole state as plain values (see snapshot-codec.ts) ----

  /** Lock records, unordered. */
  lockRecords(): readonly LockRecord[] {
    return this.expiry.values();
  }

  dedupeTable(): DedupeTable {
    return this.dedupe;
  }

  /** Restores the scalar state; used only when loading a snapshot into a fresh machine. */
  restoreScalars(nowMs: number, nextToken: number): void {
    if (this.locks.size !== 0 || this.dedupe.size !== 0) throw new Error("restore into a used state machine");
    this.nowMs = nowMs;
    this.nextToken = nextToken;
  }

  restoreLock(lockKey: string, owner: string, token: number, expiresAtMs: number): void {
    if (token >= this.nextToken) throw new Error(`snapshot lock token ${token} >= next token ${this.nextToken}`);
    if (this.locks.has(lockKey)) throw new Error("snapshot holds a lock twice");
    const record: LockRecord = {
      lockKey,
      owner,
      token,
      expiresAtMs,
      forgetAtMs: expiresAtMs + this.config.expiredRetentionMs,
      heapSlot: -1,
    };
    this.locks.set(lockKey, record);
    this.expiry.push(record);
  }
}

/** A 16-byte id as a 16-character string: a compact, hashable Map key. */
function latin1(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(
    bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!,
    bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!,
    bytes[at + 8]!, bytes[at + 9]!, bytes[at + 10]!, bytes[at + 11]!,
    bytes[at + 12]!, bytes[at + 13]!, bytes[at + 14]!, bytes[at + 15]!,
  );
}
