/**
 * report: renders results files as tables (aligned text for a terminal, or Markdown), checks the
 * targets, and can splice the Markdown into BENCHMARKS.md between `<!-- bench:NAME -->` and
 * `<!-- /bench:NAME -->` markers, so the document is regenerated from results, never typed in.
 *
 *   node report.js --compare FILE                    # the comparison table, as text
 *   node report.js --latest --markdown               # newest results of every kind, as Markdown
 *   node report.js --latest --update BENCHMARKS.md   # rewrite the marked sections
 *
 * Sections without results are left as they are (their "to be measured" placeholders stay).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  aggregate,
  commandLine,
  isLoad,
  median,
  newestResults,
  parseCase,
  readResults,
  type Aggregate,
  type AnyRecord,
  type LoadRecord,
  type MicroRecord,
  type ProbeRecord,
  type RecoveryRecord,
} from "./results.js";

const OUT_DIR = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/**
 * The C ceiling at c=50 P=16 on the reference 2-core machine (trivial epoll server, fixed reply), used
 * only when a results file has no `ceiling` runs of its own (bench/ceiling.c, measured side by side).
 */
const DEFAULT_CEILING_OPS = 1_880_000;

const SERVER_NAMES: Record<string, string> = {
  "lockd-always": "lockd, fsync always",
  "lockd-never": "lockd, fsync never",
  "redis-always": "Redis, appendfsync always",
  "redis-memory": "Redis, in memory",
  etcd: "etcd, one member",
  ceiling: "C ceiling (no state, no disk)",
  "node-ceiling-always": "Node ceiling, fdatasync per turn (no state)",
  "node-ceiling-never": "Node ceiling (no state, no disk)",
};
const SERVER_ORDER = Object.keys(SERVER_NAMES);
/** Which Redis configuration each lockd mode is compared with. */
const REDIS_PEER: Record<string, string> = { "lockd-always": "redis-always", "lockd-never": "redis-memory" };

type Table = { readonly head: readonly string[]; readonly rows: readonly (readonly string[])[] };

function render(table: Table, markdown: boolean): string {
  if (markdown) {
    const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
    return [line(table.head), line(table.head.map(() => "---")), ...table.rows.map(line)].join("\n");
  }
  const widths = table.head.map((h, i) => Math.max(h.length, ...table.rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(table.head), line(widths.map((w) => "-".repeat(w))), ...table.rows.map(line)].join("\n");
}

function ops(n: number): string {
  if (!Number.isFinite(n)) return "—";
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(0)}k`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n.toFixed(0);
}

function us(n: number): string {
  if (!Number.isFinite(n)) return "—";
  if (n >= 10_000) return `${(n / 1000).toFixed(1)} ms`;
  return n >= 100 ? n.toFixed(0) : n.toFixed(1);
}

function ratio(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(2)}×` : "—";
}

function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

function byServerThenCase(a: Aggregate, b: Aggregate): number {
  const ca = parseCase(a.case);
  const cb = parseCase(b.case);
  return ca.conns - cb.conns || ca.pipeline - cb.pipeline || SERVER_ORDER.indexOf(a.server) - SERVER_ORDER.indexOf(b.server);
}

function find(aggregates: readonly Aggregate[], server: string, spec: string): Aggregate | undefined {
  return aggregates.find((a) => a.server === server && a.case === spec);
}

/** The disk's fdatasync p50 over a run: the median of its probes (one before every round of runs). */
function syncFloorUs(probes: readonly ProbeRecord[]): number {
  return probes.length === 0 ? NaN : median(probes.map((p) => p.fdatasync_us.p50));
}

function machineSection(probes: readonly ProbeRecord[], markdown: boolean): string {
  const probe = probes[0]!;
  const m = probe.machine;
  const p50s = probes.map((p) => p.fdatasync_us.p50);
  const sync =
    probes.length === 1
      ? `p50 ${us(probe.fdatasync_us.p50)} µs, p99 ${us(probe.fdatasync_us.p99)} µs (${probe.fdatasync_us.syncs} syncs)`
      : `p50 ${us(syncFloorUs(probes))} µs (median of ${probes.length} probes of ${probe.fdatasync_us.syncs} syncs, one before each round of runs: ` +
        `${us(Math.min(...p50s))}–${us(Math.max(...p50s))} µs), p99 ${us(median(probes.map((p) => p.fdatasync_us.p99)))} µs`;
  return [
    `Measured ${probe.time.slice(0, 16).replace("T", " ")} UTC.`,
    "",
    render(
      {
        head: ["what", "value"],
        rows: [
          ["CPU", `${m.cpu_model}, ${m.nproc} cores (nproc)`],
          ["memory", bytes(m.mem_total_bytes)],
          ["Node", m.node],
          ["kernel", m.kernel],
          ["data directory", `${m.data_dir_device} (${m.data_dir_fs})`],
          ["fdatasync of a 93-byte append", sync],
        ],
      },
      markdown,
    ),
  ].join("\n");
}

function compareSection(records: readonly LoadRecord[], markdown: boolean): string {
  const aggregates = aggregate(records).sort(byServerThenCase);
  const runs = Math.max(...aggregates.map((a) => a.runs));
  const clients = [...new Set(records.map((r) => r.client))].join(", ");
  const rows = aggregates.map((a) => {
    const peer = REDIS_PEER[a.server];
    const peerAggregate = peer === undefined ? undefined : find(aggregates, peer, a.case);
    return [
      a.case.replace("c", "c=").replace("-p", " P="),
      SERVER_NAMES[a.server] ?? a.server,
      ops(a.opsMedian),
      a.runs > 1 ? `${ops(a.opsMin)}–${ops(a.opsMax)}` : "(1 run)",
      us(a.p50Us),
      us(a.p99Us),
      us(a.p999Us),
      peerAggregate === undefined ? "" : ratio(a.opsMedian / peerAggregate.opsMedian),
      checks(a),
    ];
  });
  const table = render(
    {
      head: ["case", "server", "ops/s (median)", "min–max", "p50 µs", "p99 µs", "p99.9 µs", "lockd/Redis", "checks"],
      rows,
    },
    markdown,
  );
  return `${table}\n\nMedian of ${runs} run(s) per row, client: ${clients}. Latencies: the median over runs of each run's percentile. ` +
    "lockd/Redis compares equal durability (fsync always with appendfsync always; fsync never with Redis in memory).";
}

function checks(a: Aggregate): string {
  const notes: string[] = [];
  if (a.anomalies > 0) notes.push(`${a.anomalies} client-detected anomalies`);
  if (a.failedRuns > 0) notes.push(`${a.failedRuns} failed runs`);
  if (a.server === "lockd-always" && a.persistedNothing) notes.push("wrote nothing to --data: not durable");
  return notes.join("; ");
}

interface TargetInputs {
  readonly compare: readonly Aggregate[];
  readonly probes: readonly ProbeRecord[];
  readonly locks: readonly LoadRecord[];
  readonly recovery: readonly RecoveryRecord[];
  /** The reference ceiling, for results with no `ceiling` runs. */
  readonly ceilingOps: number;
}

function targetsSection(input: TargetInputs, markdown: boolean): string {
  const at = (server: string, spec: string) => find(input.compare, server, spec);
  const opsRatio = (a: string, b: string, spec: string) => (at(a, spec)?.opsMedian ?? NaN) / (at(b, spec)?.opsMedian ?? NaN);
  const verdict = (ok: boolean | null) => (ok === null ? "to be measured" : ok ? "met" : "NOT met");
  // A "durable" number from a build that wrote nothing to disk says nothing about the durable target.
  const notDurable = input.compare.some((a) => a.server === "lockd-always" && a.persistedNothing);
  const durableVerdict = (ok: boolean | null) => (notDurable && ok !== null ? "not comparable: lockd persisted nothing" : verdict(ok));
  const rows: string[][] = [];
  const addRatio = (target: string, measured: number, goal: number, durable = true) =>
    rows.push([target, ratio(measured), `≥ ${goal}×`, (durable ? durableVerdict : verdict)(Number.isFinite(measured) ? measured >= goal : null)]);

  addRatio("c=50 P=16 durable: lockd ÷ Redis appendfsync always", opsRatio("lockd-always", "redis-always", "c50-p16"), 2);
  // The ceiling measured in the same run when there is one: the machine's speed moves between runs.
  const measuredCeiling = at("ceiling", "c50-p16")?.opsMedian;
  const ceilingOps = measuredCeiling ?? input.ceilingOps;
  const ceilingShare = (at("lockd-always", "c50-p16")?.opsMedian ?? NaN) / ceilingOps;
  rows.push([
    `c=50 P=16 durable: lockd ÷ C ceiling (${ops(ceilingOps)} ops/s, ${measuredCeiling === undefined ? "reference" : "this run"})`,
    Number.isFinite(ceilingShare) ? `${(ceilingShare * 100).toFixed(0)}%` : "—",
    "≥ 35%",
    durableVerdict(Number.isFinite(ceilingShare) ? ceilingShare >= 0.35 : null),
  ]);
  addRatio("c=50 P=1 durable: lockd ÷ Redis appendfsync always", opsRatio("lockd-always", "redis-always", "c50-p1"), 1.5);
  const p50 = at("lockd-always", "c1-p1")?.p50Us ?? NaN;
  const floor = syncFloorUs(input.probes);
  const over = p50 - floor;
  rows.push([
    "c=1 P=1 durable: lockd p50 − fdatasync p50",
    Number.isFinite(over) ? `${us(p50)} − ${us(floor)} = ${us(over)} µs` : "—",
    "≤ 60 µs",
    durableVerdict(Number.isFinite(over) ? over <= 60 : null),
  ]);
  addRatio("c=50 P=16 in memory: lockd fsync never ÷ Redis in memory", opsRatio("lockd-never", "redis-memory", "c50-p16"), 2, false);

  const million = input.locks.filter((r) => r.live_locks === 1_000_000 && r.server.startsWith("lockd") && r.rss_filled_kb !== undefined);
  const perLock = million.length === 0 ? NaN : Math.min(...million.map((r) => ((r.rss_filled_kb! - (r.rss_baseline_kb ?? 0)) * 1024) / 1_000_000));
  rows.push([
    "1M live locks: RSS per lock (lockd, above its empty RSS)",
    Number.isFinite(perLock) ? `${perLock.toFixed(0)} B` : "—",
    "≤ 250 B",
    verdict(Number.isFinite(perLock) ? perLock <= 250 : null),
  ]);
  for (const scenario of ["log", "snapshot"]) {
    const record = input.recovery.find((r) => r.scenario === scenario && r.entries >= 1_000_000);
    const persisted = record?.persisted === true;
    rows.push([
      `recovery of 1M ${scenario === "log" ? "log entries" : "live locks from a snapshot"}`,
      record === undefined ? "—" : persisted ? `${(record.startup_ms / 1000).toFixed(2)} s` : "nothing persisted",
      "≤ 2 s",
      record === undefined || !persisted ? verdict(null) : verdict(record.startup_ms <= 2000),
    ]);
  }
  return render({ head: ["target", "measured", "goal", "status"], rows }, markdown);
}

function connectionsSection(records: readonly LoadRecord[], markdown: boolean): string {
  const aggregates = aggregate(records).sort(byServerThenCase);
  const rows = aggregates.map((a) => {
    const c = parseCase(a.case);
    return [SERVER_NAMES[a.server] ?? a.server, String(c.conns), String(c.pipeline), ops(a.opsMedian), us(a.p50Us), us(a.p99Us)];
  });
  return render({ head: ["server", "connections", "P", "ops/s", "p50 µs", "p99 µs"], rows }, markdown);
}

function locksSection(records: readonly LoadRecord[], markdown: boolean): string {
  const sorted = [...records].sort(
    (a, b) => SERVER_ORDER.indexOf(a.server) - SERVER_ORDER.indexOf(b.server) || (a.live_locks ?? 0) - (b.live_locks ?? 0),
  );
  const rows = sorted.map((r) => {
    const grownKb = (r.rss_filled_kb ?? 0) - (r.rss_baseline_kb ?? 0);
    const perLock = r.live_locks ? (grownKb * 1024) / r.live_locks : NaN;
    return [
      SERVER_NAMES[r.server] ?? r.server,
      (r.live_locks ?? 0).toLocaleString("en-US"),
      r.fill_seconds === undefined ? "—" : `${r.fill_seconds.toFixed(1)} s`,
      bytes((r.rss_filled_kb ?? 0) * 1024),
      r.live_locks !== undefined && r.live_locks >= 100_000 && Number.isFinite(perLock) ? `${perLock.toFixed(0)} B` : "—",
      r.failed === true ? "failed" : ops(r.ops_per_s),
      r.failed === true ? "—" : us(r.lat_us.p99),
    ];
  });
  return render(
    { head: ["server", "live locks", "fill time", "RSS filled", "RSS per lock", `${records[0]?.case ?? ""} ops/s`, "p99 µs"], rows },
    markdown,
  );
}

function recoverySection(records: readonly RecoveryRecord[], markdown: boolean): string {
  const rows = records.map((r) => [
    r.scenario,
    r.entries.toLocaleString("en-US"),
    bytes(r.data_bytes),
    `${r.startup_empty_ms} ms`,
    r.persisted ? `${r.startup_ms} ms` : `${r.startup_ms} ms (nothing persisted)`,
    `${bytes(r.rss_before_kill_kb * 1024)} → ${bytes(r.rss_after_restart_kb * 1024)}`,
  ]);
  return render({ head: ["scenario", "entries", "data on disk", "empty start", "restart", "RSS before kill → after"], rows }, markdown);
}

function microSection(records: readonly MicroRecord[], markdown: boolean): string {
  const rows = records.map((r) => [r.name, ops(r.ops_per_s), r.ns_per_op.toFixed(0), `±${r.rme_percent.toFixed(1)}%`, String(r.samples)]);
  return render({ head: ["benchmark", "ops/s", "ns/op", "margin", "samples"], rows }, markdown);
}

function splice(document: string, name: string, body: string): string {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from < 0 || to < from) {
    process.stderr.write(`report: no ${start} ... ${end} markers; section skipped\n`);
    return document;
  }
  return `${document.slice(0, from + start.length)}\n${body}\n${document.slice(to)}`;
}

function main(): void {
  const { value, has } = commandLine();
  const latest = has("--latest");
  const outDir = value("--out") ?? OUT_DIR;
  const pick = (kind: string): string | null => value(`--${kind}`) ?? (latest ? newestResults(outDir, kind) : null);
  const update = value("--update");
  const markdown = has("--markdown") || update !== undefined;
  const ceilingOps = Number(value("--ceiling-ops") ?? DEFAULT_CEILING_OPS);

  const load = (file: string | null): AnyRecord[] => (file === null ? [] : readResults(file));
  const compareFile = pick("compare");
  const scalingFile = pick("scaling");
  const recoveryFile = pick("recovery");
  const microFile = pick("micro");
  const compare = load(compareFile);
  const scaling = load(scalingFile);
  const recovery = load(recoveryFile).filter((r): r is RecoveryRecord => r.suite === "recovery");
  const micro = load(microFile).filter((r): r is MicroRecord => r.suite === "micro");
  const isProbe = (r: AnyRecord): r is ProbeRecord => r.suite === "probe";
  // The compare run's own probes when it has them: the c=1 target is measured against those minutes.
  const compareProbes = compare.filter(isProbe);
  const probesFile = compareProbes.length > 0 ? compareFile : scalingFile;
  const probes = compareProbes.length > 0 ? compareProbes : scaling.filter(isProbe);
  const compareLoads = compare.filter(isLoad);
  const connections = scaling.filter(isLoad).filter((r) => r.sweep === "connections");
  const locks = scaling.filter(isLoad).filter((r) => r.sweep === "locks");

  const sections: [string, string, string | null][] = [];
  if (probes.length > 0) sections.push(["machine", machineSection(probes, markdown), probesFile]);
  if (compareLoads.length > 0) sections.push(["compare", compareSection(compareLoads, markdown), compareFile]);
  if (compareLoads.length > 0 || locks.length > 0 || recovery.length > 0) {
    const targets = targetsSection({ compare: aggregate(compareLoads), probes, locks, recovery, ceilingOps }, markdown);
    sections.push(["targets", targets, compareFile]);
  }
  if (connections.length > 0) sections.push(["connections", connectionsSection(connections, markdown), scalingFile]);
  if (locks.length > 0) sections.push(["locks", locksSection(locks, markdown), scalingFile]);
  if (recovery.length > 0) sections.push(["recovery", recoverySection(recovery, markdown), recoveryFile]);
  if (micro.length > 0) sections.push(["micro", microSection(micro, markdown), microFile]);
  if (sections.length === 0) {
    process.stderr.write("report: no results given (use --compare FILE, ... or --latest)\n");
    process.exit(1);
  }

  if (update !== undefined) {
    let document = readFileSync(update, "utf8");
    for (const [name, body, file] of sections) {
      const source = file === null ? "" : `\n\n<sub>from \`bench/out/${file.split("/").pop()}\`</sub>`;
      document = splice(document, name, `${body}${source}`);
    }
    writeFileSync(update, document);
    process.stderr.write(`report: updated ${sections.map(([name]) => name).join(", ")} in ${update}\n`);
    return;
  }
  for (const [name, body] of sections) process.stdout.write(`\n== ${name} ==\n${body}\n`);
}

main();
