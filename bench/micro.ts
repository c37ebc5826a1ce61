/**
 * Micro-benchmarks of the server's hot path, one layer at a time: the wire codec and the frame reader,
 * the state machine's execute, the log record encoding, and the log append itself (the write alone,
 * and the write with its fdatasync, on the disk under bench/out/data). They show where a request's
 * time goes without sockets in the way. Not part of `npm test` (no timing is ever asserted).
 *
 *   npm run bench:micro                        # ~1 s per task
 *   node bench/out/build/bench/micro.js --time 3000 --filter state
 *
 * Prints a table and appends one JSON line per task to bench/out/results-micro-<time>.jsonl.
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Bench } from "tinybench";
import {
  Command,
  FrameEvent,
  FrameReader,
  decodeResponse,
  encodeRequest,
  isWellFormedRequestBody,
  writeRequest,
  writeResponse,
} from "../src/protocol/index.js";
import { StateMachine } from "../src/core/state-machine.js";
import { ENTRY_BYTES, RECORD_HEADER_BYTES, readRecord, recordBytes, sealRecord } from "../src/log/record.js";
import type { AppendResult } from "../src/log/commit-log.js";
import { silentLogger } from "../src/logging/logger.js";
import { openDataDir } from "../src/storage/data-dir.js";
import { nodeLogFiles } from "../src/storage/log-file.js";
import { SegmentLog } from "../src/storage/segment-log.js";

const OUT_DIR = resolve(fileURLToPath(new URL("../..", import.meta.url)));

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

function id(n: number, tag: number): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeUInt32BE(tag, 0);
  bytes.writeUInt32BE(n, 12);
  return bytes;
}

/** Deterministic pseudo-random lock numbers, so runs compare (xorshift32). */
function lockSequence(count: number, keyspace: number): Uint32Array {
  const out = new Uint32Array(count);
  let x = 0x9e3779b9;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) % keyspace;
  }
  return out;
}

const KEYSPACE = 100_000;
const LOCKS = lockSequence(1 << 16, KEYSPACE);
const TTL_MS = 30_000n;
const HOUR_MS = 3_600_000;

// ---- codec ----
const acquireFields = { command: Command.Acquire, requestId: id(1, 1), lockId: id(2, 2), ownerId: id(3, 3), ttlMs: TTL_MS } as const;
const acquireFrame = encodeRequest(acquireFields);
const requestScratch = Buffer.allocUnsafe(64);
const response = Buffer.alloc(17);
writeResponse(response, 0, 0, 123_456, 1_700_000_000_000);

// ---- frame reader: 1000 ACQUIRE frames back to back, whole or cut into 1460-byte segments ----
const FRAMES_PER_STREAM = 1000;
const stream = Buffer.concat(Array.from({ length: FRAMES_PER_STREAM }, () => acquireFrame));
const SEGMENT_BYTES = 1460; // a TCP segment's payload on a 1500-byte MTU
const segments: Buffer[] = [];
for (let at = 0; at < stream.length; at += SEGMENT_BYTES) segments.push(stream.subarray(at, at + SEGMENT_BYTES));
const reader = new FrameReader();

function readAll(chunks: readonly Buffer[]): number {
  let frames = 0;
  for (const chunk of chunks) {
    reader.push(chunk);
    while (reader.next() === FrameEvent.Frame) frames++;
  }
  if (frames !== FRAMES_PER_STREAM) throw new Error(`read ${frames} frames`);
  return frames;
}

// ---- state machine: a server-like stream of commands with fresh request ids ----
// Logical time advances 1 ms every 100 commands (100k commands/s), so the dedupe table reaches the
// steady size a 60 s window holds at that rate, and pruning runs as it does in production.
const machine = new StateMachine({ dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 12345 });
const entry = Buffer.alloc(ENTRY_BYTES);
const answer = Buffer.alloc(17);
let commands = 0;
let requestCounter = 0;
const STAMP_BASE_MS = 1_700_000_000_000;
const OWNER = id(7, 7);

/** Writes a command with a fresh request id into `bytes[at..]` (zeroed once; only these fields change). */
function writeEntry(bytes: Buffer, at: number, cmd: number, lock: number, ttlMs: number): void {
  bytes[at] = cmd;
  bytes.writeUInt32BE(++requestCounter, at + 13); // request id: bytes 1..16, never zero
  bytes.writeUInt32BE(1, at + 1);
  bytes.writeUInt32BE(lock, at + 29); // lock id: bytes 17..32
  OWNER.copy(bytes, at + 33);
  bytes.writeUInt32BE(0, at + 49);
  bytes.writeUInt32BE(ttlMs, at + 53);
}

function nextStampMs(): number {
  return STAMP_BASE_MS + Math.floor(commands++ / 100);
}

function execute(cmd: number, lock: number, ttlMs: number): number {
  writeEntry(entry, 0, cmd, lock, ttlMs);
  return machine.execute(entry, 0, nextStampMs(), answer, 0, null);
}

let next = 0;
function acquireRelease(): void {
  const lock = LOCKS[next++ & 0xffff]!;
  if (execute(Command.Acquire, lock, 30_000) === 0) execute(Command.Release, lock, 0);
}

// Fill the tables to the size the window holds before anything is measured. Growing them writes to
// fresh pages, and a page fault costs 8-12 µs on some VMs (more than a command): the tasks would time
// the growth rather than the commands. lockd prepares those pages on a worker thread instead; once
// full, the dedupe table reuses its chunks.
const WINDOW_COMMANDS = 60_000 * 100;
while (commands < WINDOW_COMMANDS * 1.1) acquireRelease();

// A held lock: one long lease, then ACQUIREs that answer 1.
const HELD_LOCK = KEYSPACE + 1;
execute(Command.Acquire, HELD_LOCK, HOUR_MS);
function acquireHeld(): void {
  if (execute(Command.Acquire, HELD_LOCK, 30_000) !== 1) throw new Error("expected status 1");
}

// A retry: the same request id again, answered from the dedupe table.
const retry = Buffer.alloc(ENTRY_BYTES);
let retryLock = KEYSPACE + 2;
function retrySetup(): void {
  // A lock never used before, so the recorded answer is a grant (tinybench may call this twice).
  if (execute(Command.Acquire, retryLock++, HOUR_MS) !== 0) throw new Error("expected a grant");
  entry.copy(retry);
}
function retryAnswer(): void {
  const stampMs = STAMP_BASE_MS + Math.floor(commands / 100);
  machine.execute(retry, 0, stampMs, answer, 0, null);
  if (answer[0] !== 0) throw new Error("expected the recorded answer 0");
}

// ---- a read's worth of commands: 16 ACQUIREs (+ RELEASEs) in one buffer, with and without look-ahead ----
// The server hashes a read's frames and touches their table buckets first (StateMachine.prefetch)
// so the cache misses overlap; these two tasks do identical work except for that call.
const BURST = 16;
const burst = Buffer.alloc(BURST * ENTRY_BYTES);
const burstStarts = Int32Array.from({ length: BURST }, (_, i) => i * ENTRY_BYTES);
const burstLocks = new Uint32Array(BURST);
function executeBurst(lookAhead: boolean): void {
  for (let i = 0; i < BURST; i++) {
    burstLocks[i] = LOCKS[next++ & 0xffff]!;
    writeEntry(burst, i * ENTRY_BYTES, Command.Acquire, burstLocks[i]!, 30_000);
  }
  if (lookAhead) machine.prefetch(burst, burstStarts, BURST, STAMP_BASE_MS + Math.floor(commands / 100));
  for (let i = 0; i < BURST; i++) {
    if (machine.execute(burst, i * ENTRY_BYTES, nextStampMs(), answer, 0, null) === 0) execute(Command.Release, burstLocks[i]!, 0);
  }
}

// ---- log records: one entry (a lone command) and 64 entries (a busy batch) ----
function recordOf(count: number): Buffer {
  const bytes = Buffer.alloc(recordBytes(count));
  for (let i = 0; i < count; i++) acquireFrame.copy(bytes, RECORD_HEADER_BYTES + i * ENTRY_BYTES, 4);
  sealRecord(bytes, 0, { term: 1, firstIndex: 1, stampMs: STAMP_BASE_MS, count, place: "first-after-durable" });
  return bytes;
}
const record1 = recordOf(1);
const record64 = recordOf(64);
let index = 1;

// ---- the log append: SegmentLog.append of one batch, as the pipeline calls it ----
// A fixed number of appends (not a fixed time), so the write-only task does not fill the disk.
const LOG_APPENDS = 4000;

interface LogUnderTest {
  readonly log: SegmentLog;
  lastIndex: number;
}

/** `inlineSyncMaxEntries` as lockd's `--inline-sync-max` (the default when omitted). */
function openLog(root: string, fsync: "always" | "never", inlineSyncMaxEntries?: number): LogUnderTest {
  const dir = openDataDir(mkdtempSync(resolve(root, `${fsync}-`)));
  const log = new SegmentLog({
    dir,
    files: nodeLogFiles,
    fsync,
    segmentBytes: 64 << 20,
    logger: silentLogger,
    active: null,
    lastIndex: 0,
    onSegmentSealed: () => {},
    ...(inlineSyncMaxEntries === undefined ? {} : { inlineSyncMaxEntries }),
  });
  return { log, lastIndex: 0 };
}

/**
 * One append of `records` (holding `entries` entries); resolves when `done` reports it durable. The
 * record is sealed again first, for the next index: the log refuses records that do not continue it,
 * and the pipeline seals every batch's record the same way.
 */
function append(target: LogUnderTest, records: Buffer, entries: number): Promise<void> {
  sealRecord(records, 0, { term: 1, firstIndex: target.lastIndex + 1, stampMs: STAMP_BASE_MS, count: entries, place: "first-after-durable" });
  target.lastIndex += entries;
  return new Promise((resolve, reject) => {
    target.log.append(records, target.lastIndex, (result: AppendResult) => (result.ok ? resolve() : reject(result.error)));
  });
}

async function main(): Promise<void> {
  const time = Number(argument("--time") ?? 1000);
  const filter = argument("--filter");
  const bench = new Bench({ time, warmupTime: Math.min(500, time / 2) });
  const tasks: [string, () => void, number, (() => void)?][] = [
    ["codec: encodeRequest ACQUIRE (allocates)", () => void encodeRequest(acquireFields), 1],
    ["codec: writeRequest ACQUIRE into a buffer", () => void writeRequest(requestScratch, 0, acquireFields), 1],
    ["codec: isWellFormedRequestBody ACQUIRE", () => void isWellFormedRequestBody(acquireFrame, 4, 57), 1],
    ["codec: writeResponse", () => writeResponse(response, 0, 0, 123_456, 1_700_000_000_000), 1],
    ["codec: decodeResponse (bigint fields)", () => void decodeResponse(response, 0), 1],
    [`frame reader: ${FRAMES_PER_STREAM} frames in one chunk`, () => void readAll([stream]), FRAMES_PER_STREAM],
    [`frame reader: ${FRAMES_PER_STREAM} frames in ${SEGMENT_BYTES}-byte segments`, () => void readAll(segments), FRAMES_PER_STREAM],
    ["state machine: ACQUIRE (+ RELEASE when granted), 100k locks", acquireRelease, 1],
    ["state machine: ACQUIRE of a held lock (status 1)", acquireHeld, 1],
    [`state machine: ${BURST} ACQUIREs (+ RELEASEs), executed one by one`, () => executeBurst(false), BURST],
    [`state machine: ${BURST} ACQUIREs (+ RELEASEs), looked ahead first`, () => executeBurst(true), BURST],
    ["state machine: retry answered from the dedupe table", retryAnswer, 1, retrySetup],
    ["log record: sealRecord, 1 entry", () => void sealRecord(record1, 0, { term: 1, firstIndex: index++, stampMs: STAMP_BASE_MS, count: 1, place: "first-after-durable" }), 1],
    ["log record: sealRecord, 64 entries", () => void sealRecord(record64, 0, { term: 1, firstIndex: index++, stampMs: STAMP_BASE_MS, count: 64, place: "first-after-durable" }), 64],
    ["log record: readRecord, 1 entry", () => void readRecord(record1, 0), 1],
    ["log record: readRecord, 64 entries", () => void readRecord(record64, 0), 64],
  ];
  const perOp = new Map<string, number>();
  for (const [name, fn, ops, beforeAll] of tasks) {
    if (filter !== undefined && !name.includes(filter)) continue;
    bench.add(name, fn, beforeAll === undefined ? {} : { beforeAll });
    perOp.set(name, ops);
  }
  await bench.run();

  const dataRoot = resolve(OUT_DIR, "data");
  mkdirSync(dataRoot, { recursive: true });
  const logRoot = mkdtempSync(resolve(dataRoot, "micro-"));
  const logBench = new Bench({ time: 0, iterations: LOG_APPENDS, warmupTime: 0, warmupIterations: 100 });
  try {
    const writeOnly = openLog(logRoot, "never");
    // lockd's default: a batch with nothing else in flight syncs on the event loop.
    const durable = openLog(logRoot, "always");
    const onPool = openLog(logRoot, "always", 0);
    const logTasks: [string, () => Promise<void>][] = [
      ["log append: 64-entry batch, write only (--fsync never)", () => append(writeOnly, record64, 64)],
      ["log append: 1-entry batch, write + fdatasync on the event loop", () => append(durable, record1, 1)],
      ["log append: 64-entry batch, write + fdatasync on the event loop", () => append(durable, record64, 64)],
      ["log append: 64-entry batch, write + fdatasync on the thread pool", () => append(onPool, record64, 64)],
    ];
    for (const [name, fn] of logTasks) {
      if (filter !== undefined && !name.includes(filter)) continue;
      logBench.add(name, fn);
      perOp.set(name, 1);
    }
    await logBench.run();
    await writeOnly.log.close();
    await durable.log.close();
    await onPool.log.close();
  } finally {
    rmSync(logRoot, { recursive: true, force: true });
  }

  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const file = resolve(OUT_DIR, `results-micro-${stamp}.jsonl`);
  const rows: Record<string, string>[] = [];
  for (const task of [...bench.tasks, ...logBench.tasks]) {
    const result = task.result;
    if (result.state !== "completed") {
      // A task that failed must fail the run: a table missing its rows would pass for a complete one.
      process.stderr.write(`${task.name}: ${result.state}${"error" in result ? ` ${String(result.error)}` : ""}\n`);
      process.exitCode = 1;
      continue;
    }
    // Tasks that handle many items per call are reported per item (a frame, an entry).
    const items = perOp.get(task.name) ?? 1;
    const nsPerOp = (result.latency.mean * 1e6) / items;
    const line = {
      suite: "micro",
      name: task.name + (items > 1 ? " (per item)" : ""),
      ops_per_s: Math.round(1e9 / nsPerOp),
      ns_per_op: Number(nsPerOp.toFixed(1)),
      rme_percent: Number(result.latency.rme.toFixed(2)),
      samples: result.latency.samplesCount,
    };
    appendFileSync(file, `${JSON.stringify(line)}\n`);
    rows.push({ task: line.name, "ns/op": line.ns_per_op.toFixed(1), "ops/s": line.ops_per_s.toLocaleString("en-US"), "±": `${line.rme_percent}%` });
  }
  console.table(rows);
  process.stderr.write(
    `state machine after the run: ${machine.lockRecordCount} lock records, ${machine.dedupeEntryCount} dedupe entries\n` +
      `results: ${file}\n`,
  );
}

void main();
