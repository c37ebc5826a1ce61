/**
 * The server's wall clock stepped an hour ahead while a lease runs (an NTP step, a restored VM): the
 * lease must still last its ttl, less at most 1% (protocol.md §4, "Time"), or a second owner would be
 * let in while the first still holds it by its own clock.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Status, type Response } from "../../src/protocol/index.js";
import { acquire, inspect, release } from "../support/frames.js";
import { splitAnswers } from "../support/answers.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { useTempDirs } from "../support/temp-dir.js";

const SHIFT_PRELOAD = fileURLToPath(new URL("../support/shifted-wall-clock.mjs", import.meta.url));
const tempDir = useTempDirs();
let lockd: LockdProcess | undefined;

afterEach(async () => {
  await lockd?.stop();
  lockd?.cleanup();
  lockd = undefined;
});

/** A wall clock the test steps by writing to `shiftFile`, starting in step; `env` starts lockd on it. */
function shiftableWallClock(): { shiftFile: string; env: Record<string, string> } {
  const shiftFile = join(tempDir(), "shift");
  writeFileSync(shiftFile, "0");
  return { shiftFile, env: { NODE_OPTIONS: `--import ${SHIFT_PRELOAD}`, BATON_TEST_WALL_SHIFT_FILE: shiftFile } };
}

/** Polls the lock as owner 2 (a new request id each time) until it is granted; returns when. */
async function waitForSecondGrant(client: RawClient, firstToken: bigint): Promise<number> {
  for (let attempt = 0; attempt < 400; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    client.write(acquire({ lock: 1n, owner: 2n }, 1_000n));
    const [answer] = splitAnswers(await client.read(17));
    if (answer!.status === Status.Ok) {
      expect(answer!.fencingToken).toBeGreaterThan(firstToken);
      return performance.now();
    }
    expect(answer!.status).toBe(Status.Held);
  }
  throw new Error("the lock was never granted to the second owner");
}

const TTL_MS = 3_000;

/**
 * Starts lockd with a wall clock the test can step, has owner 1 take the lock for TTL_MS, then steps
 * the wall clock an hour ahead and lets lockd see it (owner 2 is refused).
 */
async function grantThenStepAnHour(): Promise<{ client: RawClient; granted: Response; sentAt: number; env: Record<string, string> }> {
  const { shiftFile, env } = shiftableWallClock();
  lockd = await spawnLockd({ env });
  const client = await RawClient.open(lockd.port);
  const sentAt = performance.now();
  client.write(acquire({ lock: 1n, owner: 1n }, BigInt(TTL_MS)));
  const [granted] = splitAnswers(await client.read(17));
  expect(granted!.status).toBe(Status.Ok);

  writeFileSync(shiftFile, String(3_600_000)); // the server's wall clock jumps an hour ahead
  client.write(acquire({ lock: 1n, owner: 2n }, 1_000n));
  const [refused] = splitAnswers(await client.read(17));
  expect(refused).toEqual({ status: Status.Held, fencingToken: 0n, expiresAt: granted!.expiresAt });
  return { client, granted: granted!, sentAt, env };
}

describe("a wall clock stepped forward", () => {
  it("does not end a lease early: another owner is refused until ttl / 1.01 of real time has passed", async () => {
    const { client, granted, sentAt } = await grantThenStepAnHour();
    const elapsedMs = (await waitForSecondGrant(client, granted.fencingToken)) - sentAt;
    // The first lease began when the server processed it, after it was sent, and ended no sooner
    // than ttl / 1.01 (less 1 ms) of the server's real time later.
    expect(elapsedMs).toBeGreaterThanOrEqual((TTL_MS - 1) / 1.01);
    expect(lockd!.stderr()).toMatch(/the wall clock jumped 3\d{6} ms ahead of real time: leases keep their length/);
    client.close();
  });

  it("does not end a lease early at a restart while the step is still being absorbed", async () => {
    const { client: first, granted, sentAt, env } = await grantThenStepAnHour();
    first.close();
    const dataDir = lockd!.dataDir;
    expect(await lockd!.stop()).toBe(0);

    lockd = await spawnLockd({ env, dataDir }); // the wall clock is still an hour ahead
    expect(lockd.stderr()).toMatch(/a wall-clock step was still being absorbed when lockd stopped: 3\d{6} ms of it is absorbed from here on/);
    const client = await RawClient.open(lockd.port);
    const elapsedMs = (await waitForSecondGrant(client, granted.fencingToken)) - sentAt;
    expect(elapsedMs).toBeGreaterThanOrEqual((TTL_MS - 1) / 1.01);
    client.close();
    await lockd.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe("a wall clock stepped while a restart writes its record", () => {
  it("is absorbed like any step: a lease granted before the kill still lasts its ttl", async () => {
    const { shiftFile, env } = shiftableWallClock();
    lockd = await spawnLockd({ env });
    const dataDir = lockd.dataDir;
    const first = await RawClient.open(lockd.port);
    const sentAt = performance.now();
    first.write(acquire({ lock: 1n, owner: 1n }, BigInt(TTL_MS)));
    const [granted] = splitAnswers(await first.read(17));
    expect(granted!.status).toBe(Status.Ok);
    first.close();
    await lockd.kill();
    // A step while lockd is down: the restart (same boot) has some of it to absorb, so it writes a
    // record before serving; a minute more while it writes it must not be taken at once.
    writeFileSync(shiftFile, "2000");
    lockd = await spawnLockd({ env: { ...env, BATON_TEST_WALL_STEP_AFTER_RECORD_MS: "60000" }, dataDir });
    expect(lockd.stderr()).toMatch(/the wall clock moved \d+ ms further than real time while lockd was down/);
    const client = await RawClient.open(lockd.port);
    const elapsedMs = (await waitForSecondGrant(client, granted!.fencingToken)) - sentAt;
    // ttl / 1.01 less 1 ms, and 1 ms more for the restart (protocol.md §4, "Time").
    expect(elapsedMs).toBeGreaterThanOrEqual((TTL_MS - 2) / 1.01);
    client.close();
    await lockd.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe("a wall clock stepped back, then put right", () => {
  it("does not end early a lease granted while it was behind: another owner is refused until ttl / 1.01 of real time has passed", async () => {
    const { shiftFile, env } = shiftableWallClock();
    lockd = await spawnLockd({ env });
    const client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 9n, owner: 1n }, 1_000n));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Ok);
    writeFileSync(shiftFile, String(-30_000)); // the server's wall clock falls 30 s behind
    client.write(acquire({ lock: 9n, owner: 2n }, 1_000n)); // lets lockd see it
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Held);
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    const sentAt = performance.now();
    client.write(acquire({ lock: 1n, owner: 1n }, BigInt(TTL_MS)));
    const [granted] = splitAnswers(await client.read(17));
    expect(granted!.status).toBe(Status.Ok);
    writeFileSync(shiftFile, "0"); // put right: logical time must not jump by the 1.5 s it was behind
    const elapsedMs = (await waitForSecondGrant(client, granted!.fencingToken)) - sentAt;
    expect(elapsedMs).toBeGreaterThanOrEqual((TTL_MS - 1) / 1.01);
    expect(lockd.stderr()).toMatch(/the wall clock jumped (29\d{3}|30\d{3}) ms back: logical time runs 1% slow until the wall clock catches up/);
    client.close();
  });
});

describe("a wall-clock step lockd cannot record", () => {
  it("makes lockd refuse every request with 6: a lease granted after it could end early at a restart", async () => {
    const { shiftFile, env } = shiftableWallClock();
    const dataDir = tempDir();
    mkdirSync(join(dataDir, "clock-step.tmp")); // the record's temporary file cannot be created
    lockd = await spawnLockd({ dataDir, env });
    const client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 1n, owner: 1n }, 60_000n));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Ok);
    writeFileSync(shiftFile, String(3_600_000));
    client.write(acquire({ lock: 2n, owner: 1n }, 60_000n));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Unavailable);
    client.write(inspect({ lock: 1n, owner: 1n }));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Unavailable);
    expect(lockd.stderr()).toMatch(/recording the wall-clock step in .* failed \(.*\); refusing every request with status 6 from now on/);
    client.close();
  });
});

describe("a wall clock near 2^53 ms (the year 287,396), past which times are no longer exact numbers", () => {
  it("answers 3 to a lease that would end past 2^53 - 1 and, with the clock past it, stops time there instead of crashing", async () => {
    const latest = 2n ** 53n - 1n;
    const { shiftFile, env } = shiftableWallClock();
    const wallAt = (target: number): void => writeFileSync(shiftFile, String(target - Date.now()));
    wallAt(Number.MAX_SAFE_INTEGER - 5_000);
    const args = ["--max-ttl", "3155760000000"];
    lockd = await spawnLockd({ env, args });
    let client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 1n, owner: 1n }, 1_000n));
    client.write(acquire({ lock: 2n, owner: 1n }, 3_600_000n));
    client.write(inspect({ lock: 1n, owner: 1n }));
    const [granted, tooLong, held] = splitAnswers(await client.read(3 * 17));
    expect(granted!.status).toBe(Status.Ok);
    expect(granted!.expiresAt).toBeLessThanOrEqual(latest);
    expect(tooLong).toEqual({ status: Status.Invalid, fencingToken: 0n, expiresAt: 0n });
    expect(held).toEqual(granted);
    client.close();
    // Past the year 275,760 no date can show the time: its lines carry the unix milliseconds.
    for (const line of lockd.stderr().trimEnd().split("\n")) expect(line).toMatch(/^unix-ms:9007199\d{9} lockd: /);
    const dataDir = lockd.dataDir;
    expect(await lockd.stop()).toBe(0);

    // Restarted with the wall clock a minute past 2^53, as after a reboot (no anchor of this boot): a
    // step made while lockd was down then takes effect at once (protocol.md §4), so logical time
    // stands at 2^53 - 1, where no lease can be granted.
    rmSync(join(dataDir, "clock-anchor"), { force: true });
    wallAt(Number.MAX_SAFE_INTEGER + 60_000);
    lockd = await spawnLockd({ env, args, dataDir });
    client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 3n, owner: 1n }, 1n));
    client.write(release({ lock: 1n, owner: 1n }));
    const [refused, released] = splitAnswers(await client.read(2 * 17));
    expect(refused).toEqual({ status: Status.Invalid, fencingToken: 0n, expiresAt: 0n });
    expect(released).toEqual({ status: Status.Expired, fencingToken: granted!.fencingToken, expiresAt: granted!.expiresAt });
    client.close();
    expect(await lockd.stop()).toBe(0);
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe("a wall-clock step still being absorbed at restarts", () => {
  it("is carried over as what was left, not a second more at every restart", async () => {
    const dataDir = tempDir();
    const lags: number[] = [];
    for (let start = 0; start < 6; start++) {
      if (start === 1) {
        // As a run that saw the wall clock step 5 ms ahead leaves it: what is left plus a second of slack.
        writeFileSync(join(dataDir, "clock-step"), `${JSON.stringify({ aheadMs: 1_005, atMs: Date.now() })}\n`);
      }
      lockd = await spawnLockd({ dataDir });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const client = await RawClient.open(lockd.port);
      client.write(acquire({ lock: BigInt(start + 1), owner: 1n }, 1_000n));
      const [granted] = splitAnswers(await client.read(17));
      lags.push(Date.now() - (Number(granted!.expiresAt) - 1_000)); // how far logical time is behind the wall clock
      client.close();
      await lockd.kill();
      lockd = undefined;
      await new Promise((resolve) => setTimeout(resolve, 400)); // down for a while, as a restart is
    }
    // From the second start with the record on, logical time trails the wall clock by the carried
    // second, less the little absorbed meanwhile: not a second more every restart or two. (Each lag
    // also holds its answer's trip back to the test, hence the half-second allowance.)
    expect(lags[2], `lags ${lags.join(", ")} ms`).toBeGreaterThanOrEqual(900);
    for (let start = 3; start < lags.length; start++) expect(lags[start]! - lags[2]!, `lags ${lags.join(", ")} ms`).toBeLessThan(500);
    rmSync(dataDir, { recursive: true, force: true });
  });
});

/**
 * Owner 1 takes lock 1 for 20 s; lockd is killed, its wall clock stepped by `stepMs` while it is down,
 * and it is started again on the same data (in `lockd`, on the same boot of the machine).
 */
async function grantThenStepWhileDown(stepMs: number): Promise<{ granted: Response; dataDir: string; firstStartLog: string }> {
  const { shiftFile, env } = shiftableWallClock();
  lockd = await spawnLockd({ env });
  const dataDir = lockd.dataDir;
  const client = await RawClient.open(lockd.port);
  client.write(acquire({ lock: 1n, owner: 1n }, 20_000n));
  const [granted] = splitAnswers(await client.read(17));
  expect(granted!.status).toBe(Status.Ok);
  client.close();
  await lockd.kill();
  const firstStartLog = lockd.stderr();
  writeFileSync(shiftFile, String(stepMs));
  lockd = await spawnLockd({ env, dataDir });
  return { granted: granted!, dataDir, firstStartLog };
}

describe("a wall clock stepped forward while lockd was down (a restart on the same boot)", () => {
  it("does not end the recovered leases early: another owner is refused, and the step is absorbed like one seen running", async () => {
    const { granted, dataDir } = await grantThenStepWhileDown(30_000);
    expect(lockd!.stderr()).toMatch(/the wall clock moved (29\d{3}|30000) ms further than real time while lockd was down/);
    const client = await RawClient.open(lockd!.port);
    client.write(acquire({ lock: 1n, owner: 2n }, 1_000n));
    const [refused] = splitAnswers(await client.read(17));
    // Without the anchor, logical time jumps 30 s at the start and the 20 s lease is over: a second holder.
    expect(refused).toEqual({ status: Status.Held, fencingToken: 0n, expiresAt: granted.expiresAt });
    client.close();
    await lockd!.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
});

describe("a wall clock stepped back while lockd was down", () => {
  it("is said at the start, and the recovered lease is not shortened by it", async () => {
    const { granted, dataDir, firstStartLog } = await grantThenStepWhileDown(-30_000);
    expect(firstStartLog).not.toMatch(/behind the time lockd recovered/);
    expect(lockd!.stderr()).toMatch(/the wall clock is (29\d{3}|30\d{3}) ms behind the time lockd recovered .*logical time stands still until the clock catches up/);
    const client = await RawClient.open(lockd!.port);
    client.write(inspect({ lock: 1n, owner: 1n }));
    expect(splitAnswers(await client.read(17))).toEqual([{ status: Status.Ok, fencingToken: granted.fencingToken, expiresAt: granted.expiresAt }]);
    client.close();
    await lockd!.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
});
