/**
 * Group commit: the one path every command takes on the leader.
 *
 *   decode -> execute on the state machine (answer written into the connection's reply buffer)
 *          -> entry appended to the open batch -> batch appended to the log -> durable -> replies sent
 *
 * Every command processed in one event-loop turn joins one batch, so one write and one fsync cover all
 * of them, across all connections. (A read-only command's entry is left out when the log already
 * holds its time stamp: see `decide`. Its answer still waits for the batch.) Up to
 * MAX_APPENDS_IN_FLIGHT batches are being made durable at once (the disk overlaps their syncs);
 * commands arriving while that many are in flight wait in the open batch. No reply leaves before the
 * batch that holds it, and every batch before it, is durable: batches settle in order, which is also
 * what keeps replies in request order.
 *
 * Executing before the log write is safe because nothing observes the result until the batch is
 * durable, and if a write fails the server stops executing state changes (see `fail`).
 */
import { LONG_BODY_BYTES, SHORT_BODY_BYTES, Status, commandTakesTtl } from "../protocol/wire.js";
import { wholeFrameStarts } from "../protocol/frame-reader.js";
import { writeResponse } from "../protocol/response.js";
import { COMMAND_WORDS, copyCommand, readCommandWords } from "../core/command-words.js";
import { LATEST_TIME_MS, MAX_FENCING_TOKEN, PREFETCH_MAX, type AdmissionLimits, type StateMachine } from "../core/state-machine.js";
import { MAX_APPENDS_IN_FLIGHT, type AppendResult, type CommitLog } from "../log/commit-log.js";
import { ENTRY_BYTES, MAX_RECORD_ENTRIES, RECORD_HEADER_BYTES, sealRecord, type WritePlace } from "../log/record.js";
import type { Clock } from "../clock/clock.js";
import type { Logger } from "../logging/logger.js";
import { CommitCounters } from "./stats.js";

/** A connection as the pipeline sees it: a buffer that answers are written into, in request order. */
export interface ReplySink {
  /** Makes room for one 17-byte answer in the open batch and returns its offset in `openReplies`. */
  reserveReply(): number;
  readonly openReplies: Uint8Array;
  /** This sink has answers in the open batch (set by the sink, cleared by `sealReplies`). */
  inOpenBatch: boolean;
  /** The open batch is leaving for the log: its answers queue up until it is durable. */
  sealReplies(): void;
  /** The oldest sealed answers may go out; if `failed`, every one of them is replaced by status 6 first. */
  releaseReplies(failed: boolean): void;
}

const INITIAL_BATCH_BYTES = 64 * 1024;
/**
 * Settled batches kept for reuse (their buffer, view and sink list), so a batch costs no allocation
 * in the steady state: at one command per batch (a lone client) the allocations were a measurable
 * part of its latency. A batch whose buffer grew past the cap is dropped instead, so a burst does not
 * pin its memory.
 */
const SPARE_BATCHES = MAX_APPENDS_IN_FLIGHT + 1;
const SPARE_BATCH_MAX_BYTES = 1024 * 1024;
const CAPACITY_WARNING_EVERY_MS = 10_000;

interface Batch {
  bytes: Buffer;
  /** Over `bytes`: entries are copied in a word at a time (see copyCommand). */
  view: DataView;
  length: number;
  entries: number;
  sinks: ReplySink[];
  /** Durable (or failed): its replies go out once every earlier batch has settled too. */
  settled: boolean;
  /** Where the record being filled starts, its entry count and its stamp. */
  recordAt: number;
  recordEntries: number;
  recordStampMs: number;
  /** When the batch was handed to the log (performance.now()), for the commit time in the stats. */
  appendedAtMs: number;
  /** The log index of its last entry, once sealed. */
  lastIndex: number;
}

export interface PipelineOptions {
  readonly stateMachine: StateMachine;
  readonly log: CommitLog;
  readonly limits: AdmissionLimits;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Leader epoch written into records (1 for a single node). */
  readonly term: number;
  /** Log index the next entry gets (one past the last recovered entry). */
  readonly nextIndex: number;
  /** Entries per record at most: MAX_RECORD_ENTRIES, which readers refuse to go past; tests lower it. */
  readonly maxRecordEntries?: number;
}

export class CommitPipeline {
  private readonly sm: StateMachine;
  private readonly log: CommitLog;
  private readonly limits: AdmissionLimits;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly term: number;
  private readonly maxRecordEntries: number;
  private nextIndex: number;
  private open: Batch = newBatch(INITIAL_BATCH_BYTES);
  /** Sealed batches, oldest first, until they settle and their replies go out. */
  private readonly sealed: Batch[] = [];
  private readonly spareBatches: Batch[] = [];
  private flushScheduled = false;
  /** Inside `log.append`: a log that completes at once (an inline sync) settles within the call. */
  private appending = false;
  private failure: Error | null = null;
  private idleWaiters: (() => void)[] = [];
  private lastCapacityWarningMs = -Infinity;
  private lastDurableIndex: number;
  /** The time stamp of the last entry kept in the log (the recovered clock at first). */
  private lastLoggedStampMs: number;
  private readonly prefetchStarts = new Int32Array(PREFETCH_MAX);
  /** Read by the stats line (`--stats-every`). */
  readonly counters = new CommitCounters();
  /** The command being submitted, read into words while it is copied into the batch. */
  private readonly words = new Int32Array(COMMAND_WORDS);
  /** The buffer the last submitted frame was in, and a view over it for copyCommand. */
  private frameSource: Uint8Array | null = null;
  private frameView: DataView = new DataView(new ArrayBuffer(0));

  constructor(options: PipelineOptions) {
    this.sm = options.stateMachine;
    this.log = options.log;
    this.limits = options.limits;
    this.clock = options.clock;
    this.logger = options.logger;
    this.term = options.term;
    this.maxRecordEntries = Math.min(options.maxRecordEntries ?? MAX_RECORD_ENTRIES, MAX_RECORD_ENTRIES);
    this.nextIndex = options.nextIndex;
    this.lastDurableIndex = options.nextIndex - 1;
    this.lastLoggedStampMs = options.stateMachine.logicalNowMs;
  }

  /** Set once a log append failed: state changes are refused from then on. */
  get failed(): Error | null {
    return this.failure;
  }

  get lastIndex(): number {
    return this.nextIndex - 1;
  }

  /**
   * The index of the last entry known to be in the log (written, and synced under --fsync always).
   * Behind `lastIndex` while batches are on their way, and stays behind it after a failed write.
   */
  get durableIndex(): number {
    return this.lastDurableIndex;
  }

  /**
   * The leader's time stamp for commands read now: one clock sample per read, never behind the state,
   * and never past LATEST_TIME_MS (a wall clock set past the year 287,396 stops time there, where
   * every ACQUIRE and RENEW answers 3, rather than stamping a time the log cannot hold exactly).
   */
  stamp(): number {
    const wall = this.clock.nowMs();
    const logical = this.sm.logicalNowMs;
    const stamp = wall > logical ? wall : logical;
    return stamp < LATEST_TIME_MS ? stamp : LATEST_TIME_MS;
  }

  /**
   * Lets the state machine warm its cache for the whole frames at the start of a chunk just read
   * (see StateMachine.prefetch), before they are split and executed one by one at `stampMs`.
   */
  prefetch(chunk: Uint8Array, stampMs: number): void {
    const count = wholeFrameStarts(chunk, this.prefetchStarts);
    // A lone command has nothing to overlap with: its own lookup is no slower than the prefetch.
    if (count > 1) this.sm.prefetch(chunk, this.prefetchStarts, count, stampMs);
  }

  /** Answers a frame body that failed validation (3) or cannot be served (6), in order with the rest. */
  answerWithoutState(sink: ReplySink, status: number): void {
    this.counters.requests++;
    this.answerWith(sink, status);
  }

  private answerWith(sink: ReplySink, status: number): void {
    const at = sink.reserveReply();
    writeResponse(sink.openReplies, at, status, 0, 0);
    this.enlist(sink);
  }

  /**
   * Executes one well-formed request body (already checked by isWellFormedRequestBody) at `stampMs`.
   */
  submit(sink: ReplySink, frame: Uint8Array, start: number, length: number, stampMs: number): void {
    if (this.failure !== null) {
      this.answerWithoutState(sink, Status.Unavailable);
      return;
    }
    this.counters.requests++;
    const entryAt = this.openEntry(stampMs);
    // Entries are always 57 bytes: the short RELEASE/INSPECT form gets a zero ttl, and the ignored
    // trailer of their long form is zeroed, so both forms are the same request.
    const cmd = frame[start]!;
    const copied = length === LONG_BODY_BYTES && commandTakesTtl(cmd) ? LONG_BODY_BYTES : SHORT_BODY_BYTES;
    if (frame !== this.frameSource) {
      // Frames of one read share its buffer: one view per read, not per command.
      this.frameSource = frame;
      this.frameView = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    }
    copyCommand(this.frameView, start, copied, this.open.view, entryAt, this.words);
    this.decide(sink, cmd, entryAt, stampMs);
  }

  /**
   * Executes and logs a command the server issues itself, not a client (the state machine's
   * log-only BUMP_FENCING_TOKEN): the 57-byte entry at `entry[0..57)`, unchecked.
   */
  submitEntry(sink: ReplySink, entry: Uint8Array, stampMs: number): void {
    if (this.failure !== null) {
      this.answerWith(sink, Status.Unavailable);
      return;
    }
    const entryAt = this.openEntry(stampMs);
    const bytes = this.open.bytes;
    bytes.set(entry.subarray(0, ENTRY_BYTES), entryAt);
    readCommandWords(bytes, entryAt, this.words);
    this.decide(sink, entry[0]!, entryAt, stampMs);
  }

  /** Makes room for one entry stamped `stampMs` in the open batch's record; returns its offset. */
  private openEntry(stampMs: number): number {
    const batch = this.open;
    // A record holds one stamp's entries, and no more than a reader accepts: a batch that large at
    // one stamp (a flag raising the in-flight limit past it, while time stands still) takes several.
    if (batch.recordEntries > 0 && (batch.recordStampMs !== stampMs || batch.recordEntries >= this.maxRecordEntries)) this.closeRecord(batch);
    if (batch.recordEntries === 0) {
      batch.recordAt = batch.length;
      batch.recordStampMs = stampMs;
    }
    const entryAt = batch.recordAt + RECORD_HEADER_BYTES + batch.recordEntries * ENTRY_BYTES;
    ensureCapacity(batch, entryAt + ENTRY_BYTES);
    return entryAt;
  }

  /** Executes the entry at `entryAt` (its words already read) and keeps it in the log if it decided anything. */
  private decide(sink: ReplySink, cmd: number, entryAt: number, stampMs: number): void {
    const replyAt = sink.reserveReply();
    const status = this.sm.executeWords(cmd, this.words, stampMs, sink.openReplies, replyAt, this.limits);
    this.enlist(sink);
    if (status === Status.Unavailable) this.warnCapacity();
    if (status === Status.Invalid || status === Status.Unavailable) return; // decided nothing: not logged
    // An INSPECT or a remembered answer changes nothing but the clock, and an entry in the log (durable
    // before this answer leaves, since batches settle in order) already carries this time: nothing
    // to replay. Logging each would let read-only traffic fill the disk faster than compaction folds it.
    if (stampMs <= this.lastLoggedStampMs && this.sm.lastWasReadOnly) return;
    this.lastLoggedStampMs = stampMs;
    const batch = this.open;
    batch.recordEntries++;
    batch.entries++;
    batch.length = entryAt + ENTRY_BYTES;
  }

  /** Resolves when every answer produced so far has been released to its connection. */
  whenIdle(): Promise<void> {
    if (this.sealed.length === 0 && this.open.sinks.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private warnCapacity(): void {
    const now = this.clock.nowMs();
    if (now - this.lastCapacityWarningMs < CAPACITY_WARNING_EVERY_MS) return;
    this.lastCapacityWarningMs = now;
    const tokensUsedUp = this.sm.nextFencingToken > MAX_FENCING_TOKEN;
    this.logger.warn(
      `capacity reached (${this.sm.lockRecordCount} lock records of ${this.limits.maxLocks}, ` +
        `${this.sm.dedupeEntryCount} remembered answers of ${this.limits.maxDedupeEntries}` +
        (tokensUsedUp ? ", every fencing token up to 2^53 - 2 issued): ACQUIREs that would grant answer 6" : "): new state changes answer 6"),
    );
  }

  private enlist(sink: ReplySink): void {
    if (!sink.inOpenBatch) {
      sink.inOpenBatch = true;
      this.open.sinks.push(sink);
    }
    // After every read of this event-loop turn has been processed: that is the batch.
    this.scheduleFlush();
  }

  /** Flushes on the next turn of the event loop, unless one is due already or the log is full. */
  private scheduleFlush(): void {
    if (this.flushScheduled || this.sealed.length >= MAX_APPENDS_IN_FLIGHT) return; // a batch settling flushes again
    this.flushScheduled = true;
    setImmediate(this.flush);
  }

  private closeRecord(batch: Batch): void {
    if (batch.recordEntries === 0) return;
    sealRecord(batch.bytes, batch.recordAt, {
      term: this.term,
      firstIndex: this.nextIndex,
      stampMs: batch.recordStampMs,
      count: batch.recordEntries,
      place: this.placeOfRecordAt(batch.recordAt),
    });
    this.nextIndex += batch.recordEntries;
    batch.recordEntries = 0;
  }

  /**
   * The open batch is one write; its first record says whether every batch before it was durable
   * already. Decided when that record is sealed, which may be before the batch is flushed: no batch is
   * sealed in between (the open one is flushed next), and one settling meanwhile only makes this
   * answer conservative.
   */
  private placeOfRecordAt(recordAt: number): WritePlace {
    if (recordAt > 0) return "later";
    return this.sealed.length === 0 ? "first-after-durable" : "first";
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.sealed.length >= MAX_APPENDS_IN_FLIGHT) return; // a batch settling flushes again
    const batch = this.open;
    if (batch.sinks.length === 0) {
      if (this.sealed.length === 0) this.notifyIdle();
      return;
    }
    this.closeRecord(batch);
    this.open = this.spareBatches.pop() ?? newBatch(INITIAL_BATCH_BYTES);
    for (const sink of batch.sinks) {
      sink.inOpenBatch = false;
      sink.sealReplies();
    }
    this.sealed.push(batch);
    if (batch.entries === 0 || this.failure !== null) {
      // Nothing to make durable (only 3s and 6s), or nothing may be: settles in order all the same.
      setImmediate(this.settle, batch, this.failure === null ? OK : { ok: false, error: this.failure });
      return;
    }
    batch.appendedAtMs = performance.now();
    batch.lastIndex = this.nextIndex - 1;
    this.appending = true;
    try {
      this.log.append(batch.bytes.subarray(0, batch.length), batch.lastIndex, (result) => this.settle(batch, result));
    } finally {
      this.appending = false;
    }
  };

  /**
   * Refuses every request with status 6 from now on, as after a failed log append: a write the
   * server's guarantees depend on (`what`) failed with `error`. `advice` tells the operator what to
   * do; by default, that a restart recovers.
   */
  refuse(what: string, error: Error, advice = RESTART_RECOVERS): void {
    if (this.failure !== null) return;
    this.failure = error;
    this.logger.error(`${what} failed (${error.message}); refusing every request with status 6 from now on. ${advice}`);
  }

  private readonly settle = (batch: Batch, result: AppendResult): void => {
    if (!result.ok) {
      this.refuse("log append", result.error);
    } else if (batch.entries > 0) {
      this.counters.recordCommit(performance.now() - batch.appendedAtMs);
      // Appends become durable in call order, so every entry up to this batch's last is in the log.
      if (batch.lastIndex > this.lastDurableIndex) this.lastDurableIndex = batch.lastIndex;
    }
    batch.settled = true;
    const sealed = this.sealed;
    while (sealed.length > 0 && sealed[0]!.settled) {
      const next = sealed.shift()!;
      // After a failure even settled batches answer 6: the state they were executed against is suspect.
      const failed = this.failure !== null;
      for (const sink of next.sinks) sink.releaseReplies(failed);
      this.recycle(next);
    }
    if (this.appending && this.open.sinks.length > 0) {
      // Settled inside the append (an inline sync): flushing the next batch here would chain it onto
      // this one's call stack, and a connection whose held-back frames refill the batch at every
      // release (a low --max-inflight) would run a whole read's worth of batches without the event
      // loop reading any other connection, as deep in the stack as it has frames. The next turn does it.
      this.scheduleFlush();
    } else {
      this.flush();
    }
  };

  /** A settled batch: nothing refers to its bytes any more (the log is done with them). */
  private recycle(batch: Batch): void {
    if (this.spareBatches.length >= SPARE_BATCHES || batch.bytes.length > SPARE_BATCH_MAX_BYTES) return;
    batch.length = 0;
    batch.entries = 0;
    batch.sinks.length = 0;
    batch.settled = false;
    batch.recordAt = 0;
    batch.recordEntries = 0;
    batch.recordStampMs = 0;
    batch.appendedAtMs = 0;
    batch.lastIndex = 0;
    this.spareBatches.push(batch);
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

const OK: AppendResult = { ok: true };
const RESTART_RECOVERS =
  "The on-disk state is intact up to the last acknowledged batch: free space or fix the disk first (a restart onto a full " +
  "disk starts, then fails the same way at its first write), then restart lockd to recover.";

function newBatch(capacity: number): Batch {
  const bytes = Buffer.allocUnsafe(capacity);
  return {
    bytes,
    view: new DataView(bytes.buffer, bytes.byteOffset, bytes.length),
    length: 0,
    entries: 0,
    sinks: [],
    settled: false,
    recordAt: 0,
    recordEntries: 0,
    recordStampMs: 0,
    appendedAtMs: 0,
    lastIndex: 0,
  };
}

function ensureCapacity(batch: Batch, needed: number): void {
  if (needed <= batch.bytes.length) return;
  let capacity = batch.bytes.length * 2;
  while (capacity < needed) capacity *= 2;
  const bytes = Buffer.allocUnsafe(capacity);
  batch.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  batch.bytes.copy(bytes, 0, 0, batch.length);
  batch.bytes = bytes;
}
