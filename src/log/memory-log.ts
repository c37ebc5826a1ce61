import type { AppendResult, CommitLog } from "./commit-log.js";

const OK: AppendResult = { ok: true };

/** A log that keeps nothing: `--fsync never`-like speed, no durability at all. For tests and benchmarks. */
export class MemoryLog implements CommitLog {
  appendedBytes = 0;

  append(records: Buffer, _lastIndex: number, done: (result: AppendResult) => void): void {
    this.appendedBytes += records.length;
    setImmediate(done, OK);
  }

  async close(): Promise<void> {}
}
