import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonClient, LeaseLostError, LockWaitTimeoutError } from "../../client/index.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";

let lockd: LockdProcess;
let client: BatonClient;
let observer: BatonClient;
beforeAll(async () => {
  lockd = await spawnLockd({ args: ["--fsync", "never"] });
  client = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
  observer = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
});
afterAll(async () => {
  client.close();
  observer.close();
  await lockd.stop();
  lockd.cleanup();
});

describe("withLock runs the callback under the lock and always releases it", () => {
  it("hands the callback a held lease with a fencing token, returns its value, then releases", async () => {
    const value = await client.withLock("job", { ttlMs: 10_000 }, async (lease) => {
      expect(lease.held).toBe(true);
      expect(lease.fencingToken).toBeGreaterThan(0n);
      expect(await observer.inspect("job")).toMatchObject({ status: "heldByOther" });
      return "done";
    });
    expect(value).toBe("done");
    expect(await observer.inspect("job")).toEqual({ status: "free" });
  });

  it("releases when the callback throws, and rethrows the callback's error", async () => {
    const failure = new Error("the work failed");
    await expect(
      client.withLock("throws", { ttlMs: 10_000 }, () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await observer.inspect("throws")).toEqual({ status: "free" });
  });

  it("waits with backoff while another owner holds the lock, then gets it", async () => {
    const held = await observer.acquire("contended", { ttlMs: 10_000 });
    if (held.status !== "acquired") throw new Error("setup: expected a grant");
    let entered = false;
    const waiting = client.withLock("contended", { ttlMs: 10_000, waitMs: 10_000 }, (lease) => {
      entered = true;
      return lease.fencingToken;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(entered).toBe(false);
    await held.lease.release();
    expect(await waiting).toBeGreaterThan(held.fencingToken);
  });

  it("throws BATON_LOCK_WAIT_TIMEOUT when the lock stays held for the whole wait, without running the callback", async () => {
    const held = await observer.acquire("busy", { ttlMs: 10_000 });
    expect(held.status).toBe("acquired");
    let ran = false;
    const error = await client
      .withLock("busy", { ttlMs: 10_000, waitMs: 100 }, () => {
        ran = true;
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockWaitTimeoutError);
    expect((error as LockWaitTimeoutError).code).toBe("BATON_LOCK_WAIT_TIMEOUT");
    expect(ran).toBe(false);
  });

  it("throws BATON_LEASE_LOST without running the callback when the grant arrives past its local deadline", async () => {
    // A 2 ms ttl less the default 2 ms margin: the deadline is the send itself, so every grant is late.
    let ran = false;
    const error = await client
      .withLock("too-short", { ttlMs: 2 }, () => {
        ran = true;
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LeaseLostError);
    expect((error as LeaseLostError).code).toBe("BATON_LEASE_LOST");
    expect((error as LeaseLostError).reason).toBe("deadline");
    expect(ran).toBe(false);
  });
});
