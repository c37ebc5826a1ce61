/**
 * The stats line (`--stats-every`): what an operator watches between incidents. How much load, how
 * long a batch takes to commit (written, and synced under --fsync always: the disk's health as
 * clients feel it), and how full each table is against its limit, so a climb toward status 6 shows
 * before it happens. One line on stderr per interval, as `key=value` pairs for log tools.
 *
 * The pipeline only adds to counters; the reporter reads them, and each line tells what changed
 * since the one before.
 */

/**
 * Upper bounds (ms) of the commit-time histogram's buckets, for `--metrics-listen`: from a fast
 * disk's sync to a stalled one's. A last bucket holds everything slower.
 */
export const COMMIT_BUCKET_BOUNDS_MS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000];

/** Counters the commit pipeline keeps: cheap enough for every request. */
export class CommitCounters {
  /** Clients' request frames answered or about to be, invalid and refused ones included. */
  requests = 0;
  private committedBatches = 0;
  private commitMsSum = 0;
  private commitMsMax = 0;
  /** Commits per bucket of COMMIT_BUCKET_BOUNDS_MS, the last one past every bound. */
  private readonly bucketCounts = new Float64Array(COMMIT_BUCKET_BOUNDS_MS.length + 1);

  /** Batches committed to the log (written, and synced under --fsync always). */
  get batches(): number {
    return this.committedBatches;
  }

  recordCommit(commitMs: number): void {
    this.committedBatches++;
    this.commitMsSum += commitMs;
    if (commitMs > this.commitMsMax) this.commitMsMax = commitMs;
    let bucket = 0;
    while (bucket < COMMIT_BUCKET_BOUNDS_MS.length && commitMs > COMMIT_BUCKET_BOUNDS_MS[bucket]!) bucket++;
    this.bucketCounts[bucket]!++;
  }

  /** Commits so far at or under each bound of COMMIT_BUCKET_BOUNDS_MS (cumulative), then all of them. */
  cumulativeBuckets(): number[] {
    const cumulative: number[] = [];
    let sum = 0;
    for (const count of this.bucketCounts) cumulative.push((sum += count));
    return cumulative;
  }

  /** The sum of every commit time so far (ms). */
  get commitMsTotal(): number {
    return this.commitMsSum;
  }

  /** The slowest commit since the previous call. */
  takeCommitMsMax(): number {
    const slowest = this.commitMsMax;
    this.commitMsMax = 0;
    return slowest;
  }
}

/**
 * What the stats line and the metrics both report, read at one moment: counters are totals since
 * the start, sizes are as they are now.
 */
export interface ServerReading {
  readonly requests: number;
  /** The log index of the last durable entry: its growth is the number of commands logged. */
  readonly logIndex: number;
  readonly batches: number;
  readonly commitMsTotal: number;
  readonly connections: number;
  /** Requests read and not yet answered, on all connections together. */
  readonly requestsInFlight: number;
  readonly lockRecords: number;
  readonly rememberedAnswers: number;
  readonly nextFencingToken: number;
}

/** A reading for the stats line, at `atMs` on a monotonic clock. */
export interface StatsSample extends ServerReading {
  readonly atMs: number;
  /** The slowest commit since the previous sample. */
  readonly commitMsMax: number;
}

export interface StatsLimits {
  readonly maxConnections: number;
  readonly maxInflightTotal: number;
  readonly maxLocks: number;
  readonly maxDedupeEntries: number;
}

/** The line for the interval from `previous` to `current`. */
export function statsLine(previous: StatsSample, current: StatsSample, limits: StatsLimits): string {
  const seconds = (current.atMs - previous.atMs) / 1000;
  const requests = current.requests - previous.requests;
  const batches = current.batches - previous.batches;
  const commitAvgMs = batches === 0 ? 0 : (current.commitMsTotal - previous.commitMsTotal) / batches;
  return [
    `stats seconds=${seconds.toFixed(1)}`,
    `requests=${requests}`,
    `requests_per_s=${seconds > 0 ? Math.round(requests / seconds) : 0}`,
    `logged=${current.logIndex - previous.logIndex}`,
    `batches=${batches}`,
    `commit_avg_ms=${commitAvgMs.toFixed(2)}`,
    `commit_max_ms=${current.commitMsMax.toFixed(2)}`,
    `connections=${current.connections}/${limits.maxConnections}`,
    `in_flight=${current.requestsInFlight}/${limits.maxInflightTotal}`,
    `lock_records=${current.lockRecords}/${limits.maxLocks}`,
    `remembered_answers=${current.rememberedAnswers}/${limits.maxDedupeEntries}`,
    `log_index=${current.logIndex}`,
  ].join(" ");
}

/**
 * Logs a stats line every `everyMs` until stopped. The timer does not keep the process alive.
 * Returns the function that stops it.
 */
export function reportStats(everyMs: number, sample: () => StatsSample, limits: StatsLimits, log: (line: string) => void): () => void {
  let previous = sample();
  const timer = setInterval(() => {
    const current = sample();
    log(statsLine(previous, current, limits));
    previous = current;
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
