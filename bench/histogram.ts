/**
 * A log-bucketed latency histogram in microseconds: bucket i covers [GROWTH^i, GROWTH^(i+1)), so any
 * recorded value is reported within 1% of itself, with a fixed, small memory footprint.
 */
const GROWTH = 1.01;
const LOG_GROWTH = Math.log(GROWTH);
/** 1% buckets from 1 µs up to about 1000 s. */
const BUCKETS = Math.ceil(Math.log(1e9) / LOG_GROWTH) + 1;

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;
  private sum = 0;

  record(us: number): void {
    const value = us < 1 ? 1 : us;
    const bucket = Math.min(BUCKETS - 1, Math.floor(Math.log(value) / LOG_GROWTH));
    this.counts[bucket]!++;
    this.count++;
    this.sum += us;
    if (us > this.max) this.max = us;
  }

  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** The value below which `p` percent of the recordings fall (bucket midpoint, 0.1 µs resolution). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const mid = Math.sqrt(GROWTH ** i * GROWTH ** (i + 1));
        return Math.round(Math.min(mid, this.max) * 10) / 10;
      }
    }
    return Math.round(this.max * 10) / 10;
  }
}
