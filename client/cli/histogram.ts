/**
 * A latency histogram with bounded memory: log-spaced buckets 1% wide from 1 µs to about 1000 s, so
 * a percentile is within 1% of the true value (never below it) whatever the number of samples.
 * `lockctl bench` and the load generators in bench/ report through it.
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(1e9) / LOG_GROWTH) + 1;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private sumUs = 0;
  private largestUs = 0;

  get count(): number {
    return this.total;
  }

  get maxUs(): number {
    return this.largestUs;
  }

  get meanUs(): number {
    return this.total === 0 ? 0 : this.sumUs / this.total;
  }

  record(latencyUs: number): void {
    const index = latencyUs <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(latencyUs) / LOG_GROWTH));
    this.counts[index]!++;
    this.total++;
    this.sumUs += latencyUs;
    if (latencyUs > this.largestUs) this.largestUs = latencyUs;
  }

  add(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    this.sumUs += other.sumUs;
    this.largestUs = Math.max(this.largestUs, other.largestUs);
  }

  /** The latency (µs) at or below which `quantile` (0..1) of the samples fall: its bucket's upper end, at most the largest sample; 0 when empty. */
  percentileUs(quantile: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil(quantile * this.total);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(GROWTH ** i, this.largestUs);
    }
    return this.largestUs;
  }
}
