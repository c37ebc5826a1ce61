/**
 * `lockd --bump-fencing-token N` on the real process: tokens jump by N, the jump is in the log before
 * lockd serves (a kill -9 right after the listening line keeps it), later restarts without the flag
 * keep it, and a bump that would make tokens inexact stops the start instead. A start that stops
 * (a bump refused, a port it cannot listen on) logs nothing: neither its bump nor a change of the
 * retention settings, which would make later starts forget remembered answers.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { LOCKD_BIN, spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { scrapeMetrics } from "../support/metrics.js";
import { RawClient } from "../support/raw-client.js";
import { acquire } from "../support/frames.js";
import { splitAnswers } from "../support/answers.js";

const dirs: string[] = [];
const running: LockdProcess[] = [];
afterEach(async () => {
  for (const lockd of running.splice(0)) await lockd.kill();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-bump-"));
  dirs.push(dir);
  return dir;
}

async function start(dir: string, args: string[] = []): Promise<LockdProcess> {
  const lockd = await spawnLockd({ dataDir: dir, args });
  running.push(lockd);
  return lockd;
}

/** The token an ACQUIRE of a lock never used before gets. */
async function nextToken(lockd: LockdProcess, lock: bigint): Promise<bigint> {
  const client = await RawClient.open(lockd.port);
  client.write(acquire({ lock, owner: 1n }, 60_000n));
  const [answer] = splitAnswers(await client.read(17));
  client.close();
  expect(answer!.status).toBe(Status.Ok);
  return answer!.fencingToken;
}

/** Sends one ACQUIRE with request id `request` and returns its answer's bytes. */
async function acquireBytes(lockd: LockdProcess, request: bigint, lock: bigint): Promise<string> {
  const client = await RawClient.open(lockd.port);
  client.write(acquire({ request, lock, owner: 1n }, 60_000n));
  const answer = await client.read(17);
  client.close();
  return answer.toString("hex");
}

/** Starts lockd on `dir`, grants lock 1 to request id `request`, stops it; returns the answer's bytes. */
async function grantedThenStopped(dir: string, request: bigint): Promise<string> {
  const first = await start(dir);
  const original = await acquireBytes(first, request, 1n);
  expect(original.slice(0, 2)).toBe("00");
  await stop(first);
  return original;
}

/**
 * Checks that the earlier starts on `dir` changed nothing: the retry of `request` gets `original`,
 * and the next token is 2.
 */
async function unchangedSince(dir: string, request: bigint, original: string): Promise<void> {
  const after = await start(dir);
  expect(await acquireBytes(after, request, 1n)).toBe(original);
  expect(await nextToken(after, 2n)).toBe(2n);
  await stop(after);
}

/** Runs a start that must fail, and returns what it printed. */
function failedStart(dir: string, args: string[]): string {
  const result = spawnSync(process.execPath, [LOCKD_BIN, "--data", dir, ...args], { encoding: "utf8", timeout: 10_000 });
  expect(result.status).toBe(1);
  return result.stderr;
}

async function stop(lockd: LockdProcess): Promise<void> {
  running.splice(running.indexOf(lockd), 1);
  expect(await lockd.stop()).toBe(0);
}

describe("--bump-fencing-token", () => {
  it("raises the next token by N, for good: restarts without the flag keep the raised counter", async () => {
    const dir = dataDir();
    const first = await start(dir);
    expect(await nextToken(first, 1n)).toBe(1n);
    await stop(first);

    const bumped = await start(dir, ["--bump-fencing-token", "1000000"]);
    expect(bumped.stderr()).toContain("the fencing counter went from 2 to 1000002");
    expect(await nextToken(bumped, 2n)).toBe(1_000_002n);
    await stop(bumped);

    const after = await start(dir);
    expect(await nextToken(after, 3n)).toBe(1_000_003n);
    await stop(after);
  });

  it("is durable before lockd serves: a kill -9 right after the listening line keeps it", async () => {
    const dir = dataDir();
    const bumped = await start(dir, ["--bump-fencing-token", "500"]);
    running.splice(running.indexOf(bumped), 1);
    await bumped.kill();
    const after = await start(dir);
    expect(await nextToken(after, 1n)).toBe(501n);
    await stop(after);
  });

  it("grants the last token, then answers 6 to grants and stays up, across a restart too", async () => {
    const dir = dataDir();
    const lockd = await start(dir, ["--bump-fencing-token", String(2 ** 53 - 3)]); // next: 2^53 - 2, the last
    expect(await nextToken(lockd, 1n)).toBe(2n ** 53n - 2n);
    const client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 2n, owner: 1n }, 60_000n));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Unavailable);
    client.close();
    await stop(lockd);
    expect(lockd.stderr()).toContain("every fencing token up to 2^53 - 2 issued");
    const after = await start(dir);
    const again = await RawClient.open(after.port);
    again.write(acquire({ lock: 3n, owner: 1n }, 60_000n));
    expect(splitAnswers(await again.read(17))[0]!.status).toBe(Status.Unavailable);
    again.close();
    await stop(after);
  });

  it("is not applied when the metrics address cannot be served: the start stops first", async () => {
    const dir = dataDir();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      await expect(start(dir, ["--bump-fencing-token", "1000", "--metrics-listen", `127.0.0.1:${port}`])).rejects.toThrow(/cannot serve metrics/);
    } finally {
      taken.close();
    }
    const after = await start(dir);
    expect(await nextToken(after, 1n)).toBe(1n);
    await stop(after);
  });

  it("is not a client's request in the metrics, and its entry is in the log index", async () => {
    const lockd = await start(dataDir(), ["--bump-fencing-token", "10", "--metrics-listen", "127.0.0.1:0"]);
    const samples = await scrapeMetrics(lockd);
    expect(samples.get("baton_requests_total")).toBe(0);
    expect(samples.get("baton_log_index")).toBe(1);
    expect(samples.get("baton_next_fencing_token")).toBe(11);
    await stop(lockd);
  });

  it("refuses to start when the bump would leave no token to grant, and logs nothing", async () => {
    const dir = dataDir();
    const stderr = failedStart(dir, ["--listen", "127.0.0.1:0", "--bump-fencing-token", String(Number.MAX_SAFE_INTEGER)]);
    expect(stderr).toContain("would leave no fencing token to grant (the largest is 2^53 - 2");
    const after = await start(dir);
    expect(await nextToken(after, 1n)).toBe(1n);
    await stop(after);
  });

  it("refused, it does not log the start's other change either: a retry after the next start gets its original answer", async () => {
    const dir = dataDir();
    const original = await grantedThenStopped(dir, 7001n);

    // A shorter window in the same start: had it been logged, the raised window of the next start
    // would not bring back the answers it forgot.
    const stderr = failedStart(dir, ["--listen", "127.0.0.1:0", "--dedupe-window", "1", "--bump-fencing-token", String(Number.MAX_SAFE_INTEGER)]);
    expect(stderr).toContain("would leave no fencing token to grant");
    expect(stderr).not.toContain("--dedupe-window 1 ms");
    await unchangedSince(dir, 7001n, original);
  });

  it("is not applied, nor the retention change, when the lock port is taken: the start stops first", async () => {
    const dir = dataDir();
    const original = await grantedThenStopped(dir, 7002n);

    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const stderr = failedStart(dir, ["--listen", `127.0.0.1:${port}`, "--dedupe-window", "1", "--bump-fencing-token", "1000"]);
      expect(stderr).toContain(`127.0.0.1:${port}`);
      expect(stderr).not.toContain("the fencing counter went from");
    } finally {
      taken.close();
    }
    await unchangedSince(dir, 7002n, original);
  });
});
