import { createServer, type AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { Status, type Response } from "../../src/protocol/index.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { metricsUrl, parseSamples } from "../support/metrics.js";
import { RawClient } from "../support/raw-client.js";
import { unstamped } from "../support/log-lines.js";
import { acquire, inspect, release, renew } from "../support/frames.js";
import { sleep, splitAnswers } from "../support/answers.js";

const spawned: LockdProcess[] = [];
async function clientOf(args: string[]): Promise<RawClient> {
  const lockd = await spawnLockd({ args });
  spawned.push(lockd);
  return RawClient.open(lockd.port);
}
afterAll(async () => {
  for (const lockd of spawned) {
    expect(await lockd.stop()).toBe(0);
    lockd.cleanup();
  }
});

async function ask(client: RawClient, frame: Buffer): Promise<Response> {
  client.write(frame);
  return splitAnswers(await client.read(17))[0]!;
}

async function askHex(client: RawClient, frame: Buffer): Promise<string> {
  client.write(frame);
  return (await client.read(17)).toString("hex");
}

/** Waits until the wall clock (which is the server's clock on this machine) passes `ms`. */
async function untilWallClockPasses(ms: bigint): Promise<void> {
  while (BigInt(Date.now()) <= ms) await sleep(Math.max(1, Math.min(50, Number(ms - BigInt(Date.now())) + 1)));
}

const UNAVAILABLE: Response = { status: Status.Unavailable, fencingToken: 0n, expiresAt: 0n };
const INVALID: Response = { status: Status.Invalid, fencingToken: 0n, expiresAt: 0n };

describe("ttl_ms == 0 or > --max-ttl: 3", () => {
  it("accepts ttl = --max-ttl and answers 3 above it", async () => {
    const client = await clientOf(["--max-ttl", "5000"]);
    expect(await ask(client, acquire({ lock: 1n, owner: 1n }, 5001n))).toEqual(INVALID);
    expect(await ask(client, acquire({ lock: 1n, owner: 1n }, 0n))).toEqual(INVALID);
    const granted = await ask(client, acquire({ lock: 1n, owner: 1n }, 5000n));
    expect(granted.status).toBe(Status.Ok);
    expect(await ask(client, renew({ lock: 1n, owner: 1n }, 5001n))).toEqual(INVALID);
    client.close();
  });
});

describe("--max-ttl is checked after the remembered request ids: lowering it across a restart keeps retries' answers", () => {
  it("replays an acknowledged ACQUIRE and RENEW above the new bound after kill -9, and answers 3 to new ones", async () => {
    const first = await spawnLockd({ args: ["--max-ttl", "600000"] });
    let second: LockdProcess | undefined;
    try {
      const before = await RawClient.open(first.port);
      const acquired = acquire({ lock: 1n, owner: 1n, request: 501n }, 300_000n);
      const renewed = renew({ lock: 1n, owner: 1n, request: 502n }, 400_000n);
      const answers = [await askHex(before, acquired), await askHex(before, renewed)];
      expect(answers.map((hex) => hex.slice(0, 2))).toEqual(["00", "00"]);
      before.close();
      await first.kill();

      second = await spawnLockd({ dataDir: first.dataDir, args: ["--max-ttl", "1000"] });
      const after = await RawClient.open(second.port);
      expect([await askHex(after, acquired), await askHex(after, renewed)]).toEqual(answers);
      // New requests meet the new bound, before any lock is looked at.
      expect(await ask(after, renew({ lock: 1n, owner: 1n, request: 503n }, 300_000n))).toEqual(INVALID);
      expect(await ask(after, acquire({ lock: 2n, owner: 1n, request: 504n }, 1001n))).toEqual(INVALID);
      // The lease granted before the restart still holds, with its renewed expiry.
      const held = await ask(after, inspect({ lock: 1n, owner: 1n }));
      expect(held.status).toBe(Status.Ok);
      expect(held.expiresAt).toBe(splitAnswers(Buffer.from(answers[1]!, "hex"))[0]!.expiresAt);
      after.close();
      expect(await second.stop()).toBe(0);
    } finally {
      await second?.kill();
      await first.kill();
      first.cleanup();
    }
  });
});

describe("the largest --max-ttl (100 years): a lease that long is granted, and the server stays up", () => {
  it("grants, renews and inspects a 100-year lease with exact times", async () => {
    const client = await clientOf(["--max-ttl", "3155760000000"]);
    const before = BigInt(Date.now());
    const granted = await ask(client, acquire({ lock: 1n, owner: 1n }, 3_155_760_000_000n));
    expect(granted.status).toBe(Status.Ok);
    expect(granted.expiresAt).toBeGreaterThanOrEqual(before + 3_155_760_000_000n);
    expect(granted.expiresAt).toBeLessThanOrEqual(BigInt(Date.now()) + 3_155_760_000_000n);
    const renewed = await ask(client, renew({ lock: 1n, owner: 1n }, 3_155_760_000_000n));
    expect(renewed.status).toBe(Status.Ok);
    expect(renewed.expiresAt).toBeGreaterThanOrEqual(granted.expiresAt);
    expect(await ask(client, inspect({ lock: 1n, owner: 1n }))).toEqual(renewed);
    expect(await ask(client, acquire({ lock: 2n, owner: 1n }, 3_155_760_000_001n))).toEqual(INVALID);
    client.close();
  });
});

describe("--max-frame-length: a length field over it is answered 3 and the connection closed", () => {
  it("serves frames up to the limit, answers 3 to a longer length, runs nothing after it and closes", async () => {
    const lockd = await spawnLockd({ args: ["--max-frame-length", "57"] });
    spawned.push(lockd);
    const client = await RawClient.open(lockd.port);
    const header = (length: number) => Buffer.from([0, 0, length >> 8, length & 0xff]);
    // A 57-byte body that fits no cmd is skipped as usual: the connection stays usable.
    const garbage = Buffer.concat([header(57), Buffer.alloc(57, 0xee)]);
    client.write(Buffer.concat([acquire({ lock: 1n, owner: 1n }, 60_000n), garbage, release({ lock: 1n, owner: 1n }), header(58), acquire({ lock: 2n, owner: 1n }, 60_000n)]));
    const [granted, skipped, released, refused] = splitAnswers(await client.read(4 * 17));
    expect(granted!.status).toBe(Status.Ok);
    expect(skipped).toEqual(INVALID);
    expect(released).toEqual({ status: Status.Ok, fencingToken: granted!.fencingToken, expiresAt: released!.expiresAt });
    expect(refused).toEqual(INVALID);
    expect(await client.closedWithin(3000)).toBe(true);
    expect(client.buffered).toBe(0);
    // The ACQUIRE after the long length was never run: lock 2 is free.
    const other = await RawClient.open(lockd.port);
    expect(await ask(other, inspect({ lock: 2n, owner: 1n }))).toEqual({ status: Status.NotHeld, fencingToken: 0n, expiresAt: 0n });
    other.close();
  });
});

describe("an expired lease is remembered for --expired-retention after its expiry: its owner gets 5, then 2", () => {
  it("answers 5 within the retention and 2 after it", async () => {
    const client = await clientOf(["--expired-retention", "200"]);
    const granted = await ask(client, acquire({ lock: 1n, owner: 1n }, 30n));
    await untilWallClockPasses(granted.expiresAt);
    expect(await ask(client, renew({ lock: 1n, owner: 1n }, 30n))).toEqual({ status: Status.Expired, fencingToken: granted.fencingToken, expiresAt: granted.expiresAt });
    await untilWallClockPasses(granted.expiresAt + 200n);
    expect(await ask(client, renew({ lock: 1n, owner: 1n }, 30n))).toEqual({ status: Status.NotHeld, fencingToken: 0n, expiresAt: 0n });
    client.close();
  });
});

describe("idempotency over TCP: the byte-identical original answer within --dedupe-window", () => {
  it("replays within the window and processes the request anew after it", async () => {
    const client = await clientOf(["--dedupe-window", "300"]);
    const first = acquire({ lock: 1n, owner: 1n, request: 1000n }, 60_000n);
    const original = await askHex(client, first);
    const startedMs = Date.now();
    await ask(client, release({ lock: 1n, owner: 1n }));
    expect(await askHex(client, first)).toBe(original);
    await sleep(300 - (Date.now() - startedMs) + 50);
    const again = await askHex(client, first);
    expect(again).not.toBe(original);
    expect(again.slice(0, 2)).toBe("00"); // granted again, with a new token
    client.close();
  });

  it("the 49- and 57-byte forms of one RELEASE are the same request, whatever the 57-byte trailer holds", async () => {
    const client = await clientOf([]);
    await ask(client, acquire({ lock: 5n, owner: 1n }, 60_000n));
    const short = release({ lock: 5n, owner: 1n, request: 2000n });
    const long = release({ lock: 5n, owner: 1n, request: 2000n }, true);
    long.writeBigUInt64BE(0xdeadbeefn, 4 + 49);
    const answer = await askHex(client, short);
    expect(answer.slice(0, 2)).toBe("00");
    expect(await askHex(client, long)).toBe(answer);
    client.close();
  });
});

describe("capacity limits answer 6 (retry later with the same request id)", () => {
  it("--max-locks: ACQUIRE of a new lock when full gets 6; the same request id succeeds once there is room", async () => {
    const client = await clientOf(["--max-locks", "2"]);
    expect((await ask(client, acquire({ lock: 1n, owner: 1n }, 60_000n))).status).toBe(Status.Ok);
    expect((await ask(client, acquire({ lock: 2n, owner: 1n }, 60_000n))).status).toBe(Status.Ok);
    const third = acquire({ lock: 3n, owner: 1n, request: 3000n }, 60_000n);
    expect(await ask(client, third)).toEqual(UNAVAILABLE);
    expect((await ask(client, inspect({ lock: 1n, owner: 1n }))).status).toBe(Status.Ok);
    expect((await ask(client, release({ lock: 1n, owner: 1n }))).status).toBe(Status.Ok);
    expect((await ask(client, third)).status).toBe(Status.Ok);
    client.close();
  });

  it("--max-dedupe-entries: state changes get 6 when full; INSPECT and retries are still answered", async () => {
    const client = await clientOf(["--max-dedupe-entries", "2"]);
    const first = acquire({ lock: 1n, owner: 1n, request: 4000n }, 60_000n);
    const original = await askHex(client, first);
    expect((await ask(client, acquire({ lock: 2n, owner: 1n }, 60_000n))).status).toBe(Status.Ok);
    expect(await ask(client, release({ lock: 1n, owner: 1n }))).toEqual(UNAVAILABLE);
    expect(await ask(client, acquire({ lock: 3n, owner: 1n }, 60_000n))).toEqual(UNAVAILABLE);
    expect((await ask(client, inspect({ lock: 1n, owner: 1n }))).status).toBe(Status.Ok);
    expect(await askHex(client, first)).toBe(original);
    client.close();
  });
});

describe("--stats-every: a stats line on stderr at each interval", () => {
  it("counts the requests and logged commands of each interval, and shows the tables against their limits", async () => {
    const lockd = await spawnLockd({ args: ["--stats-every", "100", "--max-locks", "500"] });
    spawned.push(lockd);
    const client = await RawClient.open(lockd.port);
    client.write(
      Buffer.concat([
        acquire({ lock: 1n, owner: 1n }, 60_000n),
        acquire({ lock: 2n, owner: 1n }, 60_000n),
        acquire({ lock: 3n, owner: 1n }, 0n), // 3: answered, not logged
      ]),
    );
    expect(splitAnswers(await client.read(3 * 17)).map((answer) => answer.status)).toEqual([Status.Ok, Status.Ok, Status.Invalid]);
    client.close();

    const statsLines = () => unstamped(lockd.stderr()).split("\n").filter((line) => line.startsWith("lockd: stats "));
    const total = (key: string) => statsLines().reduce((sum, line) => sum + Number(new RegExp(` ${key}=(\\d+)`).exec(line)![1]), 0);
    // Wait for a line written after the answers: the lines up to it hold every request.
    const linesAtAnswer = statsLines().length;
    while (statsLines().length < linesAtAnswer + 2) await sleep(50);
    expect(total("requests")).toBe(3);
    expect(total("logged")).toBe(2);
    expect(total("batches")).toBeGreaterThanOrEqual(1);
    const last = statsLines().at(-1)!;
    expect(last).toMatch(/ lock_records=2\/500 /);
    expect(last).toMatch(/ remembered_answers=2\/\d+ /);
    expect(last).toMatch(/ log_index=2$/);
  });

  it("writes no stats line by default", async () => {
    const lockd = await spawnLockd();
    spawned.push(lockd);
    const client = await RawClient.open(lockd.port);
    expect(await ask(client, acquire({ lock: 1n, owner: 1n }, 60_000n))).toMatchObject({ status: Status.Ok });
    client.close();
    await sleep(300);
    expect(lockd.stderr()).not.toContain("stats ");
  });
});

describe("--metrics-listen: Prometheus metrics over HTTP", () => {
  it("serves the counters, sizes and limits at /metrics on the address given, which it logs", async () => {
    const lockd = await spawnLockd({ args: ["--metrics-listen", "127.0.0.1:0", "--max-locks", "500"] });
    spawned.push(lockd);
    const client = await RawClient.open(lockd.port);
    client.write(Buffer.concat([acquire({ lock: 1n, owner: 1n }, 60_000n), acquire({ lock: 2n, owner: 1n }, 60_000n), acquire({ lock: 3n, owner: 1n }, 0n)]));
    expect(splitAnswers(await client.read(3 * 17)).map((answer) => answer.status)).toEqual([Status.Ok, Status.Ok, Status.Invalid]);

    const response = await fetch(metricsUrl(lockd));
    expect(response.status).toBe(200);
    const samples = parseSamples(await response.text());
    expect(samples.get("baton_requests_total")).toBe(3);
    expect(samples.get("baton_log_index")).toBe(2);
    expect(samples.get("baton_lock_records")).toBe(2);
    expect(samples.get("baton_lock_records_limit")).toBe(500);
    expect(samples.get("baton_remembered_answers")).toBe(2);
    expect(samples.get("baton_connections")).toBe(1);
    expect(samples.get("baton_next_fencing_token")).toBe(3);
    expect(samples.get("baton_commit_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(samples.get('baton_commit_seconds_bucket{le="+Inf"}')).toBe(samples.get("baton_commit_seconds_count"));
    client.close();
  });

  it("stops the start, naming the metrics address, when that address is taken", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      await expect(spawnLockd({ args: ["--metrics-listen", `127.0.0.1:${port}`] })).rejects.toThrow(new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${port}`));
    } finally {
      taken.close();
    }
  });
});
