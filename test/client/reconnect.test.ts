import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { BatonClient, type RetryEvent } from "../../client/index.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";

const STALL_PRELOAD = fileURLToPath(new URL("../support/stalling-sync.mjs", import.meta.url));
const started: LockdProcess[] = [];
afterEach(async () => {
  for (const lockd of started.splice(0)) {
    lockd.child.kill("SIGCONT");
    await lockd.kill();
    lockd.cleanup();
  }
});

async function lockdOn(port?: number): Promise<LockdProcess> {
  const lockd = await spawnLockd({ args: ["--fsync", "never"], ...(port === undefined ? {} : { port }) });
  started.push(lockd);
  return lockd;
}

describe("the client reconnects after the server restarts", () => {
  it("works again on a new connection once the server is back", async () => {
    const first = await lockdOn();
    const client = new BatonClient({ endpoints: [`127.0.0.1:${first.port}`], attempts: 40, backoff: { baseMs: 10, maxMs: 100 } });
    const disconnects: string[] = [];
    client.on("disconnect", (endpoint) => disconnects.push(endpoint));
    try {
      expect((await client.acquire("before", { ttlMs: 60_000 })).status).toBe("acquired");
      expect(await first.stop()).toBe(0);
      // Issued while no server listens: retried (connection refused) until the new one is up.
      const during = client.inspect("during");
      await lockdOn(first.port);
      expect(await during).toEqual({ status: "free" });
      expect((await client.acquire("after", { ttlMs: 60_000 })).status).toBe("acquired");
      expect(disconnects).toEqual([`127.0.0.1:${first.port}`]);
    } finally {
      client.close();
    }
  });

  it("sends the request caught by the crash again, same request id, and gets a decided answer", async () => {
    const first = await lockdOn();
    const client = new BatonClient({ endpoints: [`127.0.0.1:${first.port}`], attempts: 40, backoff: { baseMs: 10, maxMs: 100 } });
    const retries: RetryEvent[] = [];
    client.on("retry", (event) => retries.push(event));
    try {
      await client.connect();
      first.child.kill("SIGSTOP");
      const caught = client.acquire("caught", { ttlMs: 60_000 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await first.kill(); // never answered: the server was stopped when it died
      await lockdOn(first.port);
      const result = await caught;
      // This server never saw the request, so the retry is decided afresh: granted.
      expect(result.status).toBe("acquired");
      expect(retries.length).toBeGreaterThan(0);
      expect(new Set(retries.map((event) => event.requestId)).size).toBe(1);
    } finally {
      client.close();
    }
  });
});

describe("the client after lockd closes its idle connection (--idle-timeout)", () => {
  it("opens a new connection for the next request, without a retry or an error", async () => {
    const lockd = await spawnLockd({ args: ["--fsync", "never", "--idle-timeout", "200"] });
    started.push(lockd);
    const client = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
    const disconnects: string[] = [];
    const retries: RetryEvent[] = [];
    client.on("disconnect", (endpoint) => disconnects.push(endpoint));
    client.on("retry", (event) => retries.push(event));
    try {
      expect((await client.acquire("first", { ttlMs: 60_000 })).status).toBe("acquired");
      while (disconnects.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await client.acquire("second", { ttlMs: 60_000 })).status).toBe("acquired");
      expect(disconnects).toEqual([`127.0.0.1:${lockd.port}`]);
      expect(retries).toEqual([]);
    } finally {
      client.close();
    }
  });
});

describe("the client after its own process was busy past the request timeout", () => {
  it("takes the reply that arrived meanwhile, instead of timing out and resetting a healthy connection", async () => {
    const stallDir = mkdtempSync(join(tmpdir(), "baton-stall-"));
    const stallFile = join(stallDir, "stall");
    const lockd = await spawnLockd({
      args: ["--inline-sync-max", "0"],
      env: { NODE_OPTIONS: `--import ${STALL_PRELOAD}`, BATON_TEST_STALL_FILE: stallFile },
    });
    started.push(lockd);
    const client = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`], timeoutMs: 200, attempts: 1 });
    const disconnects: string[] = [];
    client.on("disconnect", (endpoint: string) => disconnects.push(endpoint));
    try {
      await client.connect();
      writeFileSync(stallFile, ""); // the answer waits for the disk
      const asked = client.acquire("busy", { ttlMs: 60_000 });
      // Busy in the check phase, so the loop's next step is its timers, before it polls the socket.
      setTimeout(() =>
        setImmediate(() => {
          rmSync(stallFile); // the answer goes out now, while this process is busy past the timeout
          const until = performance.now() + 400;
          while (performance.now() < until);
        }),
      50);
      expect((await asked).status).toBe("acquired");
      expect(disconnects).toEqual([]);
    } finally {
      client.close();
      rmSync(stallDir, { recursive: true, force: true });
    }
  });
});
