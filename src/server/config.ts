/**
 * Every limit and knob of lockd, with its default. The CLI turns flags into this; tests build it
 * directly. Each value here is documented in README.md ("Configuration").
 */

import { totalmem } from "node:os";
import { DEFAULT_PORT } from "../protocol/host-port.js";
import { MAX_FRAME_LENGTH } from "../protocol/wire.js";
import { INLINE_SYNC_MAX_ENTRIES, type FsyncMode } from "../storage/segment-log.js";

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  /** Largest ttl_ms accepted; larger (or 0) answers 3. */
  readonly maxTtlMs: number;
  /** Logical ms a decided answer is replayed for a retry with the same request id. */
  readonly dedupeWindowMs: number;
  /** Logical ms an expired lease is remembered so its owner gets 5 instead of 2. */
  readonly expiredRetentionMs: number;
  /** Dedupe entries kept at most; when full, new state changes answer 6. */
  readonly maxDedupeEntries: number;
  /** Lock records kept at most (held, plus expired ones still remembered); then new locks answer 6. */
  readonly maxLocks: number;
  /** Open client connections at most; more are closed at once. */
  readonly maxConnections: number;
  /**
   * Connections accepted at most per turn of the event loop once connections queue up, each through a
   * descriptor of its own for the listening socket (Node accepts one per descriptor per turn).
   */
  readonly acceptsPerTurn: number;
  /** Requests read but not yet answered on one connection; beyond it the server stops reading it. */
  readonly maxInflightPerConnection: number;
  /** Requests read but not yet answered on all connections together; beyond it no connection is read. */
  readonly maxInflightTotal: number;
  /**
   * Largest request length field served (57 to the protocol's 1024); a larger one is answered 3 and
   * the connection closed, since the stream cannot be resynchronised.
   */
  readonly maxFrameLength: number;
  /** Bytes of replies queued to a slow reader before the server stops reading its requests. */
  readonly maxQueuedReplyBytes: number;
  /** A connection holding part of a frame for this long is closed (0 = never). */
  readonly frameTimeoutMs: number;
  /** A connection with nothing in flight and silent for this long is closed (0 = never). */
  readonly idleTimeoutMs: number;
  /** A connection whose client has taken none of its queued answers for this long is closed (0 = never). */
  readonly replyTimeoutMs: number;
  /** always: fdatasync before every reply (default). never: no durability, benchmarks only. */
  readonly fsync: FsyncMode;
  /** Snapshot after this many log bytes since the last one. */
  readonly snapshotEveryBytes: number;
  /** Log segment files roll over at this size. */
  readonly segmentBytes: number;
  /**
   * A batch of at most this many entries, with no other batch syncing, is fdatasync'ed on the event
   * loop rather than the thread pool (Infinity: every such batch; 0: every sync on the thread pool).
   */
  readonly inlineSyncMaxEntries: number;
  /** A stats line on stderr this often (0 = never): load, commit times, how full the tables are. */
  readonly statsEveryMs: number;
  /** Raise the fencing counter by this much before serving (0 = not): after restoring a copy. */
  readonly bumpFencingToken: number;
  /**
   * Refuse to start on a data directory holding no log or snapshot: a mistyped path or an unmounted
   * volume would otherwise start from an empty state and grant every lock and token again.
   */
  readonly requireState: boolean;
  /** Where to serve Prometheus metrics over HTTP (null = nowhere). */
  readonly metricsListen: { readonly host: string; readonly port: number } | null;
}

/**
 * The largest --max-ttl: 100 years. expires_at = now + ttl must stay an exact integer below 2^53
 * (the server keeps times as JavaScript numbers), which this leaves true for any wall clock before
 * the year 285,000; a longer lease means nothing a lock service can promise anyway.
 */
export const MAX_TTL_LIMIT_MS = 3_155_760_000_000;

const MIN_DEFAULT_ENTRIES = 65_536;

/**
 * The default caps on the two tables a client can grow (remembered answers, lock records) are a
 * fixed figure, or one entry per so many bytes of the machine's memory where that is fewer, so a
 * flood of fresh ids meets 6 before the machine runs out of memory. Each table may take about a
 * quarter of the memory when full; memory follows the actual load, not the cap.
 */
function affordable(figure: number, memoryBytesPerEntry: number, totalMemoryBytes: number): number {
  return Math.min(figure, Math.max(MIN_DEFAULT_ENTRIES, Math.floor(totalMemoryBytes / memoryBytesPerEntry)));
}

/** 67,108,864 holds the default 60 s window at ~1.1M changes/s (more than lockd sustains); ≈ 61-75 B each. */
export function defaultMaxDedupeEntries(totalMemoryBytes: number): number {
  return affordable(67_108_864, 256, totalMemoryBytes);
}

/** Lock records take ≈ 120-250 B each. */
export function defaultMaxLocks(totalMemoryBytes: number): number {
  return affordable(10_000_000, 1024, totalMemoryBytes);
}

/**
 * The memory the defaults are sized for: the machine's, or the container's limit (cgroup) where that
 * is smaller, since a lockd in a 2 GiB container on a 64 GiB host is killed at 2 GiB. Node reports no
 * limit as 0, undefined (before Node 22) or 2^64 - 1.
 */
export function memoryForDefaults(totalBytes: number, constrainedBytes: number | undefined): number {
  return constrainedBytes !== undefined && constrainedBytes > 0 && constrainedBytes < totalBytes ? constrainedBytes : totalBytes;
}

const TOTAL_MEMORY_BYTES = memoryForDefaults(totalmem(), process.constrainedMemory?.());

export const DEFAULT_CONFIG: ServerConfig = {
  host: "127.0.0.1",
  port: DEFAULT_PORT,
  dataDir: "./data",
  maxTtlMs: 3_600_000,
  dedupeWindowMs: 60_000,
  expiredRetentionMs: 60_000,
  maxDedupeEntries: defaultMaxDedupeEntries(TOTAL_MEMORY_BYTES),
  maxLocks: defaultMaxLocks(TOTAL_MEMORY_BYTES),
  maxConnections: 10_000,
  // A saturated turn lasts up to tens of ms: 64 per turn lets in thousands of new connections a
  // second, where one per turn let a client resetting connections in a loop keep the queue full.
  acceptsPerTurn: 64,
  maxInflightPerConnection: 1024,
  // Above the 8000 that 500 clients pipelining 16 each keep in flight. A saturated event loop turn
  // runs up to this many commands, and accepts up to acceptsPerTurn connections: at 65536, accepting
  // one per turn, new clients waited seconds behind 200 deeply pipelining ones (README, "Requests in
  // flight").
  maxInflightTotal: 16_384,
  maxQueuedReplyBytes: 64 << 10,
  maxFrameLength: MAX_FRAME_LENGTH,
  frameTimeoutMs: 10_000,
  idleTimeoutMs: 0,
  replyTimeoutMs: 30_000,
  fsync: "always",
  snapshotEveryBytes: 256 << 20,
  segmentBytes: 32 << 20,
  inlineSyncMaxEntries: INLINE_SYNC_MAX_ENTRIES,
  statsEveryMs: 0,
  bumpFencingToken: 0,
  requireState: false,
  metricsListen: null,
};
