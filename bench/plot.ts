/**
 * plot: draws latency against throughput as a self-contained SVG, one line per server, from results
 * files (the connections sweep of scaling.sh, and the cases of compare.sh). Each point is one load
 * shape (c connections x P in flight); both axes are logarithmic. Solid lines: p99; dashed: p50.
 *
 *   node plot.js --latest [--output bench/latency-throughput.svg]
 *   node plot.js --scaling FILE --compare FILE
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { aggregate, commandLine, isLoad, newestResults, parseCase, readResults, type Aggregate, type LoadRecord } from "./results.js";

const OUT_DIR = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const DEFAULT_OUTPUT = resolve(OUT_DIR, "..", "latency-throughput.svg");

const PANEL_W = 380;
const GAP = 40;
const MARGIN = { left: 80, right: 230, top: 64, bottom: 60 };
const PLOT_H = 440;
const HEIGHT = MARGIN.top + PLOT_H + MARGIN.bottom;

const STYLE: Record<string, { name: string; color: string }> = {
  "lockd-always": { name: "lockd, fsync always", color: "#1f6feb" },
  "lockd-never": { name: "lockd, fsync never", color: "#8ab4f8" },
  "redis-always": { name: "Redis, appendfsync always", color: "#d1242f" },
  "redis-memory": { name: "Redis, in memory", color: "#f4a09c" },
  etcd: { name: "etcd, one member", color: "#2da44e" },
};

interface Axis {
  readonly lo: number;
  readonly hi: number;
  map(value: number): number;
  readonly ticks: number[];
}

function logAxis(values: readonly number[], length: number, flip: boolean): Axis {
  const finite = values.filter((v) => Number.isFinite(v) && v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...finite)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...finite)));
  const span = Math.log10(hi) - Math.log10(lo);
  const ticks: number[] = [];
  for (let decade = lo; decade < hi * 1.0001; decade *= 10) {
    for (const step of span > 3 ? [1] : [1, 2, 5]) if (decade * step <= hi * 1.0001) ticks.push(decade * step);
  }
  return {
    lo,
    hi,
    ticks,
    map(value: number) {
      const t = (Math.log10(value) - Math.log10(lo)) / span;
      return flip ? length - t * length : t * length;
    },
  };
}

function opsLabel(n: number): string {
  if (n >= 1e6) return `${n / 1e6}M`;
  if (n >= 1e3) return `${n / 1e3}k`;
  return String(n);
}

function usLabel(n: number): string {
  if (n >= 1e6) return `${n / 1e6} s`;
  if (n >= 1e3) return `${n / 1e3} ms`;
  return `${n} µs`;
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * One panel per pipeline depth (a line within a panel walks the connection counts, so it is the curve a
 * growing number of clients produces); all panels share the axes so they can be compared by eye.
 */
export function renderSvg(points: readonly Aggregate[], title: string): string {
  const depths = [...new Set(points.map((p) => parseCase(p.case).pipeline))].sort((a, b) => a - b);
  const width = MARGIN.left + depths.length * PANEL_W + (depths.length - 1) * GAP + MARGIN.right;
  const x = logAxis(points.map((p) => p.opsMedian), PANEL_W, false);
  const y = logAxis(points.flatMap((p) => [p.p50Us, p.p99Us]), PLOT_H, true);
  const py = (v: number) => (MARGIN.top + y.map(v)).toFixed(1);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEIGHT}" viewBox="0 0 ${width} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">${escape(title)}</text>`,
    `<text transform="translate(20 ${MARGIN.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle">latency (log scale): p99 solid, p50 dashed</text>`,
  ];
  const servers = [...new Set(points.map((p) => p.server))].sort(
    (a, b) => Object.keys(STYLE).indexOf(a) - Object.keys(STYLE).indexOf(b),
  );
  depths.forEach((depth, panel) => {
    const left = MARGIN.left + panel * (PANEL_W + GAP);
    const px = (v: number) => (left + x.map(v)).toFixed(1);
    for (const tick of x.ticks) {
      parts.push(`<line x1="${px(tick)}" y1="${MARGIN.top}" x2="${px(tick)}" y2="${MARGIN.top + PLOT_H}" stroke="#e5e5e5"/>`);
      parts.push(`<text x="${px(tick)}" y="${MARGIN.top + PLOT_H + 18}" text-anchor="middle">${opsLabel(tick)}</text>`);
    }
    for (const tick of y.ticks) {
      parts.push(`<line x1="${left}" y1="${py(tick)}" x2="${left + PANEL_W}" y2="${py(tick)}" stroke="#e5e5e5"/>`);
      if (panel === 0) parts.push(`<text x="${left - 8}" y="${Number(py(tick)) + 4}" text-anchor="end">${usLabel(tick)}</text>`);
    }
    parts.push(`<rect x="${left}" y="${MARGIN.top}" width="${PANEL_W}" height="${PLOT_H}" fill="none" stroke="#888"/>`);
    parts.push(`<text x="${left + PANEL_W / 2}" y="${MARGIN.top - 8}" text-anchor="middle" font-weight="bold">${depth} in flight per connection</text>`);
    parts.push(`<text x="${left + PANEL_W / 2}" y="${HEIGHT - 18}" text-anchor="middle">throughput (ops/s, log scale)</text>`);
    for (const server of servers) {
      const color = (STYLE[server] ?? { color: "#555" }).color;
      const series = points
        .filter((p) => p.server === server && parseCase(p.case).pipeline === depth && Number.isFinite(p.opsMedian))
        .sort((a, b) => parseCase(a.case).conns - parseCase(b.case).conns);
      const line = (pick: (p: Aggregate) => number) => series.map((p) => `${px(p.opsMedian)},${py(pick(p))}`).join(" ");
      parts.push(`<polyline points="${line((p) => p.p99Us)}" fill="none" stroke="${color}" stroke-width="2"/>`);
      parts.push(`<polyline points="${line((p) => p.p50Us)}" fill="none" stroke="${color}" stroke-width="1" stroke-dasharray="4 4"/>`);
      for (const p of series) {
        parts.push(`<circle cx="${px(p.opsMedian)}" cy="${py(p.p99Us)}" r="3.5" fill="${color}"/>`);
        parts.push(`<circle cx="${px(p.opsMedian)}" cy="${py(p.p50Us)}" r="2.5" fill="white" stroke="${color}"/>`);
        parts.push(
          `<text x="${Number(px(p.opsMedian)) + 5}" y="${Number(py(p.p99Us)) - 5}" font-size="9" fill="#555">c=${parseCase(p.case).conns}</text>`,
        );
      }
    }
  });
  const legendX = width - MARGIN.right + 16;
  servers.forEach((server, index) => {
    const style = STYLE[server] ?? { name: server, color: "#555" };
    const ly = MARGIN.top + 10 + index * 22;
    parts.push(`<line x1="${legendX}" y1="${ly}" x2="${legendX + 24}" y2="${ly}" stroke="${style.color}" stroke-width="3"/>`);
    parts.push(`<text x="${legendX + 30}" y="${ly + 4}">${escape(style.name)}</text>`);
  });
  parts.push(
    `<text x="${legendX}" y="${MARGIN.top + 10 + servers.length * 22 + 12}" font-size="10" fill="#555">c = connections; one point per load shape</text>`,
  );
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}

function main(): void {
  const { value, has } = commandLine();
  const latest = has("--latest");
  const files = [
    value("--scaling") ?? (latest ? newestResults(OUT_DIR, "scaling") : null),
    value("--compare") ?? (latest ? newestResults(OUT_DIR, "compare") : null),
  ].filter((f): f is string => f !== null && f !== undefined);
  // The connections sweep when there is one, else the comparison cases: never both for one server
  // and shape, which would draw two points for the same load.
  let records: LoadRecord[] = [];
  for (const file of files) {
    const loads = readResults(file)
      .filter(isLoad)
      .filter((r) => r.failed !== true && (r.suite === "compare" || r.sweep === "connections"));
    const have = new Set(records.map((r) => `${r.server} ${r.case}`));
    records = records.concat(loads.filter((r) => !have.has(`${r.server} ${r.case}`)));
  }
  if (records.length === 0) {
    process.stderr.write("plot: no load results (use --latest, --scaling FILE or --compare FILE)\n");
    process.exit(1);
  }
  const output = value("--output") ?? DEFAULT_OUTPUT;
  const title = value("--title") ?? "Latency vs throughput: acquire/release on 100k locks, closed loop";
  writeFileSync(output, renderSvg(aggregate(records), title));
  process.stderr.write(`plot: wrote ${output} (${records.length} runs from ${files.map((f) => f.split("/").pop()).join(", ")})\n`);
}

main();
