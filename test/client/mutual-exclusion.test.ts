/**
 * The question a lock service answers, asked of the SDK end to end: can two clients ever both believe
 * they hold one lock at the same moment? Clients of the SDK contend on a few locks against a real
 * lockd while it is killed with SIGKILL and restarted, paused with SIGSTOP, has its connections
 * cut, has its answers lost while its requests still arrive, and gets requests late, also after
 * their client gave up and retried. Each holder keeps asking `lease.held` while it holds, as code
 * guarding a critical section would, and every answer `true` is recorded in the order it was given
 * (all clients share this process's one thread, so that order is the order of real time).
 *
 * Then, per lock, the recorded holders must follow one another: once a lease with a higher fencing
 * token was seen held, no earlier lease may be seen held again. Short ttls, leases walked away from
 * without a release, and leases that run past their deadline make handovers at the very edge of a
 * lease common, which is where an SDK that trusted the server's clock, or counted its deadline from
 * the answer instead of the first send, would let two holders in.
 *
 * Seeded: BATON_SEED=<n> replays the same choices (the timings still vary).
 */
import { createServer, Socket, type AddressInfo, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonClient, type Lease } from "../../client/index.js";
import { sleep } from "../support/answers.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { randomFromSeed, seededRandom, type SeededRandom } from "../support/seeded-random.js";

const CLIENTS = 10;
const LOCKS = ["edge-a", "edge-b"];
/** Run until this many leases were granted and this many failures were injected, whichever is later. */
const TARGET_GRANTS = 250;
const TARGET_FAILURES = 8;
/** Bounds a run whose server stopped granting; the grant count then reports it. */
const MAX_RUN_MS = 90_000;

/** A `true` answer of `lease.held`, in the order answers were given. */
interface HeldSighting {
  readonly lock: string;
  readonly token: bigint;
}

/** How each granted lease ended, for the counts that show the run reached the edges it is meant to. */
interface Tally {
  grants: number;
  released: number;
  walkedAway: number;
  ranOut: number;
  lostWhileRenewing: number;
  renewalsAsked: number;
  callFailures: number;
  failuresInjected: number;
}

/** One client connection through the relay, and what the relay is doing to it. */
interface Link {
  readonly downstream: Socket;
  readonly upstream: Socket;
  /** Answers are dropped. */
  muted: boolean;
  /** Requests held back, to be delivered late; null while they pass at once. */
  held: Buffer[] | null;
}

/**
 * A TCP relay on a fixed port in front of whichever lockd is running, so the clients keep one endpoint
 * across restarts (a restarted lockd gets a new ephemeral port). What it can do to the connections
 * open at a moment: cut them all; swallow their answers while still passing their requests on; or
 * hold their requests back and deliver them late, even after the client gave up the connection.
 */
class Relay {
  private upstreamPort: number | undefined;
  private readonly links = new Set<Link>();
  private constructor(private readonly server: Server) {}

  static async start(): Promise<Relay> {
    const server = createServer();
    const relay = new Relay(server);
    server.on("connection", (socket) => relay.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Where new connections go; undefined refuses them (reset at once), as a stopped server's port does. */
  pointAt(port: number | undefined): void {
    this.upstreamPort = port;
  }

  cutAll(): void {
    for (const link of this.links) {
      link.held = null;
      link.downstream.resetAndDestroy();
      link.upstream.resetAndDestroy();
    }
    this.links.clear();
  }

  /**
   * The server acts on requests whose answers the clients never see, as on a path that fails one way:
   * on each connection open now for which `pick` says so.
   */
  muteAnswers(pick: () => boolean): void {
    for (const link of this.links) if (pick()) link.muted = true;
  }

  /**
   * Requests sent on the connections open now for which `pick` says so reach the server `delayMs`
   * late, as through a relay or a path that delivers late: also those of a client that gave the
   * connection up meanwhile and retried on another.
   */
  holdRequests(delayMs: number, pick: () => boolean): void {
    for (const link of this.links) {
      if (link.held !== null || !pick()) continue;
      const held: Buffer[] = [];
      link.held = held;
      setTimeout(() => {
        if (link.held !== held) return; // cut meanwhile
        link.held = null;
        for (const requests of held) link.upstream.write(requests);
        if (link.downstream.destroyed) link.upstream.end(); // the server answers them, then sees the close
      }, delayMs);
    }
  }

  close(): Promise<void> {
    this.cutAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: Socket): void {
    if (this.upstreamPort === undefined) {
      downstream.resetAndDestroy();
      return;
    }
    const link: Link = { downstream, upstream: new Socket(), muted: false, held: null };
    const { upstream } = link;
    this.links.add(link);
    downstream.on("error", () => undefined);
    upstream.on("error", () => undefined);
    downstream.on("data", (requests: Buffer) => {
      if (link.held !== null) link.held.push(requests);
      else upstream.write(requests);
    });
    upstream.on("data", (answers: Buffer) => {
      if (!link.muted && !downstream.destroyed) downstream.write(answers);
    });
    downstream.on("close", () => {
      // Requests still held are delivered late; the upstream closes once they are.
      if (link.held === null) upstream.destroy();
    });
    upstream.on("close", () => {
      this.links.delete(link);
      downstream.destroy();
    });
    upstream.connect(this.upstreamPort, "127.0.0.1");
  }
}

/**
 * Holds `lease` for a while, asking `held` every few milliseconds and recording each `true`, then
 * lets it go in one of the ways a real holder does.
 */
async function holdAndLetGo(lock: string, lease: Lease, autoRenew: boolean, random: SeededRandom, sightings: HeldSighting[], tally: Tally): Promise<void> {
  // Without renewal some holders keep asking past the lease's ttl, so their deadline ends them.
  const holdMs = random.int(0, autoRenew ? 3 * lease.ttlMs : Math.round(1.5 * lease.ttlMs));
  const started = performance.now();
  while (performance.now() - started < holdMs) {
    if (!lease.held) {
      if (autoRenew) tally.lostWhileRenewing++;
      else tally.ranOut++;
      return;
    }
    sightings.push({ lock, token: lease.fencingToken });
    if (random.next() < 0.1) {
      // A renewal asking for another ttl, shorter or longer, left to run while the holder works on:
      // once sent, a shorter one may end the server's lease sooner at any moment, answered or not.
      tally.renewalsAsked++;
      void lease.renew({ ttlMs: random.int(20, 200) }).catch(() => undefined);
    }
    await sleep(random.int(0, 3));
  }
  const way = random.next();
  if (way < 0.65) {
    await lease.release().catch(() => undefined);
    tally.released++;
  } else {
    // Walk away without a word, as a crashed holder would: the lock is free only once it expires.
    lease.abandon();
    tally.walkedAway++;
  }
}

async function contend(client: BatonClient, random: SeededRandom, sightings: HeldSighting[], tally: Tally, done: () => boolean): Promise<void> {
  while (!done()) {
    const lock = random.pick(LOCKS);
    const autoRenew = random.next() < 0.4;
    try {
      const result = await client.acquire(lock, { ttlMs: random.int(30, 200), waitMs: random.int(0, 400), autoRenew });
      if (result.status === "acquired") {
        tally.grants++;
        await holdAndLetGo(lock, result.lease, autoRenew, random, sightings, tally);
      } else {
        await sleep(random.int(0, 20));
      }
    } catch {
      // The server was down, paused or cut off for longer than the call's retries: try again.
      tally.callFailures++;
      await sleep(random.int(0, 50));
    }
  }
}

/** Kills, pauses or cuts off lockd, loses its answers or delays its requests, every few hundred milliseconds until `done`. */
async function injectFailures(relay: Relay, dataDir: string, first: LockdProcess, random: SeededRandom, tally: Tally, done: () => boolean): Promise<LockdProcess> {
  let lockd = first;
  while (!done()) {
    await sleep(random.int(100, 800));
    const kind = random.int(0, 4);
    if (kind === 0) {
      relay.pointAt(undefined);
      await lockd.kill();
      await sleep(random.int(0, 400));
      lockd = await spawnLockd({ dataDir });
      relay.pointAt(lockd.port);
    } else if (kind === 1) {
      lockd.child.kill("SIGSTOP");
      await sleep(random.int(30, 500));
      lockd.child.kill("SIGCONT");
    } else if (kind === 2) {
      relay.cutAll();
    } else if (kind === 3) {
      relay.muteAnswers(() => random.next() < 0.5);
      await sleep(random.int(50, 400));
      relay.cutAll();
    } else {
      relay.holdRequests(random.int(50, 600), () => random.next() < 0.5);
    }
    tally.failuresInjected++;
  }
  return lockd;
}

describe("no two SDK clients ever hold one lock at once, through kill -9, SIGSTOP and cut connections", () => {
  let relay: Relay;
  beforeAll(async () => {
    relay = await Relay.start();
  });
  afterAll(() => relay.close());

  it("every lock's holders, in the order they were seen, hold increasing fencing tokens", async () => {
    const random = seededRandom("sdk mutual exclusion");
    let lockd = await spawnLockd();
    relay.pointAt(lockd.port);
    const sightings: HeldSighting[] = [];
    const tally: Tally = { grants: 0, released: 0, walkedAway: 0, ranOut: 0, lostWhileRenewing: 0, renewalsAsked: 0, callFailures: 0, failuresInjected: 0 };
    const startedAt = performance.now();
    const done = () => (tally.grants >= TARGET_GRANTS && tally.failuresInjected >= TARGET_FAILURES) || performance.now() - startedAt > MAX_RUN_MS;
    const clients = Array.from(
      { length: CLIENTS },
      () => new BatonClient({ endpoints: [`127.0.0.1:${relay.port}`], timeoutMs: 250, connectTimeoutMs: 250, backoff: { baseMs: 5, maxMs: 100 } }),
    );
    try {
      const failures = injectFailures(relay, lockd.dataDir, lockd, randomFromSeed(`${random.seed}/failures`), tally, done);
      await Promise.all(clients.map((client, n) => contend(client, randomFromSeed(`${random.seed}/${n}`), sightings, tally, done)));
      lockd = await failures;
    } finally {
      for (const client of clients) client.close();
      lockd.child.kill("SIGCONT");
      await lockd.stop();
      lockd.cleanup();
    }

    // The run reached what it is for: many grants, and handovers after every way a lease ends.
    expect(tally.grants).toBeGreaterThanOrEqual(TARGET_GRANTS);
    expect(tally.failuresInjected).toBeGreaterThanOrEqual(TARGET_FAILURES);
    expect(tally.released).toBeGreaterThan(0);
    expect(tally.walkedAway).toBeGreaterThan(0);
    expect(tally.ranOut).toBeGreaterThan(0);
    expect(tally.renewalsAsked).toBeGreaterThan(0);

    const handovers = new Map<string, number>();
    const latest = new Map<string, bigint>();
    for (const { lock, token } of sightings) {
      const before = latest.get(lock);
      if (before !== undefined && token !== before) {
        // A different lease seen held: it must be a later one, and the earlier never seen again.
        expect(token, `lock ${lock}: lease ${token} seen held after lease ${before}`).toBeGreaterThan(before);
        handovers.set(lock, (handovers.get(lock) ?? 0) + 1);
      }
      latest.set(lock, token);
    }
    for (const lock of LOCKS) expect(handovers.get(lock) ?? 0).toBeGreaterThan(10);
    console.log(`[sdk mutual exclusion] ${JSON.stringify(tally)}, ${sightings.length} sightings, handovers ${JSON.stringify(Object.fromEntries(handovers))}`);
  });
});
