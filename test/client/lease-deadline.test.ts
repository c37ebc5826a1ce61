/**
 * The local deadline of a lease, with the client's monotonic clock under the test's control.
 */
import { afterEach, describe, expect, it } from "vitest";
import { BatonClient, type Lease, type LeaseLostError } from "../../client/index.js";
import { Command } from "../../src/protocol/index.js";
import { ScriptedServer, ok, reply } from "./support/scripted-server.js";

let server: ScriptedServer | undefined;
let client: BatonClient | undefined;
afterEach(async () => {
  client?.close();
  await server?.close();
});

/** A lease granted by a server that answers every request 0, on a client whose clock the test sets. */
async function grantedLease(name: string, options: { ttlMs: number; safetyMarginMs?: number }): Promise<{ lease: Lease; clock: { nowMs: number } }> {
  server = await ScriptedServer.start(() => ok(12n, 99_999n));
  const clock = { nowMs: 0 };
  client = new BatonClient({ endpoints: [server.endpoint], clock: () => clock.nowMs });
  const result = await client.acquire(name, options);
  if (result.status !== "acquired") throw new Error("expected a grant");
  return { lease: result.lease, clock };
}

/**
 * A 10 s lease granted at 0 by a server that answers nothing after the ACQUIRE, on a client making
 * one attempt per request with `timeoutMs`, whose clock the test sets (now 100).
 */
async function leaseOfSilentServer(name: string, timeoutMs: number): Promise<{ lease: Lease; clock: { nowMs: number } }> {
  server = await ScriptedServer.start((_request, index) => (index === 0 ? ok(16n, 99_999n) : "silence"));
  const clock = { nowMs: 0 };
  client = new BatonClient({ endpoints: [server.endpoint], clock: () => clock.nowMs, attempts: 1, timeoutMs });
  const result = await client.acquire(name, { ttlMs: 10_000 });
  if (result.status !== "acquired") throw new Error("expected a grant");
  clock.nowMs = 100;
  return { lease: result.lease, clock };
}

/** Held just before `deadlineMs` on the client's clock, lost at it. */
function expectHeldUntil(lease: Lease, clock: { nowMs: number }, deadlineMs: number): void {
  clock.nowMs = deadlineMs - 0.1;
  expect(lease.held).toBe(true);
  clock.nowMs = deadlineMs;
  expect(lease.held).toBe(false);
}

describe("the local deadline is the first send time plus the ttl minus the safety margin", () => {
  it("counts from the first attempt even when a retry got the answer", async () => {
    server = await ScriptedServer.start((_request, index) => (index === 0 ? "silence" : ok(11n, 99_999n)));
    let nowMs = 1000;
    client = new BatonClient({ endpoints: [server.endpoint], timeoutMs: 50, backoff: { baseMs: 1, maxMs: 1 }, clock: () => nowMs });
    client.on("retry", () => (nowMs = 5000)); // the retry goes out 4 s after the first attempt
    const result = await client.acquire("deadline", { ttlMs: 10_000, safetyMarginMs: 1000 });
    if (result.status !== "acquired") throw new Error("expected a grant");
    const { lease } = result;
    expect(lease.remainingMs).toBe(1000 + 10_000 - 1000 - 5000);
    nowMs = 9999;
    expect(lease.held).toBe(true);
    nowMs = 10_000;
    expect(lease.held).toBe(false);
    expect(lease.lossReason).toBe("deadline");
    expect((lease.signal.reason as LeaseLostError).reason).toBe("deadline");
  });

  it("moves to the renewal's first send time after a successful renewal", async () => {
    const { lease, clock } = await grantedLease("renewed", { ttlMs: 1000, safetyMarginMs: 100 });
    clock.nowMs = 800;
    expect(await lease.renew()).toMatchObject({ status: "renewed" });
    expectHeldUntil(lease, clock, 1700);
  });

  it("takes the default margin from each renewal's own ttl, not the first one's", async () => {
    const { lease, clock } = await grantedLease("lengthened", { ttlMs: 1000 });
    clock.nowMs = 800;
    expect(await lease.renew({ ttlMs: 3_600_000 })).toMatchObject({ status: "renewed" });
    // An hour's lease keeps a tenth of an hour back (clock rates, and the server's 1%), not 100 ms.
    expectHeldUntil(lease, clock, 800 + 3_600_000 - 360_000);
  });

  it("keeps at least 2 ms back from a short ttl, which covers the server's ttl/100 + 1 ms", async () => {
    const { lease, clock } = await grantedLease("short", { ttlMs: 10 });
    expectHeldUntil(lease, clock, 8);
  });

  it("a renewal to a shorter ttl that fails still shortens the deadline: the server may have applied it", async () => {
    const { lease, clock } = await leaseOfSilentServer("shortened", 20);
    await expect(lease.renew({ ttlMs: 300 })).rejects.toMatchObject({ code: "BATON_RETRIES_EXHAUSTED" });
    expectHeldUntil(lease, clock, 100 + 300 - 30);
  });

  it("a renewal to a shorter ttl shortens the deadline as it is sent, before any answer: the server may apply it then", async () => {
    const { lease, clock } = await leaseOfSilentServer("shortening", 60_000);
    const renewal = lease.renew({ ttlMs: 300 });
    while (server!.seen.length < 2) await new Promise((resolve) => setImmediate(resolve));
    // Sent, unanswered: the server may have made the lease end at 100 + 300 already.
    expectHeldUntil(lease, clock, 100 + 300 - 30);
    client!.close();
    await expect(renewal).rejects.toMatchObject({ code: "BATON_CLIENT_CLOSED" });
  });

  it("never uses the server's expires_at: a far-future expiry does not extend the lease", async () => {
    server = await ScriptedServer.start((_request, index) => (index === 0 ? ok(13n, BigInt(Number.MAX_SAFE_INTEGER)) : reply(2)));
    let nowMs = 0;
    client = new BatonClient({ endpoints: [server.endpoint], clock: () => nowMs });
    const result = await client.acquire("skewed", { ttlMs: 1000 });
    if (result.status !== "acquired") throw new Error("expected a grant");
    nowMs = 900; // default margin ttl/10
    expect(result.lease.held).toBe(false);
  });
});

describe("the signal after a pause of the process", () => {
  it("is aborted when read after the deadline, before the deadline timer has run", async () => {
    const { lease, clock } = await grantedLease("paused", { ttlMs: 1000, safetyMarginMs: 100 });
    const readBefore = lease.signal;
    expect(readBefore.aborted).toBe(false);
    // The process resumes past the deadline; no timer has run yet (nothing here yields to the loop),
    // as when Node runs the user's other due callbacks first.
    clock.nowMs = 900;
    const readAfter = lease.signal;
    expect(readAfter.aborted).toBe(true);
    expect((readAfter.reason as LeaseLostError).reason).toBe("deadline");
    // One signal per lease: the one read before the pause says so too, from then on.
    expect(readBefore).toBe(readAfter);
  });

  it("is not aborted by a read before the deadline", async () => {
    const { lease, clock } = await grantedLease("not-yet", { ttlMs: 1000, safetyMarginMs: 100 });
    clock.nowMs = 899.9;
    expect(lease.signal.aborted).toBe(false);
    expect(lease.held).toBe(true);
  });
});

describe("a renewal whose outcome was uncertain bounds every later deadline of the lease by its ttl", () => {
  /** A lease of ttl 10 s granted at 0 by a server that answers as `script` says from the second request on. */
  async function leaseWith(script: (index: number) => "silence" | "close" | "ok"): Promise<{ lease: Lease; clock: { nowMs: number } }> {
    server = await ScriptedServer.start((_request, index) => {
      if (index === 0) return ok(17n, 99_999n);
      const action = script(index);
      return action === "ok" ? ok(17n, 99_999n) : action;
    });
    const clock = { nowMs: 0 };
    client = new BatonClient({ endpoints: [server.endpoint], clock: () => clock.nowMs, timeoutMs: 20, backoff: { baseMs: 1, maxMs: 1 } });
    const result = await client.acquire("uncertain", { ttlMs: 10_000 });
    if (result.status !== "acquired") throw new Error("expected a grant");
    return { lease: result.lease, clock };
  }

  it("a short renewal that failed keeps a later, longer renewal's deadline to the short ttl", async () => {
    const { lease, clock } = await leaseWith((index) => (index === 1 ? "silence" : "ok"));
    clock.nowMs = 100;
    await expect(lease.renew({ ttlMs: 2000, attempts: 1 })).rejects.toMatchObject({ code: "BATON_RETRIES_EXHAUSTED" });
    clock.nowMs = 500;
    expect(await lease.renew({ ttlMs: 10_000 })).toMatchObject({ status: "renewed" });
    // The RENEW(2000) may still run after this renewal: the server's lease then ends 2 s after it.
    expectHeldUntil(lease, clock, 500 + 2000 - 200);
  });

  it("so does a short renewal that succeeded through a retry after an attempt timed out", async () => {
    const { lease, clock } = await leaseWith((index) => (index === 1 ? "silence" : "ok"));
    clock.nowMs = 100;
    expect(await lease.renew({ ttlMs: 2000 })).toMatchObject({ status: "renewed" });
    clock.nowMs = 500;
    expect(await lease.renew({ ttlMs: 10_000 })).toMatchObject({ status: "renewed" });
    expect(lease.remainingMs).toBe(2000 - 200);
    // Never lifted: every renewal after it is bounded the same way.
    clock.nowMs = 1000;
    expect(await lease.renew({ ttlMs: 10_000 })).toMatchObject({ status: "renewed" });
    expectHeldUntil(lease, clock, 1000 + 2000 - 200);
  });

  it("and one whose connection was lost under it", async () => {
    const { lease, clock } = await leaseWith((index) => (index === 1 ? "close" : "ok"));
    clock.nowMs = 100;
    expect(await lease.renew({ ttlMs: 3000 })).toMatchObject({ status: "renewed" });
    clock.nowMs = 500;
    expect(await lease.renew({ ttlMs: 10_000 })).toMatchObject({ status: "renewed" });
    expectHeldUntil(lease, clock, 500 + 3000 - 300);
  });

  it("renewals answered at the first attempt leave later deadlines to their own ttl", async () => {
    const { lease, clock } = await leaseWith(() => "ok");
    clock.nowMs = 100;
    expect(await lease.renew({ ttlMs: 2000 })).toMatchObject({ status: "renewed" });
    clock.nowMs = 500;
    expect(await lease.renew({ ttlMs: 10_000 })).toMatchObject({ status: "renewed" });
    expectHeldUntil(lease, clock, 500 + 10_000 - 1000);
  });
});

describe("a renewal or release asked for by hand ends with the lease, not at its own timeout", () => {
  /** A lease of `ttlMs` granted by a server that answers nothing after the ACQUIRE; the clock is real. */
  async function leaseOfServerGoneSilent(name: string, ttlMs: number): Promise<Lease> {
    server = await ScriptedServer.start((_request, index) => (index === 0 ? ok(16n, 99_999n) : "silence"));
    client = new BatonClient({ endpoints: [server.endpoint], attempts: 1 });
    const result = await client.acquire(name, { ttlMs });
    if (result.status !== "acquired") throw new Error("expected a grant");
    return result.lease;
  }

  // Each attempt is given a minute, twice the test's own time limit: only the lease's end can end it.
  it("a renewal waiting for its answer answers lost at the lease's deadline", async () => {
    const lease = await leaseOfServerGoneSilent("renewal-outlived", 300);
    expect(await lease.renew({ timeoutMs: 60_000 })).toEqual({ status: "lost" });
    expect(lease.lossReason).toBe("deadline");
    expect(server!.seen.map((request) => request.command)).toEqual([Command.Acquire, Command.Renew]);
  });

  it("so does a release", async () => {
    const lease = await leaseOfServerGoneSilent("release-outlived", 300);
    expect(await lease.release({ timeoutMs: 60_000 })).toEqual({ status: "lost" });
    expect(lease.deadlinePassed).toBe(true);
    expect(server!.seen.map((request) => request.command)).toEqual([Command.Acquire, Command.Release]);
  });

  it("and with retries left, none is sent after the deadline", async () => {
    server = await ScriptedServer.start((_request, index) => (index === 0 ? ok(16n, 99_999n) : "silence"));
    client = new BatonClient({ endpoints: [server.endpoint], attempts: 5, backoff: { baseMs: 1, maxMs: 1 } });
    const result = await client.acquire("retries-outlived", { ttlMs: 300 });
    if (result.status !== "acquired") throw new Error("expected a grant");
    expect(await result.lease.renew({ timeoutMs: 60_000 })).toEqual({ status: "lost" });
    expect(server.seen.map((request) => request.command)).toEqual([Command.Acquire, Command.Renew]);
  });
});
