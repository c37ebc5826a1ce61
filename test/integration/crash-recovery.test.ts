/**
 * Real crashes: drive lockd with concurrent clients, `kill -9` it at a random moment, restart it on the
 * same data directory, and check every acknowledged fact survived. Seeded: BATON_SEED=<n> replays.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import seedrandom from "seedrandom";
import { afterEach, describe, expect, it } from "vitest";
import { Command, decodeResponse, Status, type Response } from "../../src/protocol/index.js";
import { acquire, inspect, release, renew } from "../support/frames.js";
import { LOCKD_BIN, spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { useTempDirs } from "../support/temp-dir.js";
import { listSegments, listSnapshots, openDataDir } from "../../src/storage/data-dir.js";

const tempDir = useTempDirs();
const running: LockdProcess[] = [];
afterEach(async () => {
  for (const lockd of running.splice(0)) await lockd.kill();
});

async function start(dataDir: string, args: string[] = []): Promise<LockdProcess> {
  const lockd = await spawnLockd({ dataDir, args });
  running.push(lockd);
  return lockd;
}

interface Sent {
  readonly frame: Buffer;
  readonly command: number;
  readonly lock: bigint;
  readonly owner: bigint;
  reply?: Buffer;
}

const LOCKS = 12;
const CLIENTS = 8;
const TTL = 120_000n;

/** One client: one request at a time, each on a random lock, recording what was acknowledged. */
async function driveClient(port: number, owner: bigint, random: () => number, history: Sent[], stop: { now: boolean }): Promise<void> {
  let client: RawClient;
  try {
    client = await RawClient.open(port);
  } catch {
    return;
  }
  try {
    while (!stop.now) {
      const lock = BigInt(Math.floor(random() * LOCKS));
      const pick = random();
      const ids = { lock, owner, request: BigInt(Math.floor(random() * 2 ** 48)) + 1n };
      const [command, frame] =
        pick < 0.45 ? [Command.Acquire, acquire(ids, TTL)] : pick < 0.7 ? [Command.Renew, renew(ids, TTL)] : [Command.Release, release(ids)];
      const sent: Sent = { frame, command, lock, owner };
      history.push(sent);
      client.write(frame);
      sent.reply = await client.read(17, 5_000);
    }
  } catch {
    // the server died under us: the last request stays unacknowledged
  } finally {
    client.close();
  }
}

function seedFromEnv(): string {
  const seed = process.env.BATON_SEED ?? String(Date.now());
  console.log(`crash-recovery seed: ${seed} (replay with BATON_SEED=${seed})`);
  return seed;
}

// Tiny segments and snapshot thresholds make the compaction process run all through the load, so
// kills land before, during and after snapshots.
const SNAPSHOTTING = ["--segment-bytes", "65536", "--snapshot-every", "65536"];

describe.each([
  { setting: "default flags", args: [] as string[] },
  { setting: "a snapshot every 64 KiB of log", args: SNAPSHOTTING },
  // The default syncs each batch on the event loop; this keeps several syncs in flight at the kill.
  { setting: "every sync on the thread pool", args: ["--inline-sync-max", "0"] },
])("every acknowledged change survives kill -9 ($setting)", ({ args }) => {
  it("keeps acknowledged leases, issues greater tokens, never moves expiry back, and replays retried request ids", async () => {
    const seed = seedFromEnv();
    const random = seedrandom(seed);
    const dataDir = tempDir();
    const history: Sent[] = [];
    let maxAckedToken = 0n;
    let leasesChecked = 0;

    for (let cycle = 0; cycle < 3; cycle++) {
      const lockd = await start(dataDir, args);
      const stop = { now: false };
      const clients = Array.from({ length: CLIENTS }, (_, n) =>
        driveClient(lockd.port, BigInt(n + 1), seedrandom(`${seed}/${cycle}/${n}`), history, stop),
      );
      // Longer with snapshots on, so even a slow machine fills a few 64 KiB segments per cycle.
      const loadMs = (args === SNAPSHOTTING ? 400 : 100) + Math.floor(random() * 400);
      await new Promise((resolve) => setTimeout(resolve, loadMs));
      if (args === SNAPSHOTTING && cycle === 2) {
        // At least the last restart must load a snapshot. On a slow disk or a slow process start, the
        // random kills can all land before any compaction finished: keep the load on until one has
        // (bounded), and kill right after.
        for (let waited = 0; waited < 20_000 && listSnapshots(openDataDir(dataDir)).length === 0; waited += 20) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      await lockd.kill(); // SIGKILL mid-load
      stop.now = true;
      await Promise.all(clients);

      const restarted = await start(dataDir, args);
      const probe = await RawClient.open(restarted.port);
      const ask = async (frame: Buffer): Promise<Response> => {
        probe.write(frame);
        return decodeResponse(await probe.read(17));
      };

      // The acknowledged holder of each lock: the highest granted token, unless its release was acknowledged.
      const acked = history.filter((sent) => sent.reply !== undefined);
      for (const sent of acked) {
        const reply = decodeResponse(sent.reply!);
        if (reply.fencingToken > maxAckedToken) maxAckedToken = reply.fencingToken;
      }
      for (let lock = 0n; lock < BigInt(LOCKS); lock++) {
        let holder: { owner: bigint; token: bigint; expiresAt: bigint } | null = null;
        for (const sent of acked) {
          if (sent.lock !== lock) continue;
          const reply = decodeResponse(sent.reply!);
          if (reply.status !== Status.Ok) continue;
          if (sent.command === Command.Acquire && (holder === null || reply.fencingToken > holder.token)) {
            holder = { owner: sent.owner, token: reply.fencingToken, expiresAt: reply.expiresAt };
          } else if (holder !== null && reply.fencingToken === holder.token) {
            if (sent.command === Command.Release) holder = null;
            else holder.expiresAt = reply.expiresAt; // the holder's latest renewal (one request at a time per client)
          }
        }
        if (holder === null) continue;
        // The holder's own unacknowledged RELEASE of this lock may have reached the disk: then it is free,
        // or taken since by another client's unacknowledged ACQUIRE.
        const pendingRelease = history.some(
          (sent) => sent.reply === undefined && sent.lock === lock && sent.owner === holder!.owner && sent.command === Command.Release,
        );
        const pendingRenew = history.some(
          (sent) => sent.reply === undefined && sent.lock === lock && sent.owner === holder!.owner && sent.command === Command.Renew,
        );
        const seen = await ask(inspect({ lock, owner: holder.owner }));
        if (pendingRelease && (seen.status === Status.NotHeld || seen.status === Status.Held)) continue;
        expect(seen.status, `cycle ${cycle} lock ${lock}`).toBe(Status.Ok);
        expect(seen.fencingToken).toBe(holder.token);
        // Renewals all use the same ttl, so an unanswered one that took effect only moves it later.
        if (pendingRenew) expect(seen.expiresAt).toBeGreaterThanOrEqual(holder.expiresAt);
        else expect(seen.expiresAt).toBe(holder.expiresAt);
        leasesChecked++;
      }

      // Retried request ids get their original replies, byte for byte (all within the dedupe window).
      for (const sent of acked.slice(-40)) {
        probe.write(sent.frame);
        expect((await probe.read(17)).toString("hex")).toBe(sent.reply!.toString("hex"));
      }

      // Every token issued from now on is greater than every acknowledged one.
      const fresh = await ask(acquire({ lock: 1000n + BigInt(cycle), owner: 99n }, 1000n));
      expect(fresh.status).toBe(Status.Ok);
      expect(fresh.fencingToken).toBeGreaterThan(maxAckedToken);
      maxAckedToken = fresh.fencingToken;
      probe.close();
      await restarted.kill();
      running.splice(running.indexOf(restarted), 1);
    }
    expect(history.filter((sent) => sent.reply !== undefined).length).toBeGreaterThan(50);
    expect(leasesChecked).toBeGreaterThan(0);
    // With tiny thresholds the restarts recovered from snapshots the compaction process wrote.
    if (args === SNAPSHOTTING) expect(listSnapshots(openDataDir(dataDir)).length).toBeGreaterThan(0);
  });
});

describe("damage found on restart", () => {
  /** 20 grants, then a clean stop (SIGTERM) or a crash (kill -9). */
  async function prepare(stop: "clean" | "crash" = "clean"): Promise<{ dataDir: string; segment: string }> {
    const dataDir = tempDir();
    const lockd = await start(dataDir);
    const client = await RawClient.open(lockd.port);
    for (let n = 0n; n < 20n; n++) {
      client.write(acquire({ lock: n, owner: 1n }, 600_000n));
      expect((await client.read(17))[0]).toBe(Status.Ok);
    }
    client.close();
    if (stop === "clean") expect(await lockd.stop()).toBe(0);
    else await lockd.kill();
    running.splice(running.indexOf(lockd), 1);
    const [segment] = listSegments(openDataDir(dataDir));
    return { dataDir, segment: segment!.path };
  }

  function startFails(dataDir: string) {
    return spawnSync(process.execPath, [LOCKD_BIN, "--listen", "127.0.0.1:0", "--data", dataDir], { encoding: "utf8", timeout: 10_000 });
  }

  /** The newest segment cut inside its last record, as a truncation (or a torn write after a crash) leaves it. */
  function cutLastRecord(segment: string): void {
    const bytes = readFileSync(segment);
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    truncateSync(segment, end - 30);
  }

  it("a clean stop records the log's last index, and the next start removes the record", async () => {
    const { dataDir } = await prepare("clean");
    expect(readFileSync(join(dataDir, "clean-stop"), "utf8")).toBe("20\n");
    const lockd = await start(dataDir);
    expect(existsSync(join(dataDir, "clean-stop"))).toBe(false);
    await lockd.kill();
    expect(existsSync(join(dataDir, "clean-stop"))).toBe(false);
  });

  /** A start on `dataDir` whose port is taken: it recovers, then fails to listen (exit 1, said). */
  async function startOnBusyPort(dataDir: string) {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = (busy.address() as AddressInfo).port;
    const failed = spawnSync(process.execPath, [LOCKD_BIN, "--listen", `127.0.0.1:${port}`, "--data", dataDir], { encoding: "utf8", timeout: 10_000 });
    busy.close();
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain("address already in use");
    return failed;
  }

  it("a start that fails after recovery (a busy port) keeps the record, so the check survives it", async () => {
    const { dataDir } = await prepare("clean");
    await startOnBusyPort(dataDir);
    expect(readFileSync(join(dataDir, "clean-stop"), "utf8")).toBe("20\n");
  });

  it("a start that fails after recovery and cannot record the clean stop says so", async () => {
    const { dataDir } = await prepare("clean");
    mkdirSync(join(dataDir, "clean-stop.tmp")); // the record's temporary file cannot be made (EISDIR)
    const failed = await startOnBusyPort(dataDir);
    expect(failed.stderr).toContain(`lockd: warning: could not record the clean stop in ${join(dataDir, "clean-stop")} (`);
    expect(existsSync(join(dataDir, "clean-stop"))).toBe(false);
  });

  it("--fsync never records no clean stop: its log may still be only in the page cache", async () => {
    const dataDir = tempDir();
    const lockd = await start(dataDir, ["--fsync", "never"]);
    expect(await lockd.stop()).toBe(0);
    expect(existsSync(join(dataDir, "clean-stop"))).toBe(false);
  });

  it("after a clean stop, a newest segment cut short refuses to start: the entries were acknowledged", async () => {
    const { dataDir, segment } = await prepare("clean");
    cutLastRecord(segment);
    const result = startFails(dataDir);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain(`${segment} is corrupt at offset`);
    expect(result.stderr).toContain("lockd stopped cleanly at index 20, so no write was left unfinished; refusing to start");
  });

  it("after a clean stop, a deleted newest segment refuses to start", async () => {
    const { dataDir, segment } = await prepare("clean");
    rmSync(segment);
    const result = startFails(dataDir);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain("the log ends at index 0, but lockd stopped cleanly at index 20");
  });

  it("after a crash, the same cut is a torn final write: dropped, and the server starts", async () => {
    const { dataDir, segment } = await prepare("crash");
    cutLastRecord(segment);
    const lockd = await start(dataDir);
    expect(lockd.stderr()).toMatch(/a torn final write/);
    expect(lockd.stderr()).toMatch(/log index 19,/);
  });

  const garbageDropped = {
    crash: /dropped \d+ bytes at offset \d+, a torn final write \(\d+ bytes of data/,
    clean: /dropped \d+ bytes at offset \d+, after the last entry \(index 20\) of the clean stop before this start/,
  };
  for (const stop of ["crash", "clean"] as const) {
    it(`garbage appended to the newest segment after a ${stop} stop is truncated and the server starts with every lock`, async () => {
      const { dataDir, segment } = await prepare(stop);
      appendFileSync(segment, Buffer.alloc(100, 0xab)); // after the preallocated zeros
      const lockd = await start(dataDir);
      expect(lockd.stderr()).toMatch(garbageDropped[stop]);
      const client = await RawClient.open(lockd.port);
      client.write(inspect({ lock: 19n, owner: 1n }));
      expect((await client.read(17))[0]).toBe(Status.Ok);
      client.close();
    });
  }

  it("garbage in the middle of the newest segment refuses to start, naming the file and offset", async () => {
    const { dataDir, segment } = await prepare();
    const bytes = readFileSync(segment);
    bytes.fill(0xab, 200, 210);
    writeFileSync(segment, bytes);
    const result = startFails(dataDir);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`${join(dataDir, "log")}`);
    expect(result.stderr).toMatch(/is corrupt at offset \d+/);
  });
});

describe("the data directory belongs to one lockd", () => {
  it("refuses a second lockd on the same --data, and a killed one does not block a restart", async () => {
    const dataDir = tempDir();
    const first = await start(dataDir);
    const second = spawnSync(process.execPath, [LOCKD_BIN, "--listen", "127.0.0.1:0", "--data", dataDir], { encoding: "utf8", timeout: 10_000 });
    expect(second.status).not.toBe(0);
    expect(second.stderr).toMatch(/in use by another lockd \(pid \d+, as its own pid namespace numbers it\); stop it, or use another --data/);
    await first.kill();
    const third = await start(dataDir);
    expect(third.port).toBeGreaterThan(0);
  });
});

describe("a restart onto a log that is due for a snapshot", () => {
  it("says what it recovered before the snapshot that log starts", async () => {
    const dataDir = tempDir();
    const first = await start(dataDir, ["--segment-bytes", "65536", "--snapshot-every", String(2 ** 40)]);
    const client = await RawClient.open(first.port);
    for (let round = 0; round < 20; round++) {
      for (let n = 0; n < 200; n++) client.write(acquire({ lock: BigInt(n), owner: BigInt(round) }, 60_000n));
      await client.read(200 * 17);
    }
    client.close();
    await first.kill();
    expect(listSegments(openDataDir(dataDir)).length).toBeGreaterThan(3);

    // Sealed segments past twice the threshold: the start writes a snapshot before it serves.
    const restarted = await start(dataDir, ["--segment-bytes", "65536", "--snapshot-every", "65536"]);
    const stderr = restarted.stderr();
    const recoveredAt = stderr.indexOf("lockd: recovered ");
    const snapshotAt = stderr.search(/snapshot (through|at) index/);
    expect(recoveredAt, stderr).toBeGreaterThanOrEqual(0);
    expect(snapshotAt, stderr).toBeGreaterThan(recoveredAt);
  });
});
