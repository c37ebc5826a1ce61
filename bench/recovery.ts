/**
 * recovery: how long lockd takes to start on a full data directory. For each scenario it starts a
 * fresh lockd, fills it with N never-released locks through the load client (acquire-only, 1 h ttl:
 * N log entries and N live locks), kills it with SIGKILL, and times the restart on the same directory
 * from spawn to the "lockd listening" line (Node's own start-up included; the empty start is reported
 * next to it). Scenarios:
 *   log       no snapshot: recovery replays N log entries
 *   snapshot  small segments and frequent snapshots: recovery loads a snapshot of ~N locks, replays the tail
 *
 *   node recovery.js --results FILE [--entries N] [--scenarios log,snapshot] [--data-root DIR] -- CLIENT...
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("../../../..", import.meta.url)));
const LOCKD = join(ROOT, "dist/src/cli/lockd.js");
const START_TIMEOUT_MS = 120_000;
const SNAPSHOT_WAIT_MS = 120_000;
const FILL_TTL_MS = 3_600_000;

/** Bytes one filled lock adds to the log: a 57-byte entry, plus record headers shared by a batch. */
const LOG_BYTES_PER_ENTRY = 60;
const MIN_SEGMENT_BYTES = 1 << 16;

/**
 * lockd flags per scenario. `snapshot` sizes segments at 1/16 of the fill's log and snapshots every
 * two sealed segments, so a snapshot holding most of the locks exists before the kill at any N.
 */
function scenarioFlags(name: string, entries: number): string[] | undefined {
  if (name === "log") return ["--snapshot-every", String(Number.MAX_SAFE_INTEGER)];
  if (name !== "snapshot") return undefined;
  const segmentBytes = Math.max(MIN_SEGMENT_BYTES, Math.ceil((entries * LOG_BYTES_PER_ENTRY) / 16));
  return ["--segment-bytes", String(segmentBytes), "--snapshot-every", String(2 * segmentBytes)];
}

interface Running {
  readonly child: ChildProcess;
  readonly port: number;
  /** From spawn to the "lockd listening" line. */
  readonly startupMs: number;
  stderr(): string;
  readonly exited: Promise<void>;
}

function startLockd(dataDir: string, flags: readonly string[]): Promise<Running> {
  const started = performance.now();
  const child = spawn(process.execPath, [LOCKD, "--listen", "127.0.0.1:0", "--data", dataDir, ...flags], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`lockd did not listen within ${START_TIMEOUT_MS} ms\n${stderr}`));
    }, START_TIMEOUT_MS);
    let stdout = "";
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
      const match = /lockd listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        const startupMs = Math.round(performance.now() - started);
        resolveStart({ child, port: Number(match[1]), startupMs, stderr: () => stderr, exited });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`lockd exited before listening:\n${stderr}`));
    });
  });
}

function rssKb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const match = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match === null ? 0 : Number(match[1]);
  } catch {
    return 0;
  }
}

function directoryBytes(dir: string): number {
  const du = spawnSync("du", ["-sb", dir], { encoding: "utf8" });
  return Number(du.stdout.split("\t")[0] ?? 0) || 0;
}

async function waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (predicate()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return predicate();
}

async function stop(running: Running, signal: NodeJS.Signals): Promise<void> {
  if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill(signal);
  await running.exited;
}

async function scenario(name: string, entries: number, dataRoot: string, client: readonly string[]): Promise<object> {
  const flags = scenarioFlags(name, entries);
  if (flags === undefined) throw new Error(`unknown scenario ${name}`);
  const dataDir = mkdtempSync(join(dataRoot, `recovery-${name}-`));
  try {
    const first = await startLockd(dataDir, flags);
    const fillStarted = performance.now();
    const fill = spawnSync(
      client[0]!,
      [...client.slice(1), "--proto", "baton", "--host", "127.0.0.1", "--port", String(first.port), "--workload", "acquire-only",
        "-n", String(entries), "-c", "50", "-P", "16", "--ttl", String(FILL_TTL_MS), "--label", `recovery fill ${name}`],
      { encoding: "utf8", timeout: 600_000 },
    );
    const fillSeconds = (performance.now() - fillStarted) / 1000;
    if (fill.status !== 0) process.stderr.write(`recovery: fill exited ${fill.status}: ${fill.stderr.slice(-500)}\n`);
    let snapshotTaken = false;
    if (name === "snapshot") {
      snapshotTaken = await waitFor(() => /snapshot at index/.test(first.stderr()), SNAPSHOT_WAIT_MS);
      if (!snapshotTaken) process.stderr.write("recovery: no snapshot was written; this build may not snapshot\n");
    }
    const rssBeforeKill = rssKb(first.child.pid);
    await stop(first, "SIGKILL");
    const dataBytes = directoryBytes(dataDir);

    const second = await startLockd(dataDir, flags);
    const rssAfterRestart = rssKb(second.child.pid);
    await new Promise((r) => setTimeout(r, 100));
    const recoveredLine = /recovered .*/.exec(second.stderr())?.[0] ?? "";
    const lockRecords = Number(/(\d+) lock records/.exec(recoveredLine)?.[1] ?? NaN);
    await stop(second, "SIGTERM");
    const persisted = Number.isFinite(lockRecords) ? lockRecords >= entries * 0.99 : dataBytes > entries;
    return {
      suite: "recovery",
      time: new Date().toISOString(),
      scenario: name,
      flags: flags.join(" "),
      entries,
      fill_seconds: Number(fillSeconds.toFixed(3)),
      snapshot_taken: snapshotTaken,
      data_bytes: dataBytes,
      startup_empty_ms: first.startupMs,
      startup_ms: second.startupMs,
      rss_before_kill_kb: rssBeforeKill,
      rss_after_restart_kb: rssAfterRestart,
      recovered_lock_records: Number.isFinite(lockRecords) ? lockRecords : null,
      recovered_line: recoveredLine,
      persisted,
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const split = args.indexOf("--");
  const options = split >= 0 ? args.slice(0, split) : args;
  const client = split >= 0 ? args.slice(split + 1) : [];
  const value = (flag: string, fallback: string) => {
    const at = options.indexOf(flag);
    return at >= 0 && options[at + 1] !== undefined ? options[at + 1]! : fallback;
  };
  if (client.length === 0) throw new Error("usage: recovery.js --results FILE [--entries N] [--scenarios log,snapshot] [--data-root DIR] -- CLIENT...");
  const results = value("--results", "");
  const entries = Number(value("--entries", "1000000"));
  const dataRoot = value("--data-root", join(ROOT, "bench/out/data"));
  mkdirSync(dataRoot, { recursive: true });
  for (const name of value("--scenarios", "log,snapshot").split(",")) {
    process.stderr.write(`recovery: ${name}: filling ${entries} locks, killing, restarting\n`);
    const line = JSON.stringify(await scenario(name, entries, dataRoot, client));
    if (results !== "") appendFileSync(results, `${line}\n`);
    process.stdout.write(`${line}\n`);
  }
}

await main();
