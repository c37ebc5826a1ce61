/**
 * Results files: one JSON object per line, as written by the benchmark scripts (a load client's summary
 * with the script's tags merged in front, or a probe/recovery/micro record). This module reads them,
 * finds the newest of each kind, and aggregates repeated runs.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export interface Latency {
  readonly p50: number;
  readonly p90?: number;
  readonly p99: number;
  readonly p999: number;
  readonly max?: number;
}

/** A load run (compare or scaling suites). */
export interface LoadRecord {
  readonly suite: "compare" | "scaling";
  readonly server: string;
  readonly case: string;
  readonly run?: number;
  readonly sweep?: "connections" | "locks";
  readonly live_locks?: number;
  readonly rss_baseline_kb?: number;
  readonly rss_filled_kb?: number;
  readonly fill_seconds?: number;
  readonly client: string;
  readonly server_rss_kb: number;
  /** Bytes in the server's data directory after the run (0: the server persisted nothing). */
  readonly data_bytes?: number;
  readonly failed?: boolean;
  readonly ops_per_s: number;
  readonly lat_us: Latency;
  readonly proto_errors: number;
  readonly conn_errors: number;
  readonly token_nonmonotonic: number;
  readonly release_token_mismatch: number;
  readonly acquire_status?: Record<string, number>;
}

export interface ProbeRecord {
  readonly suite: "probe";
  readonly time: string;
  readonly machine: {
    readonly nproc: number;
    readonly cpu_model: string;
    readonly mem_total_bytes: number;
    readonly node: string;
    readonly kernel: string;
    readonly data_dir_device: string;
    readonly data_dir_fs: string;
  };
  readonly fdatasync_us: { readonly syncs: number; readonly p50: number; readonly p99: number; readonly p999: number };
}

export interface RecoveryRecord {
  readonly suite: "recovery";
  readonly scenario: string;
  readonly entries: number;
  readonly fill_seconds: number;
  readonly data_bytes: number;
  readonly startup_empty_ms: number;
  readonly startup_ms: number;
  readonly rss_before_kill_kb: number;
  readonly rss_after_restart_kb: number;
  readonly persisted: boolean;
}

export interface MicroRecord {
  readonly suite: "micro";
  readonly name: string;
  readonly ops_per_s: number;
  readonly ns_per_op: number;
  readonly rme_percent: number;
  readonly samples: number;
}

export type AnyRecord = LoadRecord | ProbeRecord | RecoveryRecord | MicroRecord;

export function readResults(file: string): AnyRecord[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim().startsWith("{"))
    .map((line) => JSON.parse(line) as AnyRecord);
}

/** The newest `results-<kind>-*.jsonl` in `dir` (names carry a sortable UTC time), or null. */
/** The script's flags: `value("--x")` is the word after --x, `has("--y")` whether --y was given. */
export function commandLine(args: readonly string[] = process.argv.slice(2)): {
  value(flag: string): string | undefined;
  has(flag: string): boolean;
} {
  return {
    value(flag) {
      const at = args.indexOf(flag);
      return at >= 0 ? args[at + 1] : undefined;
    },
    has: (flag) => args.includes(flag),
  };
}

export function newestResults(dir: string, kind: string): string | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  const matching = names.filter((name) => name.startsWith(`results-${kind}-`) && name.endsWith(".jsonl")).sort();
  const newest = matching[matching.length - 1];
  return newest === undefined || statSync(join(dir, newest)).size === 0 ? null : join(dir, newest);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Repeated runs of one server and case, reduced to medians (latencies: the median run's each). */
export interface Aggregate {
  readonly server: string;
  readonly case: string;
  readonly runs: number;
  readonly failedRuns: number;
  readonly opsMedian: number;
  readonly opsMin: number;
  readonly opsMax: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly p999Us: number;
  /** Sum of proto_errors, token_nonmonotonic and release_token_mismatch: must be 0. */
  readonly anomalies: number;
  /** Every run left its data directory empty: whatever the flags said, nothing was made durable. */
  readonly persistedNothing: boolean;
}

export function isLoad(record: AnyRecord): record is LoadRecord {
  return record.suite === "compare" || record.suite === "scaling";
}

export function aggregate(records: readonly LoadRecord[]): Aggregate[] {
  const groups = new Map<string, LoadRecord[]>();
  for (const record of records) {
    const key = `${record.server}\u0000${record.case}\u0000${record.live_locks ?? ""}`;
    const group = groups.get(key) ?? [];
    group.push(record);
    groups.set(key, group);
  }
  return [...groups.values()].map((group) => {
    const ok = group.filter((r) => r.failed !== true && typeof r.ops_per_s === "number");
    const ops = ok.map((r) => r.ops_per_s);
    return {
      server: group[0]!.server,
      case: group[0]!.case,
      runs: group.length,
      failedRuns: group.length - ok.length,
      opsMedian: median(ops),
      opsMin: Math.min(...ops),
      opsMax: Math.max(...ops),
      p50Us: median(ok.map((r) => r.lat_us.p50)),
      p99Us: median(ok.map((r) => r.lat_us.p99)),
      p999Us: median(ok.map((r) => r.lat_us.p999)),
      anomalies: ok.reduce((sum, r) => sum + r.proto_errors + r.token_nonmonotonic + r.release_token_mismatch, 0),
      persistedNothing: ok.length > 0 && ok.every((r) => r.data_bytes === 0),
    };
  });
}

/** "c50-p16" -> { conns: 50, pipeline: 16 } */
export function parseCase(spec: string): { conns: number; pipeline: number } {
  const match = /^c(\d+)-p(\d+)$/.exec(spec);
  if (match === null) return { conns: NaN, pipeline: NaN };
  return { conns: Number(match[1]), pipeline: Number(match[2]) };
}

/** A latency as results files record it: microseconds to a tenth. */
export function tenths(us: number): number {
  return Math.round(us * 10) / 10;
}
