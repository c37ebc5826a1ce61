/**
 * Frames lockd read but held back (--max-inflight) on a connection its client then reset are dropped,
 * not run once the connection's earlier answers are out: the client gave them up, and may have sent
 * others since. Run late, a RELEASE held back that way ended the newer lease its owner had taken on
 * another connection meanwhile, and the lock went to a second owner.
 */
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { acquire, inspect, release } from "../support/frames.js";
import { sleep, splitAnswers } from "../support/answers.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { scrapeMetrics } from "../support/metrics.js";
import { RawClient } from "../support/raw-client.js";
import { useTempDirs } from "../support/temp-dir.js";

const STALL_PRELOAD = fileURLToPath(new URL("../support/stalling-sync.mjs", import.meta.url));
const tempDir = useTempDirs();
describe("frames held back on a connection its client reset", () => {
  it("are dropped: a RELEASE given up by its client does not end the owner's newer lease", async () => {
    const stallFile = join(tempDir(), "stall");
    const lockd = await spawnLockd({
      args: ["--max-inflight", "4", "--inline-sync-max", "0"],
      env: { NODE_OPTIONS: `--import ${STALL_PRELOAD}`, BATON_TEST_STALL_FILE: stallFile },
    });
    try {
      await heldReleaseAfterReset(lockd, stallFile);
    } finally {
      await lockd.stop();
      lockd.cleanup();
    }
  });
});

/**
 * --max-inflight-total holds frames back on connections with nothing in flight of their own, which
 * lockd is not reading, so it cannot see that a client reset one: those frames run in turn. What
 * keeps them harmless is the order: a connection that finds the budget spent queues, and nothing read
 * after it runs before its held frames do.
 */
describe("frames held back by --max-inflight-total", () => {
  it("run before anything read after them: a RELEASE given up by its client does not end the owner's newer lease", async () => {
    const stallFile = join(tempDir(), "stall");
    const lockd = await spawnLockd({
      args: ["--max-inflight-total", "2", "--inline-sync-max", "0", "--metrics-listen", "127.0.0.1:0"],
      env: { NODE_OPTIONS: `--import ${STALL_PRELOAD}`, BATON_TEST_STALL_FILE: stallFile },
    });
    try {
      const inFlight = async () => (await scrapeMetrics(lockd)).get("baton_requests_in_flight");
      const owner = { lock: 7n, owner: 1n };
      const first = await RawClient.open(lockd.port);
      first.write(acquire(owner, 60_000n));
      expect(splitAnswers(await first.read(17))[0]!.status).toBe(Status.Ok);

      writeFileSync(stallFile, ""); // the disk stalls
      const holder = await RawClient.open(lockd.port);
      holder.write(Buffer.concat([acquire({ lock: 1n, owner: 2n }, 60_000n), acquire({ lock: 2n, owner: 2n }, 60_000n)]));
      await sleep(200); // the two grants wait for the disk, and the budget is spent
      const givenUp = await RawClient.open(lockd.port);
      givenUp.write(release(owner)); // read, and held back
      await sleep(200);
      givenUp.socket.resetAndDestroy(); // no answer in time: the client gives the connection up
      const again = await RawClient.open(lockd.port);
      again.write(acquire(owner, 60_000n)); // the owner asks anew, on another connection
      await sleep(200);
      expect(await inFlight()).toBe(2); // four requests sent; the two behind the budget are not in flight

      rmSync(stallFile); // the disk is back
      expect(splitAnswers(await holder.read(2 * 17)).map((a) => a.status)).toEqual([Status.Ok, Status.Ok]);
      // The held RELEASE ran first, so the lock was free for the new ACQUIRE, and nothing ended it after.
      const [granted] = splitAnswers(await again.read(17));
      expect(granted!.status).toBe(Status.Ok);
      again.write(inspect(owner));
      expect(splitAnswers(await again.read(17))[0]).toEqual({ status: Status.Ok, fencingToken: granted!.fencingToken, expiresAt: granted!.expiresAt });
      expect(await inFlight()).toBe(0);
      for (const client of [first, holder, again]) client.close();
    } finally {
      await lockd.stop();
      lockd.cleanup();
    }
  });
});

/** The owner's RELEASE is held back on a connection it then resets; its newer lease must survive it. */
async function heldReleaseAfterReset(lockd: LockdProcess, stallFile: string): Promise<void> {
  const owner = { lock: 7n, owner: 1n };
  const first = await RawClient.open(lockd.port);
  first.write(acquire(owner, 1_000n));
  expect(splitAnswers(await first.read(17))[0]!.status).toBe(Status.Ok);
  const grantedAt = performance.now();

  writeFileSync(stallFile, ""); // the disk stalls
  const givenUp = await RawClient.open(lockd.port);
  // Four INSPECTs fill --max-inflight 4; the RELEASE behind them is read and held back.
  givenUp.write(Buffer.concat([1n, 2n, 3n, 4n].map((lock) => inspect({ lock: 100n + lock, owner: 1n })).concat(release(owner))));
  await sleep(300);
  givenUp.socket.resetAndDestroy(); // no answer in time: the client gives the connection up

  await sleep(Math.max(0, 1_100 - (performance.now() - grantedAt))); // the first lease has expired
  const again = await RawClient.open(lockd.port);
  again.write(acquire(owner, 60_000n));
  await sleep(200);
  rmSync(stallFile); // the disk is back: the new lease is granted, the held RELEASE must not run
  const [granted] = splitAnswers(await again.read(17));
  expect(granted!.status).toBe(Status.Ok);
  await sleep(100);
  again.write(inspect(owner));
  expect(splitAnswers(await again.read(17))[0]).toEqual({ status: Status.Ok, fencingToken: granted!.fencingToken, expiresAt: granted!.expiresAt });
  first.close();
  again.close();
}
