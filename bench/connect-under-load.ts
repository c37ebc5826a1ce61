/**
 * connect-under-load: how long a new client waits to be served while lockd is saturated by clients
 * that pipeline deeply. Node's event loop accepts one connection per listening descriptor per turn,
 * and a saturated turn runs up to --max-inflight-total commands, so that budget and
 * --accepts-per-turn set how fast newcomers get in.
 *
 * For each budget and accepts-per-turn given, a fresh lockd (fsync always) gets `--flooders`
 * connections that each keep 1024 ACQUIREs of their own locks in flight for the whole run, and
 * `--churners` loops that each open a connection and reset it as soon as it is established, again
 * and again, as a hostile client filling the accept queue would; after a second, `--newcomers` new
 * connections open one after another, `--spacing` ms apart (20), and each sends one INSPECT as soon as it connects.
 * Reported: from each newcomer's connect call to its answer (p50, max), the flooders' answers per
 * second over the run, and the connections the churners got established.
 *
 *   node bench/out/build/bench/connect-under-load.js [--budgets 65536,16384] [--accepts 64] [--churners 0]
 *     [--flooders 200] [--newcomers 100] [--spacing 20]
 *
 * LOCKD_ARGS="--stats-every 1000" adds flags to every lockd started, and shows its stderr.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BODY_LOCK_ID, BODY_REQUEST_ID, Command, LENGTH_PREFIX_BYTES, RESPONSE_BYTES, encodeRequest, u128ToBytes } from "../src/protocol/index.js";

const ROOT = resolve(fileURLToPath(new URL("../../../..", import.meta.url)));
const LOCKD = join(ROOT, "dist/src/cli/lockd.js");
const IN_FLIGHT_PER_FLOODER = 1024;

const { values } = parseArgs({
  options: {
    budgets: { type: "string", default: "65536,16384" },
    accepts: { type: "string", default: "64" },
    churners: { type: "string", default: "0" },
    flooders: { type: "string", default: "200" },
    newcomers: { type: "string", default: "100" },
    spacing: { type: "string", default: "20" },
  },
});
const budgets = values.budgets.split(",").map(Number);
const acceptsPerTurn = values.accepts.split(",").map(Number);
const churnerCount = Number(values.churners);
const flooderCount = Number(values.flooders);
const newcomerCount = Number(values.newcomers);
const spacingMs = Number(values.spacing);

/** The last words of the request id and the lock id in a frame: the counters `flood` patches. */
const REQUEST_COUNTER_AT = LENGTH_PREFIX_BYTES + BODY_REQUEST_ID + 12;
const LOCK_COUNTER_AT = LENGTH_PREFIX_BYTES + BODY_LOCK_ID + 12;

/** A request frame: a request id unique to (connection, n), lock id `lock`, owner 0xaa, ttl 30 s. */
function frame(command: Command, connection: number, n: number, lock: number): Buffer {
  return encodeRequest({
    command,
    requestId: u128ToBytes((BigInt(connection + 1) << 32n) | BigInt(n + 1)),
    lockId: u128ToBytes(BigInt(lock)),
    ownerId: u128ToBytes(0xaan),
    ttlMs: 30_000n,
  });
}

function startLockd(budget: number, accepts: number, dataDir: string): Promise<{ child: ChildProcess; port: number }> {
  const flags = ["--max-inflight-total", String(budget), "--accepts-per-turn", String(accepts)];
  const child = spawn(process.execPath, [LOCKD, "--listen", "127.0.0.1:0", "--data", dataDir, ...flags, ...(process.env.LOCKD_ARGS ?? "").split(" ").filter(Boolean)], {
    stdio: ["ignore", "pipe", process.env.LOCKD_ARGS ? "inherit" : "ignore"],
  });
  return new Promise((done, fail) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      out += text;
      const match = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
      if (match !== null) done({ child, port: Number(match[1]) });
    });
    child.once("exit", (code) => fail(new Error(`lockd exited (${code}) before listening`)));
  });
}

/** A connection that keeps IN_FLIGHT_PER_FLOODER requests in flight until stopped; counts answers. */
function flood(port: number, index: number, counter: { answers: number }): Socket {
  const socket = connect({ port, host: "127.0.0.1", noDelay: true });
  let sent = 0;
  let pending = 0;
  const template = frame(Command.Acquire, index, 0, 0);
  const sendMore = (count: number) => {
    // One buffer per write, from a template with only the request id's and lock id's counters patched:
    // the client shares the machine's two cores with lockd and must stay cheap.
    const frames = Buffer.allocUnsafe(count * template.length);
    for (let k = 0, at = 0; k < count; k++, sent++, at += template.length) {
      template.copy(frames, at);
      frames.writeUInt32BE(sent + 1, at + REQUEST_COUNTER_AT);
      frames.writeUInt32BE(index * 1_000_000 + (sent % 1_000_000), at + LOCK_COUNTER_AT);
    }
    socket.write(frames);
  };
  socket.on("connect", () => sendMore(IN_FLIGHT_PER_FLOODER));
  socket.on("data", (chunk: Buffer) => {
    pending += chunk.length;
    const answered = Math.floor(pending / RESPONSE_BYTES);
    pending -= answered * RESPONSE_BYTES;
    counter.answers += answered;
    if (answered > 0 && !socket.destroyed) sendMore(answered);
  });
  socket.on("error", () => undefined);
  return socket;
}

/** Opens a connection and resets it once established, again and again until `running.on` is false. */
function churn(port: number, running: { on: boolean }, counter: { established: number }): void {
  if (!running.on) return;
  const socket = connect({ port, host: "127.0.0.1" }, () => {
    counter.established++;
    socket.resetAndDestroy();
  });
  socket.on("error", () => undefined);
  socket.on("close", () => churn(port, running, counter));
}

/** Milliseconds from the connect call to the answer of one INSPECT sent on connect. */
function newcomer(port: number, index: number): Promise<number> {
  const started = performance.now();
  return new Promise((done, fail) => {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true }, () => socket.write(frame(Command.Inspect, 1_000_000 + index, 0, 0xfffffff)));
    let received = 0;
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received >= RESPONSE_BYTES) {
        done(performance.now() - started);
        socket.destroy();
      }
    });
    socket.on("error", fail);
  });
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function measure(budget: number, accepts: number): Promise<void> {
  const dataRoot = join(ROOT, "bench/out/data");
  mkdirSync(dataRoot, { recursive: true });
  const dataDir = mkdtempSync(join(dataRoot, "connect-"));
  const { child, port } = await startLockd(budget, accepts, dataDir);
  const counter = { answers: 0 };
  const flooders = Array.from({ length: flooderCount }, (_, i) => flood(port, i, counter));
  const churning = { on: true };
  const churned = { established: 0 };
  for (let i = 0; i < churnerCount; i++) churn(port, churning, churned);
  await sleep(1000);
  const answersBefore = counter.answers;
  const started = performance.now();
  const waits: Promise<number>[] = [];
  for (let i = 0; i < newcomerCount; i++) {
    waits.push(newcomer(port, i));
    await sleep(spacingMs);
  }
  const times = (await Promise.all(waits)).sort((a, b) => a - b);
  const seconds = (performance.now() - started) / 1000;
  const throughput = Math.round((counter.answers - answersBefore) / seconds);
  churning.on = false;
  for (const socket of flooders) socket.destroy();
  child.kill("SIGTERM");
  await new Promise((done) => child.once("exit", done));
  rmSync(dataDir, { recursive: true, force: true });
  const p50 = times[Math.floor(times.length / 2)]!;
  const max = times[times.length - 1]!;
  console.log(
    JSON.stringify({
      suite: "connect-under-load",
      budget,
      acceptsPerTurn: accepts,
      flooders: flooderCount,
      churners: churnerCount,
      newcomers: newcomerCount,
      spacingMs,
      p50Ms: +p50.toFixed(1),
      maxMs: +max.toFixed(1),
      floodOpsPerS: throughput,
      churnedConnections: churned.established,
    }),
  );
}

for (const budget of budgets) for (const accepts of acceptsPerTurn) await measure(budget, accepts);
