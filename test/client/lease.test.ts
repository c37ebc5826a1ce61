import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BatonClient, LeaseLostError, type Lease } from "../../client/index.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";

let lockd: LockdProcess;
let endpoint: string;
beforeAll(async () => {
  lockd = await spawnLockd({ args: ["--fsync", "never"] });
  endpoint = `127.0.0.1:${lockd.port}`;
});
/** Clients a test opened besides its own, closed after it. */
const clients: BatonClient[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});
afterAll(async () => {
  lockd.child.kill("SIGCONT");
  await lockd.stop();
  lockd.cleanup();
});

function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => (signal.aborted ? resolve(signal.reason) : signal.addEventListener("abort", () => resolve(signal.reason), { once: true })));
}

async function acquireLease(client: BatonClient, name: string, options: Parameters<BatonClient["acquire"]>[1]): Promise<Lease> {
  const result = await client.acquire(name, options);
  if (result.status !== "acquired") throw new Error(`expected a grant, got ${result.status}`);
  return result.lease;
}

describe("a lease renews itself while auto-renewal is on", () => {
  it("is still held, with the same token, long after its first ttl ran out", async () => {
    const client = new BatonClient({ endpoints: [endpoint] });
    const observer = new BatonClient({ endpoints: [endpoint] });
    try {
      const lease = await acquireLease(client, "auto", { ttlMs: 300, autoRenew: true });
      const firstExpiry = lease.expiresAt;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(lease.held).toBe(true);
      expect(lease.signal.aborted).toBe(false);
      expect(lease.expiresAt).toBeGreaterThan(firstExpiry);
      expect(await client.inspect("auto", { owner: lease.owner })).toMatchObject({ status: "heldByYou", fencingToken: lease.fencingToken });
      expect((await observer.acquire("auto", { ttlMs: 300 })).status).toBe("held");
      await lease.release();
      expect(await observer.inspect("auto")).toEqual({ status: "free" });
    } finally {
      client.close();
      observer.close();
    }
  });
});

describe("lease.signal aborts the moment the lease may no longer be held", () => {
  it("aborts when a renewal is refused", async () => {
    const client = new BatonClient({ endpoints: [endpoint] });
    try {
      const lease = await acquireLease(client, "refused", { ttlMs: 2000, autoRenew: { intervalMs: 50 } });
      const sameOwner = new BatonClient({ endpoints: [endpoint], owner: lease.owner });
      clients.push(sameOwner);
      const lost = aborted(lease.signal);
      expect((await sameOwner.release("refused")).status).toBe("released");
      const reason = await lost;
      expect(reason).toBeInstanceOf(LeaseLostError);
      expect((reason as LeaseLostError).reason).toBe("refused");
      expect(lease.held).toBe(false);
      expect(await lease.renew()).toEqual({ status: "lost" });
    } finally {
      client.close();
    }
  });

  it("aborts when the local deadline passes while the server cannot answer (SIGSTOP)", async () => {
    const client = new BatonClient({ endpoints: [endpoint], timeoutMs: 100 });
    try {
      const lease = await acquireLease(client, "deadline", { ttlMs: 600, autoRenew: true });
      const lost = aborted(lease.signal);
      lockd.child.kill("SIGSTOP");
      try {
        const reason = await lost;
        expect((reason as LeaseLostError).reason).toBe("deadline");
        expect(lease.held).toBe(false);
        expect(lease.remainingMs).toBe(0);
      } finally {
        lockd.child.kill("SIGCONT");
      }
    } finally {
      client.close();
    }
  });

  it("aborts when the lease is released, and when the client closes", async () => {
    const client = new BatonClient({ endpoints: [endpoint] });
    const released = await acquireLease(client, "released", { ttlMs: 60_000 });
    expect(await released.release()).toMatchObject({ status: "released", fencingToken: released.fencingToken });
    expect((released.signal.reason as LeaseLostError).reason).toBe("released");
    const abandoned = await acquireLease(client, "abandoned", { ttlMs: 60_000 });
    const signal = abandoned.signal;
    client.close();
    expect((signal.reason as LeaseLostError).reason).toBe("client-closed");
  });
});

describe("manual renewal", () => {
  it("extends the lease with the same token; a refusal ends it", async () => {
    const client = new BatonClient({ endpoints: [endpoint] });
    try {
      const lease = await acquireLease(client, "manual", { ttlMs: 60_000 });
      const sameOwner = new BatonClient({ endpoints: [endpoint], owner: lease.owner });
      clients.push(sameOwner);
      const renewed = await lease.renew({ ttlMs: 120_000 });
      expect(renewed).toMatchObject({ status: "renewed", fencingToken: lease.fencingToken });
      expect(lease.ttlMs).toBe(120_000);
      await sameOwner.release("manual");
      expect(await lease.renew()).toEqual({ status: "notHeld" });
      expect((lease.signal.reason as LeaseLostError).reason).toBe("refused");
    } finally {
      client.close();
    }
  });
});

describe("a lease that ended cannot end a newer lease of the same owner", () => {
  it("sends no release once its local deadline passed, nor a second one after it was released", async () => {
    // A client given an owner id: every lease of it shares that id.
    const client = new BatonClient({ endpoints: [endpoint], owner: "5eed0001" });
    try {
      // The server releases the owner's current lease of a lock, whatever its token.
      const stale = await acquireLease(client, "stale", { ttlMs: 150 });
      await new Promise((resolve) => setTimeout(resolve, 250)); // past the deadline and the server's expiry
      const newer = await acquireLease(client, "stale", { ttlMs: 60_000 });
      expect(newer.fencingToken).toBeGreaterThan(stale.fencingToken);
      expect(await stale.release()).toEqual({ status: "lost" });
      expect(await client.inspect("stale")).toMatchObject({ status: "heldByYou", fencingToken: newer.fencingToken });

      expect(await newer.release()).toMatchObject({ status: "released", fencingToken: newer.fencingToken });
      const newest = await acquireLease(client, "stale", { ttlMs: 60_000 });
      expect(await newer.release()).toEqual({ status: "lost" });
      expect(await client.inspect("stale")).toMatchObject({ status: "heldByYou", fencingToken: newest.fencingToken });
      await newest.release();
    } finally {
      client.close();
    }
  });
});
