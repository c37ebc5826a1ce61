/**
 * loadgen: a closed-loop, pipelined load generator for lockd in TypeScript, for everyday runs and for
 * machines without a C compiler. It takes the same flags as the C generator (lockload) for the baton
 * protocol and prints the same one-line JSON summary on stdout, so the report reads either.
 *
 * Workloads: acquire-release (acquire a random lock of the key space; when it succeeds, release it
 * next on the same connection; both count as ops) and acquire-only (fresh lock ids, never released).
 *
 * It runs on the same event loop design as the server it measures, so on a small machine it costs the
 * server CPU: prefer lockload for numbers that get compared with other servers.
 */
import { connect, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { Histogram } from "../client/cli/histogram.js";
import { tenths } from "./results.js";

interface Options {
  host: string;
  port: number;
  conns: number;
  pipeline: number;
  durationS: number;
  warmupS: number;
  count: number;
  keyspace: number;
  workload: "acquire-release" | "acquire-only";
  ttlMs: number;
  label: string;
  drainS: number;
}

const USAGE = `usage: loadgen --port N [--host H] [-c N] [-P N] [-d S] [-w S] [-n N] [-k K]
               [--workload acquire-release|acquire-only] [--ttl MS] [--drain S] [--label TEXT]
  -c connections (50), -P requests in flight per connection (1), -d measured seconds (10) after
  -w warm-up seconds (1), -n issue N acquires and record everything instead of a duration,
  -k key space for acquire-release (100000), --ttl lock ttl in ms (30000)`;

function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    host: "127.0.0.1",
    port: 0,
    conns: 50,
    pipeline: 1,
    durationS: 10,
    warmupS: 1,
    count: 0,
    keyspace: 100_000,
    workload: "acquire-release",
    ttlMs: 30_000,
    label: "",
    drainS: 5,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) fail(`${flag} needs a value`);
      return v;
    };
    const num = (): number => {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 0) fail(`${flag} needs a non-negative number`);
      return v;
    };
    switch (flag) {
      case "--host": options.host = value(); break;
      case "--port": options.port = num(); break;
      case "-c": case "--conns": options.conns = num(); break;
      case "-P": case "--pipeline": options.pipeline = num(); break;
      case "-d": case "--duration": options.durationS = num(); break;
      case "-w": case "--warmup": options.warmupS = num(); break;
      case "-n": case "--count": options.count = num(); break;
      case "-k": case "--keyspace": options.keyspace = num(); break;
      case "--ttl": options.ttlMs = num(); break;
      case "--drain": options.drainS = num(); break;
      case "--label": options.label = value(); break;
      case "--proto": if (value() !== "baton") fail("loadgen speaks only --proto baton"); break;
      case "--workload": {
        const w = value();
        if (w !== "acquire-release" && w !== "acquire-only") fail(`unknown workload ${w}`);
        options.workload = w;
        break;
      }
      case "-h": case "--help": process.stderr.write(`${USAGE}\n`); process.exit(0); break;
      default: fail(`unknown option ${flag}`);
    }
  }
  if (options.port <= 0 || options.conns < 1 || options.pipeline < 1 || options.keyspace < 1) fail("bad options");
  return options;
}

function fail(message: string): never {
  process.stderr.write(`loadgen: ${message}\n${USAGE}\n`);
  process.exit(2);
}

const ACQUIRE = 1;
const RELEASE = 3;
const ACQUIRE_FRAME_BYTES = 4 + 57;
const RELEASE_FRAME_BYTES = 4 + 49;
const RESPONSE_BYTES = 17;

/** Shared run state: counters and the phase clock (ms, performance.now()). */
class Run {
  readonly histogram = new Histogram();
  recordFromMs = 0;
  issueUntilMs = Infinity;
  acquiresLeft = Infinity;
  ops = 0;
  acquires = 0;
  releases = 0;
  releaseOk = 0;
  readonly acquireStatus = new Map<number, number>();
  readonly releaseStatus = new Map<number, number>();
  protoErrors = 0;
  connErrors = 0;
  tokenNonmonotonic = 0;
  releaseTokenMismatch = 0;
  nextFreshLock = 1n;

  constructor(readonly options: Options) {}

  mayIssueAcquire(nowMs: number): boolean {
    if (nowMs >= this.issueUntilMs || this.acquiresLeft <= 0) return false;
    this.acquiresLeft--;
    return true;
  }
}

interface Pending {
  op: number;
  sentAtMs: number;
  lock: Buffer;
}

/** One connection: a FIFO of requests in flight (replies come back in request order). */
class Client {
  private readonly socket: Socket;
  private readonly owner = randomBytes(16);
  private readonly requestPrefix = randomBytes(8);
  private requestCounter = 0n;
  private readonly inflight: Pending[] = [];
  private received: Buffer = Buffer.alloc(0);
  private outgoing: Buffer[] = [];
  private lastToken = 0n;
  /** Tokens of acquired locks whose release is in flight, in send order. */
  private readonly releaseTokens: bigint[] = [];
  readonly done: Promise<void>;
  private finish!: () => void;

  constructor(private readonly run: Run, ready: () => void) {
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.socket = connect({ host: run.options.host, port: run.options.port, noDelay: true }, ready);
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("error", () => {
      this.run.connErrors++;
      this.finish();
    });
    this.socket.on("close", () => this.finish());
  }

  start(): void {
    const now = performance.now();
    for (let i = 0; i < this.run.options.pipeline; i++) this.issueAcquire(now);
    this.flush();
  }

  close(): void {
    this.socket.destroy();
  }

  get pending(): number {
    return this.inflight.length;
  }

  private requestId(): Buffer {
    const id = Buffer.allocUnsafe(16);
    this.requestPrefix.copy(id, 0);
    id.writeBigUInt64BE(++this.requestCounter, 8);
    return id;
  }

  private issueAcquire(nowMs: number): void {
    if (!this.run.mayIssueAcquire(nowMs)) return;
    const lock = Buffer.alloc(16);
    if (this.run.options.workload === "acquire-only") {
      this.requestPrefix.copy(lock, 0);
      lock.writeBigUInt64BE(this.run.nextFreshLock++, 8);
    } else {
      lock.writeUInt32BE(0x6c6f636b, 0); // "lock": a fixed prefix so the key space is K ids
      lock.writeBigUInt64BE(BigInt(Math.floor(Math.random() * this.run.options.keyspace)), 8);
    }
    const frame = Buffer.allocUnsafe(ACQUIRE_FRAME_BYTES);
    frame.writeUInt32BE(57, 0);
    frame[4] = ACQUIRE;
    this.requestId().copy(frame, 5);
    lock.copy(frame, 21);
    this.owner.copy(frame, 37);
    frame.writeBigUInt64BE(BigInt(this.run.options.ttlMs), 53);
    this.outgoing.push(frame);
    this.inflight.push({ op: ACQUIRE, sentAtMs: nowMs, lock });
  }

  private issueRelease(nowMs: number, lock: Buffer): void {
    const frame = Buffer.allocUnsafe(RELEASE_FRAME_BYTES);
    frame.writeUInt32BE(49, 0);
    frame[4] = RELEASE;
    this.requestId().copy(frame, 5);
    lock.copy(frame, 21);
    this.owner.copy(frame, 37);
    this.outgoing.push(frame);
    this.inflight.push({ op: RELEASE, sentAtMs: nowMs, lock });
  }

  private flush(): void {
    if (this.outgoing.length === 0) return;
    this.socket.write(this.outgoing.length === 1 ? this.outgoing[0]! : Buffer.concat(this.outgoing));
    this.outgoing = [];
  }

  private onData(chunk: Buffer): void {
    const nowMs = performance.now();
    const bytes = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
    const run = this.run;
    const record = nowMs >= run.recordFromMs;
    let at = 0;
    for (; at + RESPONSE_BYTES <= bytes.length; at += RESPONSE_BYTES) {
      const request = this.inflight.shift();
      if (request === undefined) {
        run.protoErrors++;
        this.socket.destroy();
        return;
      }
      const status = bytes[at]!;
      const token = bytes.readBigUInt64BE(at + 1);
      if (record) {
        run.ops++;
        run.histogram.record((nowMs - request.sentAtMs) * 1000);
      }
      if (request.op === ACQUIRE) {
        if (record) {
          run.acquires++;
          run.acquireStatus.set(status, (run.acquireStatus.get(status) ?? 0) + 1);
        }
        if (status === 0) {
          if (token <= this.lastToken) run.tokenNonmonotonic++;
          this.lastToken = token;
          if (run.options.workload === "acquire-release") {
            this.releaseTokens.push(token);
            this.issueRelease(nowMs, request.lock);
            continue;
          }
        }
        this.issueAcquire(nowMs);
      } else {
        const expected = this.releaseTokens.shift();
        if (record) {
          run.releases++;
          run.releaseStatus.set(status, (run.releaseStatus.get(status) ?? 0) + 1);
          if (status === 0) run.releaseOk++;
        }
        if (status === 0 && expected !== token) run.releaseTokenMismatch++;
        this.issueAcquire(nowMs);
      }
    }
    this.received = at === bytes.length ? Buffer.alloc(0) : bytes.subarray(at);
    this.flush();
    if (this.inflight.length === 0 && this.outgoing.length === 0) this.finish();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function statusObject(counts: Map<number, number>): Record<string, number> {
  return Object.fromEntries([...counts.entries()].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v]));
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const run = new Run(options);
  const clients: Client[] = [];
  await Promise.all(
    Array.from({ length: options.conns }, () => new Promise<void>((resolve) => clients.push(new Client(run, resolve)))),
  );
  const startMs = performance.now();
  if (options.count > 0) {
    run.acquiresLeft = options.count;
    run.recordFromMs = startMs;
  } else {
    run.recordFromMs = startMs + options.warmupS * 1000;
    run.issueUntilMs = run.recordFromMs + options.durationS * 1000;
  }
  for (const client of clients) client.start();
  const drained = Promise.all(clients.map((client) => client.done));
  if (options.count > 0) await drained;
  else await Promise.race([drained, sleep((options.warmupS + options.durationS + options.drainS) * 1000)]);
  const endMs = performance.now();
  const leftInFlight = clients.reduce((sum, client) => sum + client.pending, 0);
  if (leftInFlight > 0) process.stderr.write(`loadgen: drain timeout with ${leftInFlight} requests in flight\n`);
  for (const client of clients) client.close();

  const seconds = options.count > 0 ? (endMs - startMs) / 1000 : options.durationS;
  const h = run.histogram;
  const acquireOk = run.acquireStatus.get(0) ?? 0;
  const summary = {
    tool: "loadgen",
    label: options.label,
    proto: "baton",
    workload: options.workload,
    host: options.host,
    port: options.port,
    conns: options.conns,
    pipeline: options.pipeline,
    threads: 1,
    keyspace: options.keyspace,
    ttl_ms: options.ttlMs,
    seconds: Number(seconds.toFixed(3)),
    ops: run.ops,
    ops_per_s: Number((run.ops / seconds).toFixed(1)),
    acquires: run.acquires,
    acquires_per_s: Number((run.acquires / seconds).toFixed(1)),
    acquire_success_rate: run.acquires === 0 ? 0 : Number((acquireOk / run.acquires).toFixed(6)),
    releases: run.releases,
    release_ok: run.releaseOk,
    acquire_status: statusObject(run.acquireStatus),
    release_status: statusObject(run.releaseStatus),
    lat_us: {
      p50: tenths(h.percentileUs(0.5)),
      p90: tenths(h.percentileUs(0.9)),
      p99: tenths(h.percentileUs(0.99)),
      p999: tenths(h.percentileUs(0.999)),
      max: tenths(h.maxUs),
      mean: tenths(h.meanUs),
    },
    proto_errors: run.protoErrors,
    conn_errors: run.connErrors,
    token_nonmonotonic: run.tokenNonmonotonic,
    release_token_mismatch: run.releaseTokenMismatch,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  process.stderr.write(
    `loadgen baton ${options.workload} c=${options.conns} P=${options.pipeline}: ${Math.round(summary.ops_per_s)} ops/s; ` +
      `latency us p50 ${summary.lat_us.p50} p99 ${summary.lat_us.p99} p99.9 ${summary.lat_us.p999}\n`,
  );
}

void main();
