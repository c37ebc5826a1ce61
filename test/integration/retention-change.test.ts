/**
 * Restarting lockd with another --dedupe-window or --expired-retention must not change what it
 * decided before: the recovered state is rebuilt by replaying the log, and a replay under the new
 * settings would decide old commands differently (a new grant taken for a retry and dropped, its
 * token handed out again; a remembered answer replaced). The settings are logged where they change.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { acquire, inspect, release, renew } from "../support/frames.js";
import { sleep, splitAnswers } from "../support/answers.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";

const running: LockdProcess[] = [];
afterEach(async () => {
  // Every lockd first: a restarted one shares the data directory the first one's cleanup removes,
  // and while it runs it can still create files there (the next segment, preallocated).
  const stopping = running.splice(0);
  for (const lockd of stopping) await lockd.kill();
  for (const lockd of stopping) lockd.cleanup();
});

async function start(args: string[], dataDir?: string): Promise<{ lockd: LockdProcess; client: RawClient }> {
  const lockd = await spawnLockd({ args, ...(dataDir === undefined ? {} : { dataDir }) });
  running.push(lockd);
  return { lockd, client: await RawClient.open(lockd.port) };
}

async function ask(client: RawClient, frame: Buffer) {
  client.write(frame);
  return splitAnswers(await client.read(17))[0]!;
}

describe("a restart with other retention settings", () => {
  it("keeps a grant made to a request id seen again after a short window, when the window is then raised", async () => {
    const first = await start(["--dedupe-window", "1000"]);
    const taken = acquire({ lock: 1n, owner: 0xan, request: 77n }, 60_000n);
    expect(await ask(first.client, taken)).toMatchObject({ status: Status.Ok, fencingToken: 1n });
    expect(await ask(first.client, release({ lock: 1n, owner: 0xan, request: 78n }))).toMatchObject({ status: Status.Ok });
    await sleep(1_200); // past the 1 s window: the same request id is a new request now (protocol.md §4)
    const regranted = await ask(first.client, taken);
    expect(regranted).toMatchObject({ status: Status.Ok, fencingToken: 2n });
    first.client.close();
    await first.lockd.kill();

    const second = await start(["--dedupe-window", "60000"], first.lockd.dataDir);
    expect(second.lockd.stderr()).toMatch(/--dedupe-window 60000 ms and --expired-retention 60000 ms apply from log index \d+ on \(before: 1000 ms and 60000 ms/);
    expect(await ask(second.client, inspect({ lock: 1n, owner: 0xan }))).toEqual(regranted);
    expect(await ask(second.client, acquire({ lock: 1n, owner: 0xbn }, 1_000n))).toMatchObject({ status: Status.Held, expiresAt: regranted.expiresAt });
    expect(await ask(second.client, acquire({ lock: 2n, owner: 0xbn }, 1_000n))).toMatchObject({ status: Status.Ok, fencingToken: 3n });
    second.client.close();
    await second.lockd.kill();

    // Logged once: a later start with the same flags has nothing to change.
    const third = await start(["--dedupe-window", "60000"], first.lockd.dataDir);
    expect(third.lockd.stderr()).not.toMatch(/apply from log index/);
    expect(await ask(third.client, inspect({ lock: 1n, owner: 0xan }))).toEqual(regranted);
    third.client.close();
  });

  it("replays a remembered 5 to its retry after a restart with --expired-retention 0", async () => {
    const first = await start([]);
    expect(await ask(first.client, acquire({ lock: 3n, owner: 0xan }, 100n))).toMatchObject({ status: Status.Ok });
    await sleep(300);
    const late = renew({ lock: 3n, owner: 0xan, request: 91n }, 1_000n);
    const expired = await ask(first.client, late);
    expect(expired.status).toBe(Status.Expired);
    first.client.close();
    await first.lockd.kill();

    const second = await start(["--expired-retention", "0"], first.lockd.dataDir);
    expect(await ask(second.client, late)).toEqual(expired);
    // A new request is decided with the new setting: the expired lease is forgotten at once.
    expect(await ask(second.client, renew({ lock: 3n, owner: 0xan, request: 92n }, 1_000n))).toEqual({ status: Status.NotHeld, fencingToken: 0n, expiresAt: 0n });
    second.client.close();
  });
});
