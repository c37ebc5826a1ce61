import { once } from "node:events";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { RESERVED_DESCRIPTORS } from "../../src/server/open-file-limit.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire, inspect, release } from "../support/frames.js";
import { sleep, splitAnswers } from "../support/answers.js";
import { descriptorsFor, listeningSockets } from "../support/descriptors.js";
import { scrapeMetrics } from "../support/metrics.js";
import { useTempDirs } from "../support/temp-dir.js";

const spawned: LockdProcess[] = [];
async function lockdWith(args: string[]): Promise<LockdProcess> {
  const lockd = await spawnLockd({ args });
  spawned.push(lockd);
  return lockd;
}
afterAll(async () => {
  for (const lockd of spawned) {
    expect(await lockd.stop()).toBe(0);
    lockd.cleanup();
  }
});

/** Waits (up to 5 s) until lockd's stderr matches `pattern`; fails the test if it never does. */
async function expectLogged(lockd: LockdProcess, pattern: RegExp): Promise<void> {
  for (const giveUpAtMs = performance.now() + 5_000; !pattern.test(lockd.stderr()) && performance.now() < giveUpAtMs; ) await sleep(20);
  expect(lockd.stderr()).toMatch(pattern);
}

/** ACQUIREs of `count` consecutive fresh locks from `firstLock`, in one stream. */
function acquireRun(count: number, firstLock: bigint, owner: bigint): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, n) => acquire({ lock: firstLock + BigInt(n), owner }, 60_000n)));
}

/** Every answer a grant, each with the next fencing token: executed whole, once each, in order. */
function expectConsecutiveGrants(answers: ReturnType<typeof splitAnswers>): void {
  expect(answers.every((a) => a.status === Status.Ok)).toBe(true);
  for (let n = 1; n < answers.length; n++) {
    if (answers[n]!.fencingToken !== answers[n - 1]!.fencingToken + 1n) throw new Error(`answer ${n} is not the next grant`);
  }
}

/** Every answer a grant, each with a later fencing token than the one before (others' grants may come between). */
function expectIncreasingGrants(answers: ReturnType<typeof splitAnswers>): void {
  expect(answers.every((a) => a.status === Status.Ok)).toBe(true);
  for (let n = 1; n < answers.length; n++) {
    if (answers[n]!.fencingToken <= answers[n - 1]!.fencingToken) throw new Error(`answer ${n} is not a later grant`);
  }
}

async function expectServed(client: RawClient, lock: bigint): Promise<void> {
  client.write(Buffer.concat([acquire({ lock, owner: 1n }, 60_000n), release({ lock, owner: 1n })]));
  const [granted, released] = splitAnswers(await client.read(2 * 17));
  expect(granted!.status).toBe(Status.Ok);
  expect(released!.fencingToken).toBe(granted!.fencingToken);
}

describe("a client sending half a frame and going silent is dropped after --frame-timeout, and never blocks others", () => {
  const FRAME_TIMEOUT_MS = 300;
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await lockdWith(["--frame-timeout", String(FRAME_TIMEOUT_MS)]);
  });

  it("serves other clients while a half frame hangs, then closes the hanging connection", async () => {
    const hanging = await RawClient.open(lockd.port);
    const startedMs = performance.now();
    hanging.write(acquire({ lock: 1n, owner: 1n }, 60_000n).subarray(0, 30));
    const others = await Promise.all(Array.from({ length: 4 }, () => RawClient.open(lockd.port)));
    for (const [n, other] of others.entries()) await expectServed(other, BigInt(100 + n));
    expect(hanging.buffered).toBe(0);
    expect(await hanging.closedWithin(5000)).toBe(true);
    expect(performance.now() - startedMs).toBeGreaterThanOrEqual(FRAME_TIMEOUT_MS);
    expect(hanging.buffered).toBe(0); // the half frame was never answered
    for (const other of others) {
      expect(other.socket.destroyed).toBe(false); // connections without a partial frame stay
      other.close();
    }
    await expectLogged(lockd, /lockd: warning: closed 1 connection holding half a frame for --frame-timeout 300 ms\n/);
  });

  it("never drops a half frame before --frame-timeout has passed", async () => {
    // Staggered across more than one sweep of the server's timer, so some start just before a sweep.
    const hanging = await Promise.all(Array.from({ length: 12 }, () => RawClient.open(lockd.port)));
    const ages = await Promise.all(
      hanging.map(async (client, n) => {
        await sleep(n * 25);
        const startedMs = performance.now();
        client.write(Buffer.from([0, 0, 0, 57, 1]));
        expect(await client.closedWithin(5000)).toBe(true);
        return performance.now() - startedMs;
      }),
    );
    expect(Math.min(...ages)).toBeGreaterThanOrEqual(FRAME_TIMEOUT_MS);
  });

  it("does not drop a connection whose frames complete, however slowly they arrive", async () => {
    const client = await RawClient.open(lockd.port);
    const frame = inspect({ lock: 5n, owner: 5n });
    for (let round = 0; round < 3; round++) {
      client.write(frame.subarray(0, 10));
      await sleep(FRAME_TIMEOUT_MS / 3); // under the timeout however the server's timer is phased
      client.write(frame.subarray(10));
      expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.NotHeld);
      await sleep(FRAME_TIMEOUT_MS * 1.5); // silence between whole frames is not a partial frame
    }
    expect(client.socket.destroyed).toBe(false);
    client.close();
  });
});

describe("the frame timeout runs only while the server waits for the client's bytes", () => {
  const FRAME_TIMEOUT_MS = 300;

  it("never drops a client streaming without pause whose writes end mid-frame", async () => {
    const lockd = await lockdWith(["--frame-timeout", String(FRAME_TIMEOUT_MS)]);
    const client = await RawClient.open(lockd.port);
    // Every write ends 13 bytes into a frame, so every read the server makes leaves a partial frame
    // behind, each one completed by the next write long before the timeout.
    const frameBytes = inspect({ lock: 0n, owner: 1n }).length;
    const frames = Buffer.concat(Array.from({ length: 2000 }, (_, n) => inspect({ lock: BigInt(n), owner: 1n })));
    const perWrite = 10 * frameBytes + 13;
    let answered = 0;
    for (let at = 0; at < frames.length; at += perWrite) {
      client.write(frames.subarray(at, at + perWrite));
      await sleep(10);
      const whole = Math.floor(Math.min(at + perWrite, frames.length) / frameBytes);
      if (whole > answered) {
        await client.read((whole - answered) * 17);
        answered = whole;
      }
    }
    expect(answered).toBe(2000);
    expect(client.socket.destroyed).toBe(false);
    client.close();
  });

  it("does not run while the server holds a client's frames back (--max-inflight), and every answer arrives", async () => {
    const lockd = await lockdWith(["--frame-timeout", String(FRAME_TIMEOUT_MS), "--idle-timeout", String(FRAME_TIMEOUT_MS), "--max-inflight", "2"]);
    const client = await RawClient.open(lockd.port);
    // 8000 state changes, two at a time per fsync: several times the timeout, with the rest of the
    // pipeline (and a partial frame at the end of most reads) held back by the server meanwhile.
    const frames = Buffer.concat(
      Array.from({ length: 4000 }, (_, n) => Buffer.concat([acquire({ lock: BigInt(n), owner: 7n }, 60_000n), release({ lock: BigInt(n), owner: 7n })])),
    );
    client.write(frames);
    const answers = splitAnswers(await client.read(8000 * 17, 60_000));
    expect(answers.every((answer) => answer.status === Status.Ok)).toBe(true);
    expect(client.socket.destroyed).toBe(false);
    client.close();
  });
});

describe("a half frame trickled into a server held back by its in-flight budget", () => {
  it("is still dropped after --frame-timeout: the clock stops while the server holds the bytes, and does not start over", async () => {
    const FRAME_TIMEOUT_MS = 300;
    // A total budget of 4 that pipelining clients keep spent, with more of them waiting for it than
    // it holds: every byte the trickler sends finds the budget spent, so it is held back at each.
    // (Synced batches of at most 4 keep the flood going for longer than the trickle lasts.)
    const lockd = await lockdWith(["--frame-timeout", String(FRAME_TIMEOUT_MS), "--max-inflight-total", "4"]);
    const flood = Buffer.concat(Array.from({ length: 20_000 }, (_, n) => inspect({ lock: BigInt(n % 1000), owner: 1n })));
    const flooders = await Promise.all(Array.from({ length: 16 }, () => RawClient.open(lockd.port)));
    for (const flooder of flooders) flooder.write(flood);
    await Promise.all(flooders.map((flooder) => flooder.read(17))); // the flood is being served
    const trickler = await RawClient.open(lockd.port);
    const frame = acquire({ lock: 1n, owner: 2n }, 60_000n);
    let sent = 0;
    // One byte every 60 ms: the whole frame would take 3.6 s, twelve times the timeout.
    for (; sent < frame.length - 1 && !trickler.socket.destroyed; sent++) {
      trickler.write(frame.subarray(sent, sent + 1));
      await sleep(60);
    }
    expect(trickler.socket.destroyed, `the half frame was kept through ${sent} of ${frame.length} bytes`).toBe(true);
    expect(trickler.buffered).toBe(0);
    for (const flooder of flooders) flooder.close();
  });
});

describe("a client held back by --max-inflight does not hold up the others", () => {
  it("answers another client within a few of the held-back client's requests, not after a whole read of them", async () => {
    const lockd = await lockdWith(["--max-inflight", "1"]);
    const pipeliner = await RawClient.open(lockd.port);
    const other = await RawClient.open(lockd.port);
    const count = 3000;
    // One request answered at a time, each its own batch synced on the spot: the rest of every read
    // waits in the server, to be taken up one request per answer.
    pipeliner.write(Buffer.concat(Array.from({ length: count }, (_, n) => inspect({ lock: BigInt(n), owner: 1n }))));
    await pipeliner.read(17); // the server is into the pipeline
    const before = pipeliner.buffered / 17;
    other.write(inspect({ lock: 999_999n, owner: 2n }));
    expect(splitAnswers(await other.read(17))[0]!.status).toBe(Status.NotHeld);
    const passed = pipeliner.buffered / 17 - before;
    // Every answer of the held-back client is written on its own turn of the event loop, so the other
    // client is read within a few of them (a whole 64 KiB read of them is over 1200).
    expect(passed).toBeLessThan(300);
    expect(splitAnswers(await pipeliner.read((count - 1) * 17, 60_000)).length).toBe(count - 1);
  });
});

describe("a connection closed for a length over 1024 is let go, however much the client sent after it", () => {
  // A length of 1025, then far more than the socket buffers hold.
  const hostileBytes = Buffer.concat([Buffer.from([0, 0, 4, 1]), Buffer.alloc(512 * 1024, 0xab)]);

  async function expectSlotFree(port: number): Promise<void> {
    // With --max-connections 1, a refused client is closed unanswered; a served one gets its answer.
    for (let attempt = 0; attempt < 40; attempt++) {
      const next = await RawClient.open(port);
      next.write(inspect({ lock: 1n, owner: 1n }));
      const served = await next.read(17, 250).then(
        () => true,
        () => false,
      );
      next.close();
      if (served) return;
      await sleep(250);
    }
    throw new Error("the connection slot never came free");
  }

  it("closes completely once the client has sent everything and closes its side", async () => {
    const lockd = await lockdWith(["--max-connections", "1"]);
    const hostile = await RawClient.open(lockd.port);
    hostile.write(hostileBytes);
    expect(splitAnswers(await hostile.read(17))[0]!.status).toBe(Status.Invalid);
    // The client closes its side after the server's FIN once its own bytes are sent, which needs
    // the server to keep reading them.
    expect(await hostile.closedWithin(5000)).toBe(true);
    await expectSlotFree(lockd.port);
  });

  it("is let go after a grace period when the client keeps its side open", async () => {
    const lockd = await lockdWith(["--max-connections", "1"]);
    const hostile = connect({ port: lockd.port, host: "127.0.0.1", allowHalfOpen: true });
    hostile.on("error", () => {});
    const replies: Buffer[] = [];
    hostile.on("data", (chunk: Buffer) => replies.push(chunk));
    const ended = new Promise<void>((resolve) => hostile.once("end", resolve));
    hostile.write(hostileBytes);
    await ended; // the server's FIN, after its answer
    expect(splitAnswers(Buffer.concat(replies))[0]!.status).toBe(Status.Invalid);
    await expectSlotFree(lockd.port); // the client never closes: the server lets go on its own
    hostile.destroy();
  });
});

describe("a request followed by the client's half-close (FIN) still gets its answer", () => {
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await lockdWith([]);
  });

  it("answers everything sent before the FIN, then closes", async () => {
    const client = await RawClient.open(lockd.port);
    client.write(Buffer.concat([acquire({ lock: 9n, owner: 1n }, 60_000n), inspect({ lock: 9n, owner: 1n })]));
    client.end();
    const [granted, inspected] = splitAnswers(await client.read(2 * 17));
    expect(granted!.status).toBe(Status.Ok);
    expect(inspected).toEqual(granted);
    expect(await client.closedWithin(2000)).toBe(true);
  });

  it("answers every one of thousands of pipelined requests sent before the FIN, then closes", async () => {
    const client = await RawClient.open(lockd.port);
    const count = 20_000;
    client.write(Buffer.concat(Array.from({ length: count }, (_, n) => inspect({ lock: BigInt(1_000_000 + n), owner: 1n }))));
    client.end();
    const answers = splitAnswers(await client.read(count * 17));
    expect(answers.every((answer) => answer.status === Status.NotHeld)).toBe(true);
    expect(await client.closedWithin(5000)).toBe(true);
    expect(client.buffered).toBe(0);
  });
});

describe("--max-connections: a connection over the limit is closed immediately", () => {
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await lockdWith(["--max-connections", "2"]);
  });

  it("says at start which limits it serves with", () => {
    expect(lockd.stderr()).toMatch(/lockd: limits: 2 connections, 1024 requests in flight per connection and 16384 in all, \d+ lock records, \d+ remembered answers, ttl up to 3600000 ms, frame lengths up to 1024\n/);
  });

  it("closes the third connection unanswered, and accepts again once one closes", async () => {
    const first = await RawClient.open(lockd.port);
    const second = await RawClient.open(lockd.port);
    await expectServed(first, 1n);
    await expectServed(second, 2n);
    const third = await RawClient.open(lockd.port);
    third.write(inspect({ lock: 3n, owner: 3n }));
    expect(await third.closedWithin(2000)).toBe(true);
    expect(third.buffered).toBe(0);
    await expectServed(first, 4n);
    first.close();
    await first.closed;
    let accepted: RawClient | null = null;
    for (let attempt = 0; attempt < 50 && accepted === null; attempt++) {
      const candidate = await RawClient.open(lockd.port);
      if (await candidate.closedWithin(50)) continue; // the server may not have seen the close yet
      accepted = candidate;
    }
    expect(accepted).not.toBeNull();
    await expectServed(accepted!, 5n);
    accepted!.close();
    second.close();
  });
});

describe("backpressure (--max-inflight, --max-queued-reply-bytes) slows a connection down but answers everything", () => {
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await lockdWith(["--max-inflight", "3", "--max-queued-reply-bytes", "17"]);
  });

  it("answers 3000 pipelined requests in order", async () => {
    const client = await RawClient.open(lockd.port);
    const count = 3000;
    client.write(acquireRun(count, 1000n, 7n));
    expectConsecutiveGrants(splitAnswers(await client.read(count * 17)));
    client.close();
  });

  it("keeps the frames it holds back intact while it reads other connections into the same buffer", async () => {
    // Every connection reads into one shared buffer: the held-back rest of a read must be copied out
    // before the next read, or other clients' bytes would be executed in its place.
    const pipeliner = await RawClient.open(lockd.port);
    const count = 2000;
    pipeliner.write(acquireRun(count, 50_000n, 8n));
    const others = await Promise.all([1, 2, 3].map(() => RawClient.open(lockd.port)));
    const burst = Buffer.concat(Array.from({ length: 500 }, (_, n) => inspect({ lock: 90_000n + BigInt(n), owner: 9n }, true)));
    let othersAnswered = 0;
    const answersOfPipeliner = pipeliner.read(count * 17, 60_000);
    let done = false;
    void answersOfPipeliner.finally(() => (done = true));
    while (!done) {
      await Promise.all(
        others.map(async (other) => {
          other.write(burst);
          const answers = splitAnswers(await other.read(500 * 17));
          expect(answers.every((a) => a.status === Status.NotHeld)).toBe(true);
          othersAnswered += answers.length;
        }),
      );
    }
    expect(othersAnswered).toBeGreaterThan(0);
    expectConsecutiveGrants(splitAnswers(await answersOfPipeliner));
    for (const client of [pipeliner, ...others]) client.close();
  });

  it("answers everything to a client that stops reading for a while", async () => {
    const client = await RawClient.open(lockd.port);
    client.socket.pause();
    const count = 5000;
    const frames: Buffer[] = [];
    for (let n = 0; n < count; n++) frames.push(inspect({ lock: 77n, owner: 7n }, n % 2 === 0));
    client.write(Buffer.concat(frames));
    await sleep(200);
    const other = await RawClient.open(lockd.port);
    await expectServed(other, 9_000n); // a stalled reader does not stall the server
    other.close();
    client.socket.resume();
    const answers = splitAnswers(await client.read(count * 17));
    expect(answers.every((a) => a.status === Status.NotHeld)).toBe(true);
    client.close();
  });
});

describe("--max-inflight-total: connections take turns at the server's budget, and every one is answered", () => {
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await lockdWith(["--max-inflight-total", "2"]);
  });

  it("answers four clients pipelining 500 grants each, every grant once and in each client's order", async () => {
    const clients = await Promise.all([0, 1, 2, 3].map(() => RawClient.open(lockd.port)));
    const count = 500;
    const answered = await Promise.all(
      clients.map(async (client, c) => {
        client.write(acquireRun(count, BigInt(100_000 * (c + 1)), BigInt(c + 1)));
        return splitAnswers(await client.read(count * 17, 60_000));
      }),
    );
    const tokens = answered.flatMap((answers) => {
      expectIncreasingGrants(answers);
      return answers.map((a) => a.fencingToken);
    });
    expect(new Set(tokens).size).toBe(4 * count);
    for (const client of clients) client.close();
  });

  it("answers a light client in its turn while others keep the budget spent, not after them", async () => {
    const pipeliners = await Promise.all([0, 1, 2, 3].map(() => RawClient.open(lockd.port)));
    const count = 2000;
    pipeliners.forEach((client, c) => client.write(acquireRun(count, BigInt(1_000_000 * (c + 1)), BigInt(10 + c))));
    const first = await pipeliners[0]!.read(17); // the budget is being taken in turns
    const light = await RawClient.open(lockd.port);
    const before = pipeliners.reduce((sum, client) => sum + client.buffered / 17, 0);
    await expectServed(light, 5_000_000n);
    const passed = pipeliners.reduce((sum, client) => sum + client.buffered / 17, 0) - before;
    // The light client queues behind at most the four others, two requests a turn: it is answered
    // within a few of their requests (12-14 here), where waiting for them to finish would take nearly 8000.
    expect(passed).toBeLessThan(400);
    const rest = await Promise.all(pipeliners.map((client, c) => client.read((c === 0 ? count - 1 : count) * 17, 60_000)));
    rest[0] = Buffer.concat([first, rest[0]!]);
    for (const answers of rest) expectIncreasingGrants(splitAnswers(answers));
    for (const client of [light, ...pipeliners]) client.close();
  });
});

describe("--idle-timeout: a connection silent with nothing in flight is closed", () => {
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await lockdWith(["--idle-timeout", "300", "--metrics-listen", "127.0.0.1:0"]);
  });

  it("closes a silent connection after the idle timeout, and counts it without a log line (it is routine)", async () => {
    const client = await RawClient.open(lockd.port);
    await expectServed(client, 1n);
    expect(await client.closedWithin(5000)).toBe(true);
    expect((await scrapeMetrics(lockd)).get('baton_connections_closed_total{reason="idle_timeout"}')).toBe(1);
    expect(lockd.stderr()).not.toMatch(/closed \d+ connections/);
  });

  it("also when it holds half a frame and --frame-timeout is off: a partial frame is not in flight", async () => {
    const noFrameTimeout = await lockdWith(["--idle-timeout", "300", "--frame-timeout", "0"]);
    const client = await RawClient.open(noFrameTimeout.port);
    await expectServed(client, 2n);
    client.write(acquire({ lock: 3n, owner: 1n }, 60_000n).subarray(0, 5));
    expect(await client.closedWithin(5000)).toBe(true);
  });
});

describe("--reply-timeout: a client that stops reading its answers is let go, and its connection freed", () => {
  it("closes a connection whose answers wait unread, so that another client gets the only slot", async () => {
    const lockd = await lockdWith(["--max-connections", "1", "--reply-timeout", "300"]);
    const stalled = await RawClient.open(lockd.port);
    stalled.socket.pause(); // reads nothing from here on
    // INSPECTs until both machines' socket buffers are full of answers and lockd queues the rest,
    // then stops reading: the client's writes stop completing (bounded at 64 MB sent).
    const burst = Buffer.concat(Array.from({ length: 10_000 }, () => inspect({ lock: 5n, owner: 5n })));
    for (let sent = 0; sent < 64 << 20 && !stalled.socket.destroyed; sent += burst.length) {
      if (stalled.socket.write(burst)) continue;
      // (A reset from lockd, once it lets the connection go, ends the writing as well.)
      const drained = await Promise.race([once(stalled.socket, "drain").then(() => true, () => false), sleep(1000).then(() => false)]);
      if (!drained) break;
    }

    let accepted: RawClient | null = null;
    for (const giveUpAtMs = performance.now() + 15_000; accepted === null && performance.now() < giveUpAtMs; ) {
      const candidate = await RawClient.open(lockd.port);
      if (await candidate.closedWithin(100)) continue; // refused: the stalled client still holds the slot
      accepted = candidate;
    }
    expect(accepted).not.toBeNull();
    await expectServed(accepted!, 1n);
    accepted!.close();
    stalled.socket.destroy();
    await expectLogged(lockd, /lockd: warning: closed 1 connection that took none of their answers for --reply-timeout 300 ms\n/);
  });
});

describe("a --max-connections above the open-file limit is lowered to what fits, and said so", () => {
  const FILE_LIMIT = 160;
  const FITS = FILE_LIMIT - RESERVED_DESCRIPTORS;
  let lockd: LockdProcess;
  beforeAll(async () => {
    lockd = await spawnLockd({ openFileLimit: FILE_LIMIT });
    spawned.push(lockd);
  });

  it("warns at start, serves that many, and closes the rest itself (counted in its log)", async () => {
    expect(lockd.stderr()).toContain(
      `--max-connections 10000 does not fit the open-file limit (ulimit -n ${FILE_LIMIT}): serving at most ${FITS} connections`,
    );
    const clients: RawClient[] = [];
    for (let n = 0; n < FITS; n++) clients.push(await RawClient.open(lockd.port));
    for (const [n, client] of clients.entries()) await expectServed(client, BigInt(1000 + n));
    const extra = await Promise.all(Array.from({ length: 10 }, () => RawClient.open(lockd.port)));
    for (const client of extra) {
      client.write(inspect({ lock: 1n, owner: 1n }));
      expect(await client.closedWithin(2000)).toBe(true);
      expect(client.buffered).toBe(0);
    }
    // Closed by lockd's own limit, which reports them (libuv's silent closes would not be counted),
    // once per sweep: the ten may be split over two lines when they arrive across a sweep.
    const refused = (): number => {
      let total = 0;
      for (const line of lockd.stderr().matchAll(new RegExp(`refused (\\d+) connections?: the ${FITS} connections that fit the open-file limit \\(ulimit -n ${FILE_LIMIT}\\) reached`, "g"))) total += Number(line[1]);
      return total;
    };
    for (let attempt = 0; attempt < 40 && refused() < 10; attempt++) await sleep(100);
    expect(refused()).toBe(10);
    for (const client of clients) await expectServed(client, 5000n);
    for (const client of clients) client.close();
  });
});

describe("--accepts-per-turn: once connections queue up, many are let in per turn of the event loop", () => {
  const ACCEPT_TURNS_PRELOAD = fileURLToPath(new URL("../support/accept-turns.mjs", import.meta.url));
  const tempDir = useTempDirs();
  const BURST = 256;

  async function lockdCountingAccepts(args: string[]): Promise<{ lockd: LockdProcess; counted: () => { connections: number; turns: number } }> {
    const countFile = join(tempDir(), "accept-turns");
    const lockd = await spawnLockd({ args, env: { NODE_OPTIONS: `--import ${ACCEPT_TURNS_PRELOAD}`, BATON_TEST_ACCEPT_TURNS_FILE: countFile } });
    spawned.push(lockd);
    const counted = () => {
      const [connections, turns] = readFileSync(countFile, "utf8").split(" ").map(Number);
      return { connections: connections!, turns: turns! };
    };
    return { lockd, counted };
  }

  /**
   * Stops lockd, connects BURST clients (the kernel completes each handshake and queues it), lets
   * lockd go on, and gets every client an answer. Returns the turns lockd took to accept them, as the
   * preload counted them (each connection is counted in the turn that accepts it, before its request
   * is read).
   */
  async function turnsToAcceptBurst(lockd: LockdProcess, counted: () => { connections: number; turns: number }, before = { connections: 0, turns: 0 }): Promise<number> {
    process.kill(lockd.child.pid!, "SIGSTOP");
    let clients: RawClient[];
    try {
      clients = await Promise.all(Array.from({ length: BURST }, () => RawClient.open(lockd.port)));
      for (const [n, client] of clients.entries()) client.write(inspect({ lock: BigInt(n), owner: 1n }));
    } finally {
      process.kill(lockd.child.pid!, "SIGCONT");
    }
    for (const client of clients) expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.NotHeld);
    for (const client of clients) client.close();
    const after = counted();
    expect(after.connections - before.connections).toBe(BURST);
    return after.turns - before.turns;
  }

  /** Descriptors of lockd (pid) that refer to the socket it listens on. */
  function listeningDescriptors(pid: number, port: number): number {
    const listening = listeningSockets().find((socket) => socket.port === port);
    expect(listening).toBeDefined();
    return descriptorsFor(pid, listening!.target);
  }

  it(`takes one per turn until connections are queued, then up to 64: a second burst of ${BURST} in a handful of turns`, async () => {
    const { lockd, counted } = await lockdCountingAccepts(["--metrics-listen", "127.0.0.1:0"]);
    expect(listeningDescriptors(lockd.child.pid!, lockd.port)).toBe(1);
    // The preload counts the metrics port's connections too: counting starts after the scrape.
    expect((await scrapeMetrics(lockd)).get("baton_accepting_descriptors")).toBe(1);
    // One a turn for eight turns in a row, then more once the copies are there.
    expect(await turnsToAcceptBurst(lockd, counted, counted())).toBeGreaterThan(8);
    await expectLogged(lockd, /connections are queued: accepting up to 64 per event-loop turn from now on\n/);
    expect(listeningDescriptors(lockd.child.pid!, lockd.port)).toBe(64);
    expect((await scrapeMetrics(lockd)).get("baton_accepting_descriptors")).toBe(64);
    // 64 a turn: four turns, with room for a turn that found the queue partly filled.
    expect(await turnsToAcceptBurst(lockd, counted, counted())).toBeLessThanOrEqual(8);
  });

  it("takes one per turn throughout with --accepts-per-turn 1, as Node alone does", async () => {
    const { lockd, counted } = await lockdCountingAccepts(["--accepts-per-turn", "1"]);
    expect(await turnsToAcceptBurst(lockd, counted)).toBe(BURST);
    expect(await turnsToAcceptBurst(lockd, counted, counted())).toBe(BURST);
    expect(lockd.stderr()).not.toContain("per event-loop turn");
    expect(listeningDescriptors(lockd.child.pid!, lockd.port)).toBe(1);
  });

  it("stops cleanly while a stopped launcher holds back the copies it was asked for", async () => {
    const { lockd, counted } = await lockdCountingAccepts([]);
    const launcher = readFileSync("/proc/" + lockd.child.pid + "/task/" + lockd.child.pid + "/children", "utf8").trim().split(" ").map(Number)[0]!;
    process.kill(launcher, "SIGSTOP");
    try {
      await turnsToAcceptBurst(lockd, counted); // queued connections: lockd asks the launcher for copies
      expect(await lockd.stop()).toBe(0);
      expect(lockd.stderr()).toContain("stopped: every answer sent, the log closed");
    } finally {
      try {
        process.kill(launcher, "SIGKILL");
      } catch {
        // killed by lockd's stop, as it should be
      }
    }
  });

  it("holds its one listening descriptor while connections come one at a time, so a kill -9 frees the port at once", async () => {
    const lockd = await spawnLockd();
    try {
      for (let n = 0; n < 20; n++) {
        const client = await RawClient.open(lockd.port);
        await expectServed(client, BigInt(n));
        client.close();
      }
      expect(listeningDescriptors(lockd.child.pid!, lockd.port)).toBe(1);
    } finally {
      await lockd.kill();
      lockd.cleanup();
    }
    await expect(RawClient.open(lockd.port)).rejects.toThrow("ECONNREFUSED");
  });
});
