/**
 * A latency histogram with bounded memory: log-spaced buckets 2% wide from 1 µs to about 100 s, so
 * percentiles are exact to within 2% whatever the number of samples.
 */
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
const BUCKETS = Math.ceil(Math.log(100e6) / LOG_GROWTH) + 1;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private maxUs = 0;

  get count(): number {
    return this.total;
  }

  record(latencyUs: number): void {
    const index = latencyUs <= 1 ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(latencyUs) / LOG_GROWTH));
    this.counts[index]!++;
    this.total++;
    if (latencyUs > this.maxUs) this.maxUs = latencyUs;
  }

  add(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    this.maxUs = Math.max(this.maxUs, other.maxUs);
  }

  /** The latency (µs) at or below which `quantile` (0..1) of the samples fall; 0 when empty. */
  percentileUs(quantile: number): number {
    if (this.total === 0) return 0;
    const rank = Math.ceil(quantile * this.total);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(GROWTH ** i, this.maxUs);
    }
    return this.maxUs;
  }
}
