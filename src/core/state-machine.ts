/**
 * The lock state machine: pure and deterministic. It owns the locks, the global fencing counter, the
 * logical clock and the dedupe table, and answers one command at a time. It does no I/O, reads no
 * clock and draws no random numbers: the caller passes the leader's time stamp with every command, so
 * replaying the same commands with the same stamps rebuilds the same state and the same answers.
 *
 * Commands are 57-byte entries in the wire body layout (RELEASE/INSPECT with a zero ttl field), or
 * the same fields already read into words (command-words.ts), which is how the server passes them.
 * Two more commands exist only in the log, never on the wire: BUMP_FENCING_TOKEN and SET_RETENTION
 * (below).
 */
import { BODY_CMD, BODY_LOCK_ID, BODY_REQUEST_ID, BODY_TTL, Command, isCommand, LONG_BODY_BYTES, Status } from "../protocol/wire.js";
import { writeU64 } from "../protocol/u64.js";
import { writeResponse } from "../protocol/response.js";
import { COMMAND_WORDS, WORD_LOCK_ID, WORD_OWNER_ID, WORD_REQUEST_ID, readCommandWords, readIdWords, ttlOf, u64Of } from "./command-words.js";
import { DedupeTable } from "./dedupe-table.js";
import { hashWordsTwice } from "./hash.js";
import { LockTable } from "./lock-table.js";
import { FRESH_MEMORY, type TableMemory } from "./table-memory.js";

/**
 * How long the state machine remembers what it decided. Both settings decide answers, so they are
 * part of the state: a SET_RETENTION entry changes them at its place in the log, and a snapshot
 * carries them, so every replay decides each command with the settings it was first decided with.
 */
export interface RetentionSettings {
  /** How long (logical ms) a decided answer is remembered for retries with the same request id. */
  readonly dedupeWindowMs: number;
  /** How long after expiry a lease is remembered, so its owner gets "expired" (5) rather than "not held" (2). */
  readonly expiredRetentionMs: number;
}

/** The settings of a state machine that no entry or snapshot has set: the servers' defaults. */
export const DEFAULT_RETENTION: RetentionSettings = { dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };

export interface StateMachineConfig extends RetentionSettings {
  /** Seeds the id index hashes (layout only, never answers). */
  readonly hashSeed: number;
  /**
   * Room to reserve up front (layout only, never answers). The tables grow on their own, so this is
   * for loads whose size is known in advance, like a snapshot plus the log after it: sized for them,
   * the tables never move their entries again. Room reserved and not used is not free: new ids land
   * on random pages of an oversized index, one page fault each. `lockRecords` is different: room
   * for that many lock records (at least `locks`) without sizing the lock ids' index for them. Records
   * take slots in order, so room never used is address space only; it is for a replay, which may
   * create up to one lock per entry and usually creates far fewer.
   */
  readonly initialCapacity?: { readonly locks?: number; readonly lockRecords?: number; readonly dedupeEntries?: number };
  /** Where the tables' memory comes from (layout only, never answers); fresh buffers by default. */
  readonly memory?: TableMemory;
}

/** Limits enforced only where commands are admitted (the leader), never on replay. */
export interface AdmissionLimits {
  readonly maxLocks: number;
  readonly maxDedupeEntries: number;
  /**
   * ACQUIRE/RENEW with a larger ttl_ms answer 3, unless their request id is remembered with the same
   * parameters: a retry of a request admitted under a larger bound (before a restart that lowered it)
   * gets its remembered answer, as any retry does.
   */
  readonly maxTtlMs: number;
}

/** Records dropped per executed command: more than one command can create, so memory catches up. */
const PRUNE_BUDGET_PER_COMMAND = 8;

/** Parameter fingerprint seeds. Fixed, because fingerprints are persisted in snapshots. */
const FINGERPRINT_SEED_0 = 0x6a09e667;
const FINGERPRINT_SEED_1 = 0x3c6ef372;
/** lock_id, owner_id and ttl_ms: the parameters a retry must repeat, as 32-bit words. */
const PARAMETER_WORDS = 10;

/**
 * The log-only command that raises the fencing counter by the amount in its ttl field (its ids are
 * zero): lockd logs one at start when the operator asks (`--bump-fencing-token`, after restoring a
 * backup), so that every replay raises the counter at the same point. Clients can never send it: a
 * request frame with this cmd is invalid (3), as is every cmd but 1-4.
 */
export const BUMP_FENCING_TOKEN = 0x80;

/** Writes a BUMP_FENCING_TOKEN entry raising the counter by `amount` into `entry[at..at+57)`. */
export function writeBumpEntry(entry: Uint8Array, at: number, amount: number): void {
  entry.fill(0, at, at + LONG_BODY_BYTES);
  entry[at + BODY_CMD] = BUMP_FENCING_TOKEN;
  writeU64(entry, at + BODY_TTL, amount);
}

/** The log-only command that changes the retention settings from its place in the log on. */
export const SET_RETENTION = 0x81;

/**
 * Writes a SET_RETENTION entry into `entry[at..at+57)`: the dedupe window in the ttl field, the expired
 * retention in the first 8 bytes of the lock id field (both u64).
 */
export function writeRetentionEntry(entry: Uint8Array, at: number, settings: RetentionSettings): void {
  entry.fill(0, at, at + LONG_BODY_BYTES);
  entry[at + BODY_CMD] = SET_RETENTION;
  writeU64(entry, at + BODY_TTL, settings.dedupeWindowMs);
  writeU64(entry, at + BODY_LOCK_ID, settings.expiredRetentionMs);
}

/**
 * Whether `cmd` is a command this version writes to the log: the four a client sends and the two
 * log-only ones. Replay refuses any other, since an intact entry it cannot decide the way the writer
 * did (a newer version's, read after a downgrade) would give different answers than were acknowledged.
 */
export function isLogCommand(cmd: number): boolean {
  return isCommand(cmd) || cmd === BUMP_FENCING_TOKEN || cmd === SET_RETENTION;
}

/**
 * The largest fencing token, 2^53 - 2: the counter is a JavaScript number, exact up to 2^53 - 1,
 * and after the last grant it holds one more than the last token, which snapshots must still write.
 */
export const MAX_FENCING_TOKEN = Number.MAX_SAFE_INTEGER - 1;

/**
 * Whether raising the counter at `nextToken` by `amount` leaves a token to grant (the next one at
 * most MAX_FENCING_TOKEN). A bump that does not is refused: tokens must stay exact integers.
 */
export function bumpLeavesToken(nextToken: number, amount: number): boolean {
  return nextToken + amount <= MAX_FENCING_TOKEN;
}

/**
 * The latest time the state machine hands out, 2^53 - 1 ms: times are JavaScript numbers, exact up
 * to there. Stamps are capped at it (CommitPipeline.stamp) and no lease may end after it.
 */
export const LATEST_TIME_MS = Number.MAX_SAFE_INTEGER;

/** Most commands `prefetch` looks ahead at, at once. */
export const PREFETCH_MAX = 256;

/**
 * Fills `starts` with the offsets of `count` records of `recordBytes` each, the first at `first`, for
 * the `prefetch` methods (log entries in a record, snapshot records); returns `starts`.
 */
export function fixedStarts(starts: Int32Array, first: number, recordBytes: number, count: number): Int32Array {
  for (let i = 0; i < count; i++) starts[i] = first + i * recordBytes;
  return starts;
}

export class StateMachine {
  private nowMs = 0;
  private nextToken = 1;
  private dedupeWindowMs: number;
  private expiredRetentionMs: number;
  private readonly locks: LockTable;
  private readonly dedupe: DedupeTable;

  constructor(readonly config: StateMachineConfig) {
    this.dedupeWindowMs = config.dedupeWindowMs;
    this.expiredRetentionMs = config.expiredRetentionMs;
    const memory = config.memory ?? FRESH_MEMORY;
    this.locks = new LockTable(config.hashSeed, config.initialCapacity?.locks, memory, config.initialCapacity?.lockRecords);
    this.dedupe = new DedupeTable(config.hashSeed ^ 0x5bd1e995, config.initialCapacity?.dedupeEntries, memory);
  }

  /** The logical clock: the largest time stamp applied so far. */
  get logicalNowMs(): number {
    return this.nowMs;
  }

  /** The retention settings in force: the config's until a SET_RETENTION entry or a snapshot changed them. */
  get retention(): RetentionSettings {
    return { dedupeWindowMs: this.dedupeWindowMs, expiredRetentionMs: this.expiredRetentionMs };
  }

  /** The token the next successful ACQUIRE will get. */
  get nextFencingToken(): number {
    return this.nextToken;
  }

  /**
   * Whether the last command `execute` decided changed nothing but the clock: an INSPECT, or a retry
   * answered from the dedupe table. Replaying such a command only moves the clock to its time stamp,
   * so a log already holding a command stamped that late need not hold it.
   */
  get lastWasReadOnly(): boolean {
    return this.lastReadOnly;
  }

  get lockRecordCount(): number {
    return this.locks.size;
  }

  get dedupeEntryCount(): number {
    return this.dedupe.size;
  }

  private lastReadOnly = false;
  /** Scratch for the two parameter fingerprints of the command being executed. */
  private readonly fingerprint = new Int32Array(2);
  /**
   * The rest of the answer `acquire` and `renewOrRelease` decide (they return the status): kept as
   * numbers, so the reply and the dedupe entry are written from them, never copied byte by byte.
   */
  private answerToken = 0;
  private answerExpiresAtMs = 0;
  /** The words of a command given as bytes (`execute`), and of a lock being restored. */
  private readonly words = new Int32Array(COMMAND_WORDS);

  /**
   * Warms the cache for commands about to be executed, deciding nothing: the request bodies start
   * at `bytes[starts[i]]` for i < count (at most PREFETCH_MAX). Their dedupe and lock lookups are
   * random reads in large tables; hashing them all first and then reading every bucket in one tight
   * loop lets those misses overlap, where `execute` alone would wait for them one at a time. So are
   * the deletes of the dedupe entries they may prune (those that change state do): `stampMs` is the
   * time stamp they will run at.
   */
  prefetch(bytes: Uint8Array, starts: Int32Array, count: number, stampMs: number): void {
    // The bound keeps the tables' look-ahead scratch at a fixed size; callers pass their batches in pieces.
    if (count > PREFETCH_MAX) throw new RangeError(`prefetch of ${count} commands, more than ${PREFETCH_MAX}`);
    const now = stampMs > this.nowMs ? stampMs : this.nowMs;
    this.dedupe.prefetch(bytes, starts, count, BODY_REQUEST_ID, now, this.dedupeWindowMs, count * PRUNE_BUDGET_PER_COMMAND);
    this.locks.prefetch(bytes, starts, count, BODY_LOCK_ID);
  }

  /**
   * Decides one command at time stamp `stampMs` and writes its 17-byte answer to `out[outAt..]`.
   * Returns the status. Answers 3 (a request id reused with other parameters, or by INSPECT; with
   * `limits`, a ttl above their maximum for a request id not remembered) and 6
   * (a limit reached; only when `limits` is given) change nothing and must not be logged; every other
   * answer is a decision that the log must carry for replay, or for a read-only one (`lastWasReadOnly`),
   * at least an entry stamped as late.
   */
  execute(
    entry: Uint8Array,
    at: number,
    stampMs: number,
    out: Uint8Array,
    outAt: number,
    limits: AdmissionLimits | null,
  ): number {
    readCommandWords(entry, at, this.words);
    return this.executeWords(entry[at + BODY_CMD]!, this.words, stampMs, out, outAt, limits);
  }

  /** `execute` for a command whose fields were already read into words (see command-words.ts). */
  executeWords(
    cmd: number,
    words: Int32Array,
    stampMs: number,
    out: Uint8Array,
    outAt: number,
    limits: AdmissionLimits | null,
  ): number {
    const now = stampMs > this.nowMs ? stampMs : this.nowMs;
    this.lastReadOnly = false;
    if (cmd === BUMP_FENCING_TOKEN) return this.bumpFencingToken(ttlOf(words), now, out, outAt);
    if (cmd === SET_RETENTION) return this.setRetention(ttlOf(words), u64Of(words, WORD_LOCK_ID), now, out, outAt);
    const fingerprint = this.fingerprint;
    hashWordsTwice(words, WORD_LOCK_ID, PARAMETER_WORDS, FINGERPRINT_SEED_0 ^ cmd, FINGERPRINT_SEED_1 ^ cmd, fingerprint);
    const fingerprint0 = fingerprint[0]!;
    const fingerprint1 = fingerprint[1]!;

    const dedupe = this.dedupe;
    const requestHash = dedupe.hashOf(words, WORD_REQUEST_ID);
    const recorded = dedupe.lookupWords(words, WORD_REQUEST_ID, requestHash);
    const seen = recorded >= 0 && dedupe.isLive(recorded, now, this.dedupeWindowMs) ? recorded : -1;
    if (seen >= 0) {
      if (cmd === Command.Inspect || !dedupe.matches(seen, fingerprint0, fingerprint1)) {
        writeResponse(out, outAt, Status.Invalid, 0, 0);
        return Status.Invalid;
      }
      dedupe.copyAnswer(seen, out, outAt);
      this.moveClockTo(now);
      this.lastReadOnly = true;
      return dedupe.answerStatus(seen);
    }

    // RELEASE and INSPECT entries carry a zero ttl, so only ACQUIRE and RENEW can fail this. Like
    // every 3, it changes nothing, the clock included. The second bound keeps every expires_at below
    // 2^53, where a u64 read into a number stays exact: it binds only when the logical clock is within
    // 100 years (the largest --max-ttl) of 2^53 ms, the year 287,396, where only a wall clock set
    // absurdly far ahead can put it.
    const ttlMs = ttlOf(words);
    if (limits !== null && (ttlMs > limits.maxTtlMs || ttlMs > LATEST_TIME_MS - now)) {
      writeResponse(out, outAt, Status.Invalid, 0, 0);
      return Status.Invalid;
    }

    const lockHash = this.locks.hashOf(words, WORD_LOCK_ID);
    const stored = this.locks.findWords(words, WORD_LOCK_ID, lockHash);
    // A record past its retention is semantically gone, whether or not pruning has reached it yet.
    const slot = stored >= 0 && this.locks.expiresAtOf(stored) + this.expiredRetentionMs > now ? stored : -1;

    if (cmd === Command.Inspect) {
      this.inspect(slot, words, now, out, outAt);
      this.moveClockTo(now);
      this.lastReadOnly = true;
      return out[outAt]!;
    }

    if (limits !== null && dedupe.size >= limits.maxDedupeEntries) {
      this.moveClockTo(now);
      dedupe.prune(now, this.dedupeWindowMs, Infinity);
      if (dedupe.size >= limits.maxDedupeEntries) {
        writeResponse(out, outAt, Status.Unavailable, 0, 0);
        return Status.Unavailable;
      }
    }

    const status =
      cmd === Command.Acquire ? this.acquire(stored, slot, words, lockHash, now, limits) : this.renewOrRelease(cmd, slot, words, now);
    writeResponse(out, outAt, status, this.answerToken, this.answerExpiresAtMs);
    if (status === Status.Unavailable) return status;
    dedupe.insertWords(words, WORD_REQUEST_ID, requestHash, recorded, fingerprint0, fingerprint1, status, this.answerToken, this.answerExpiresAtMs, now);
    this.advance(now);
    return status;
  }

  /**
   * Raises the counter by `amount`; the answer carries the next token. Remembered by no request id.
   * A bump must leave at least one token to grant (bumpLeavesToken): one that does not answers 3
   * and changes nothing.
   */
  private bumpFencingToken(amount: number, now: number, out: Uint8Array, outAt: number): number {
    if (!bumpLeavesToken(this.nextToken, amount)) {
      // Refused, and so never logged.
      writeResponse(out, outAt, Status.Invalid, 0, 0);
      return Status.Invalid;
    }
    this.nextToken += amount;
    writeResponse(out, outAt, Status.Ok, this.nextToken, 0);
    this.advance(now);
    return Status.Ok;
  }

  /**
   * Remembered by no request id, like a bump. The settings apply from this entry's `now` on, after
   * everything the old ones had already given up is forgotten: a longer window or retention must not
   * bring back what was past its end, or a decision would depend on how far pruning had got, which a
   * restart from a snapshot (which leaves out superseded answers) does not reproduce.
   */
  private setRetention(dedupeWindowMs: number, expiredRetentionMs: number, now: number, out: Uint8Array, outAt: number): number {
    this.pruneLocks(now, Infinity);
    this.dedupe.prune(now, this.dedupeWindowMs, Infinity);
    this.dedupeWindowMs = dedupeWindowMs;
    this.expiredRetentionMs = expiredRetentionMs;
    writeResponse(out, outAt, Status.Ok, 0, 0);
    this.advance(now);
    return Status.Ok;
  }

  private answer(status: number, token: number, expiresAtMs: number): number {
    this.answerToken = token;
    this.answerExpiresAtMs = expiresAtMs;
    return status;
  }

  private acquire(
    stored: number, // the lock's record, even if past retention and not yet pruned; -1 if none
    slot: number,
    words: Int32Array,
    lockHash: number,
    now: number,
    limits: AdmissionLimits | null,
  ): number {
    const locks = this.locks;
    if (slot >= 0 && locks.expiresAtOf(slot) > now) {
      return this.answer(Status.Held, 0, locks.expiresAtOf(slot));
    }
    if (this.nextToken > MAX_FENCING_TOKEN) {
      // Every token has been issued (reachable only through bumps): the next would not be exact.
      // Like any 6, nothing changes and nothing is logged.
      return this.answer(Status.Unavailable, 0, 0);
    }
    if (limits !== null && locks.size >= limits.maxLocks) {
      // Full: only records still remembered now count, so forget every other one first; a lock whose
      // record survives reuses it.
      this.moveClockTo(now);
      this.pruneLocks(now, Infinity);
      stored = locks.findWords(words, WORD_LOCK_ID, lockHash);
      if (stored < 0 && locks.size >= limits.maxLocks) {
        return this.answer(Status.Unavailable, 0, 0);
      }
    }
    const expiresAtMs = now + ttlOf(words);
    const token = this.nextToken++;
    if (stored >= 0) {
      // Free again (expired, possibly past retention but not yet pruned): reuse the record.
      locks.replace(stored, words, WORD_OWNER_ID, token, expiresAtMs);
    } else {
      locks.insertWords(words, WORD_LOCK_ID, lockHash, WORD_OWNER_ID, token, expiresAtMs);
    }
    return this.answer(Status.Ok, token, expiresAtMs);
  }

  private renewOrRelease(cmd: number, slot: number, words: Int32Array, now: number): number {
    const locks = this.locks;
    if (slot < 0 || !locks.ownerMatchesWords(slot, words, WORD_OWNER_ID)) {
      return this.answer(Status.NotHeld, 0, 0);
    }
    const token = locks.tokenOf(slot);
    const expiresAtMs = locks.expiresAtOf(slot);
    if (expiresAtMs <= now) {
      return this.answer(Status.Expired, token, expiresAtMs);
    }
    if (cmd === Command.Renew) {
      const renewedUntil = now + ttlOf(words);
      locks.setExpiry(slot, renewedUntil);
      return this.answer(Status.Ok, token, renewedUntil);
    }
    locks.remove(slot);
    return this.answer(Status.Ok, token, now);
  }

  private inspect(slot: number, words: Int32Array, now: number, out: Uint8Array, outAt: number): void {
    const locks = this.locks;
    if (slot < 0) {
      writeResponse(out, outAt, Status.NotHeld, 0, 0);
      return;
    }
    const expiresAtMs = locks.expiresAtOf(slot);
    if (locks.ownerMatchesWords(slot, words, WORD_OWNER_ID)) {
      writeResponse(out, outAt, expiresAtMs > now ? Status.Ok : Status.Expired, locks.tokenOf(slot), expiresAtMs);
    } else if (expiresAtMs > now) {
      writeResponse(out, outAt, Status.Held, 0, expiresAtMs);
    } else {
      writeResponse(out, outAt, Status.NotHeld, 0, 0);
    }
  }

  /**
   * Moves the clock to `now` and nothing else, for two callers:
   * - a read-only command. Pruning is left to the commands that change state, so that a replay which
   *   leaves read-only commands out (the log need not keep them: see `lastWasReadOnly`) still reaches
   *   the very same state;
   * - a capacity check, which prunes everything whose time has passed at `now`: the clock must stand
   *   at `now` from then on, even if the command is answered 6 (not logged), or a later stamp from a
   *   wall clock that stepped back would find pruned records alive again. Every later logged record
   *   carries a stamp at least this, so replay stays consistent; and if a crash loses this advance,
   *   it loses every decision made after it too.
   */
  private moveClockTo(now: number): void {
    this.nowMs = now;
  }

  /** Moves the clock to `now` and forgets a bounded number of records whose time has passed. */
  private advance(now: number): void {
    this.nowMs = now;
    this.pruneLocks(now, PRUNE_BUDGET_PER_COMMAND);
    this.dedupe.prune(now, this.dedupeWindowMs, PRUNE_BUDGET_PER_COMMAND);
  }

  private pruneLocks(now: number, budget: number): void {
    const locks = this.locks;
    const retention = this.expiredRetentionMs;
    for (let n = 0; n < budget; n++) {
      const oldest = locks.earliest();
      if (oldest < 0 || locks.expiresAtOf(oldest) + retention > now) return;
      locks.remove(oldest);
    }
  }

  // ---- snapshot support (see snapshot-codec.ts) ----

  lockTable(): LockTable {
    return this.locks;
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

  /** Restores one lock record: lock id at `bytes[at..]`, owner id right after it. */
  restoreLock(bytes: Uint8Array, at: number, token: number, expiresAtMs: number): void {
    if (token >= this.nextToken) throw new Error(`snapshot lock token ${token} >= next token ${this.nextToken}`);
    // The ids are read and the lock id hashed once, for both the duplicate check and the insert.
    const words = this.words;
    readIdWords(bytes, at, words, WORD_LOCK_ID);
    readIdWords(bytes, at + 16, words, WORD_OWNER_ID);
    const lockHash = this.locks.hashOf(words, WORD_LOCK_ID);
    if (this.locks.findWords(words, WORD_LOCK_ID, lockHash) >= 0) throw new Error("snapshot holds a lock twice");
    this.locks.insertWords(words, WORD_LOCK_ID, lockHash, WORD_OWNER_ID, token, expiresAtMs);
  }
}
