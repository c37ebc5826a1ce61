/**
 * probe: describes the machine a benchmark ran on and measures the disk's floor, as one JSON line:
 * CPU, cores, memory, Node, kernel, the file system under the data directory, and the latency of
 * `fdatasync` after a small append there (the least a durable acknowledgement can cost).
 *
 *   node probe.js --dir DATA_DIR [--syncs N]
 */
import { execFileSync } from "node:child_process";
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Histogram } from "../client/cli/histogram.js";
import { tenths } from "./results.js";

function argument(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (match) return match[1]!.trim();
  } catch {
    // not Linux: fall through to what Node knows
  }
  return cpus()[0]?.model ?? "unknown";
}

function fileSystem(dir: string): { device: string; type: string } {
  try {
    const lines = execFileSync("df", ["-P", "-T", dir], { encoding: "utf8" }).trim().split("\n");
    const fields = lines[lines.length - 1]!.split(/\s+/);
    return { device: fields[0] ?? "?", type: fields[1] ?? "?" };
  } catch {
    return { device: "?", type: "?" };
  }
}

/** Appends `bytes`-sized records and fdatasyncs after each, like a log taking one command at a time. */
function fdatasyncLatency(dir: string, syncs: number, bytes: number): Histogram {
  const scratch = mkdtempSync(join(dir, "probe-"));
  const fd = openSync(join(scratch, "append"), "a");
  const record = Buffer.alloc(bytes, 0x5a);
  const histogram = new Histogram();
  try {
    for (let i = 0; i < syncs; i++) {
      const start = performance.now();
      writeSync(fd, record);
      fdatasyncSync(fd);
      histogram.record((performance.now() - start) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(scratch, { recursive: true, force: true });
  }
  return histogram;
}

const dir = argument("--dir", ".");
const syncs = Number(argument("--syncs", "2000"));
const disk = fileSystem(dir);
const sync = fdatasyncLatency(dir, syncs, 93); // one 57-byte entry in a 36-byte record header
const summary = {
  suite: "probe",
  time: new Date().toISOString(),
  machine: {
    nproc: cpus().length,
    cpu_model: cpuModel(),
    mem_total_bytes: totalmem(),
    node: process.version,
    kernel: release(),
    data_dir_device: disk.device,
    data_dir_fs: disk.type,
  },
  fdatasync_us: { syncs, p50: tenths(sync.percentileUs(0.5)), p99: tenths(sync.percentileUs(0.99)), p999: tenths(sync.percentileUs(0.999)) },
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
