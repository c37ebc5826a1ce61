/**
 * The retry loop, against a scripted server that shows exactly what went over the wire.
 */
import { getEventListeners } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { describe, expect, it, vi } from "vitest";
import { Command } from "../../src/protocol/index.js";
import { BatonClient, InvalidArgumentError, type AcquireOptions, type BatonError, type RetryEvent } from "../../client/index.js";
import { ok, reply, type ScriptedServer } from "./support/scripted-server.js";
import { rejection, useScriptedSession } from "./support/scripted-session.js";

const { serve, client } = useScriptedSession();

describe("a logical request keeps one request id across every retry", () => {
  it("resends status-6 answers with the same request id until one is decided", async () => {
    const server = await serve((_request, index) => (index < 3 ? reply(6) : ok(42n, 1000n)));
    const c = client({ endpoints: [server.endpoint] });
    const retries: RetryEvent[] = [];
    c.on("retry", (event) => retries.push(event));
    const result = await c.acquire("jobs", { ttlMs: 1000 });
    expect(result).toMatchObject({ status: "acquired", fencingToken: 42n });
    expect(server.seen).toHaveLength(4);
    expect(new Set(server.seen.map((request) => request.requestId)).size).toBe(1);
    expect(retries.map((event) => event.requestId)).toEqual([server.seen[0]!.requestId, server.seen[0]!.requestId, server.seen[0]!.requestId]);
    expect(retries.map((event) => event.reason.code)).toEqual(["BATON_UNAVAILABLE", "BATON_UNAVAILABLE", "BATON_UNAVAILABLE"]);
  });

  it("resends after a timeout, on a new connection when the old one stayed silent", async () => {
    const server = await serve((_request, index) => (index === 0 ? "silence" : ok(7n, 1000n)));
    const c = client({ endpoints: [server.endpoint], timeoutMs: 100 });
    const result = await c.acquire("jobs", { ttlMs: 1000 });
    expect(result.status).toBe("acquired");
    expect(server.seen.map((request) => request.requestId)).toEqual([server.seen[0]!.requestId, server.seen[0]!.requestId]);
    expect(server.seen.map((request) => request.connection)).toEqual([0, 1]);
  });

  it("resends after the connection breaks with the request in flight", async () => {
    const server = await serve((_request, index) => (index === 0 ? "close" : ok(9n, 1000n)));
    const c = client({ endpoints: [server.endpoint] });
    expect(await c.release("jobs")).toEqual({ status: "released", fencingToken: 9n, releasedAt: 1000n });
    expect(server.seen[1]!.requestId).toBe(server.seen[0]!.requestId);
  });

  it("goes on past the attempts, resending the same request id, while a waiting ACQUIRE's wait lasts", async () => {
    // Connections dropped under the first five tries: a server restarting within the wait.
    const server = await serve((_request, index) => (index < 5 ? "close" : ok(5n, 1000n)));
    const c = client({ endpoints: [server.endpoint], attempts: 2, backoff: { baseMs: 1, maxMs: 5 } });
    const result = await c.acquire("jobs", { ttlMs: 1000, waitMs: 60_000 });
    expect(result).toMatchObject({ status: "acquired", fencingToken: 5n });
    expect(server.seen).toHaveLength(6);
    expect(new Set(server.seen.map((request) => request.requestId)).size).toBe(1);
  });

  it("stops at the wait's end, or at the attempts when there is no wait", async () => {
    const server = await serve(() => "close");
    let nowMs = 0;
    const c = client({ endpoints: [server.endpoint], attempts: 2, backoff: { baseMs: 1, maxMs: 1 }, clock: () => nowMs });
    // Each attempt moves the client's clock on a second: the 5 s wait allows five more after the two.
    c.on("retry", () => (nowMs += 1000));
    const waited = await rejection(c.acquire("jobs", { ttlMs: 1000, waitMs: 5_500 }));
    expect(waited.code).toBe("BATON_RETRIES_EXHAUSTED");
    expect(waited.message).toMatch(/after 7 attempt/);
    expect(server.seen).toHaveLength(7);
    const unwaited = await rejection(c.acquire("jobs", { ttlMs: 1000 }));
    expect(unwaited.message).toMatch(/after 2 attempt/);
    expect(server.seen).toHaveLength(9);
  });

  it("uses a new request id for each new logical request", async () => {
    const server = await serve(() => reply(2));
    const c = client({ endpoints: [server.endpoint] });
    await c.inspect("a");
    await c.inspect("a");
    expect(server.seen[0]!.requestId).not.toBe(server.seen[1]!.requestId);
  });

  it("gives up with BATON_RETRIES_EXHAUSTED after the configured attempts, the last error as cause", async () => {
    const server = await serve(() => reply(6));
    const c = client({ endpoints: [server.endpoint], attempts: 3 });
    const error = await rejection(c.renew("jobs", { ttlMs: 100 }));
    expect(error.code).toBe("BATON_RETRIES_EXHAUSTED");
    expect((error.cause as BatonError).code).toBe("BATON_UNAVAILABLE");
    expect(server.seen).toHaveLength(3);
  });
});

describe("many requests backing off at once", () => {
  it("are not reported as a listener leak: each waits on the client's close signal only while it sleeps", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning);
    process.on("warning", onWarning);
    try {
      // Every request is answered 6 once, so all 40 sleep out a backoff at the same time.
      const server = await serve((_request, index) => (index < 40 ? reply(6) : ok(BigInt(index), 1000n)));
      const c = client({ endpoints: [server.endpoint] });
      const results = await Promise.all(Array.from({ length: 40 }, (_, n) => c.acquire(`jobs-${n}`, { ttlMs: 1000 })));
      expect(results.every((result) => result.status === "acquired")).toBe(true);
      expect(server.seen).toHaveLength(80);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      expect(warnings.map((warning) => warning.name)).not.toContain("MaxListenersExceededWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("keep one listener on a signal they all wait on, their own or the client's close", async () => {
    // Each listener added to an AbortSignal is checked against those already there: 20,000 requests
    // waiting on one signal froze the event loop for seconds.
    const addListener = EventTarget.prototype.addEventListener;
    let most = 0;
    const spy = vi.spyOn(EventTarget.prototype, "addEventListener").mockImplementation(function (this: EventTarget, ...args: Parameters<EventTarget["addEventListener"]>) {
      addListener.apply(this, args);
      if (args[0] === "abort") most = Math.max(most, getEventListeners(this, "abort").length);
    });
    try {
      const server = await serve((_request, index) => (index < 40 ? reply(6) : ok(BigInt(index), 1000n)));
      const c = client({ endpoints: [server.endpoint] });
      const shutdown = new AbortController();
      const results = await Promise.all(Array.from({ length: 40 }, (_, n) => c.acquire(`jobs-${n}`, { ttlMs: 1000, signal: shutdown.signal })));
      expect(results.every((result) => result.status === "acquired")).toBe(true);
      expect(server.seen).toHaveLength(80);
      expect(spy.mock.calls.some(([type]) => type === "abort")).toBe(true);
      expect(most).toBe(1);
      expect(getEventListeners(shutdown.signal, "abort")).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });

  it("all end with ClientClosedError when the client closes", async () => {
    const server = await serve(() => reply(6));
    const c = client({ endpoints: [server.endpoint], attempts: 5, backoff: { baseMs: 60_000, maxMs: 60_000 } });
    const calls = Array.from({ length: 40 }, (_, n) => c.acquire(`jobs-${n}`, { ttlMs: 1000 }).then(() => "resolved", (error: BatonError) => error.code));
    while (server.seen.length < 40) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 20)); // the last answers reach their requests, which go to sleep
    c.close();
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 40 }, () => "BATON_CLIENT_CLOSED"));
  });
});

describe("retries stay within the server's dedupe window", () => {
  // The scripted server moves the client's clock 25 s per request it answers 6.
  async function sendsUntilStopped(
    dedupeWindowMs?: number,
    call: (c: BatonClient) => Promise<unknown> = (c) => c.acquire("jobs", { ttlMs: 1000 }),
  ): Promise<{ sent: number; error: BatonError; announced: number[] }> {
    let nowMs = 0;
    const server = await serve(() => {
      nowMs += 25_000;
      return reply(6);
    });
    const c = client({ endpoints: [server.endpoint], attempts: 8, timeoutMs: 100, clock: () => nowMs, ...(dedupeWindowMs === undefined ? {} : { dedupeWindowMs }) });
    const announced: number[] = [];
    c.on("retry", (event) => announced.push(event.attempt));
    const error = await rejection(call(c));
    expect(new Set(server.seen.map((request) => request.requestId)).size).toBe(1);
    return { sent: server.seen.length, error, announced };
  }

  it("sends no retry that could reach the server after the window of the first attempt (lockd's default, 60 s)", async () => {
    const { sent, error, announced } = await sendsUntilStopped();
    // Sent at 0, 25 s and 50 s. One at 75 s could be executed as a new request: a second grant.
    expect(sent).toBe(3);
    expect(announced).toEqual([2, 3]); // a retry event for each retry made, none for the one not made
    expect(error.code).toBe("BATON_RETRIES_EXHAUSTED");
    expect(error.message).toContain("after 3 attempt(s) (a retry now could reach the server after its 60000 ms dedupe window");
    expect((error.cause as BatonError).code).toBe("BATON_UNAVAILABLE");
  });

  it("takes the server's window from dedupeWindowMs", async () => {
    expect((await sendsUntilStopped(30_000)).sent).toBe(2);
    expect((await sendsUntilStopped(500_000)).sent).toBe(8);
  });

  it("allows 1 ms more for each reconnection, since each may follow a restart that adds 1 ms to the server's clock", async () => {
    // Every attempt's connection is closed under it, 10 s later on the client's clock. The third
    // attempt would go out 20 s after the first, on the third connection: (20,000 + 100) x 1.01 + 1 ms,
    // plus 1 ms for each of the two restarts its reconnections may hide, reaches a 20,304 ms window.
    let nowMs = 0;
    const server = await serve(() => {
      nowMs += 10_000;
      return "close";
    });
    const c = client({ endpoints: [server.endpoint], attempts: 8, timeoutMs: 100, backoff: { baseMs: 1, maxMs: 1 }, clock: () => nowMs, dedupeWindowMs: 20_304 });
    const error = await rejection(c.acquire("jobs", { ttlMs: 1000 }));
    expect(server.seen.length).toBe(2);
    expect(error.message).toContain("after 2 attempt(s) (a retry now could reach the server after its 20304 ms dedupe window");
  });

  it("keeps resending INSPECT, which changes nothing and is never remembered", async () => {
    expect((await sendsUntilStopped(undefined, (c) => c.inspect("jobs"))).sent).toBe(8);
  });

  it("refuses a dedupeWindowMs that is not a positive number", () => {
    expect(() => new BatonClient({ dedupeWindowMs: 0 })).toThrow(InvalidArgumentError);
  });
});

describe("status 4: the client finds the leader by itself", () => {
  it("goes to the endpoint carrying the hinted node id", async () => {
    const leader = await serve(() => ok(5n, 1000n));
    const follower = await serve(() => reply(4, 2n));
    const c = client({ endpoints: [{ host: "127.0.0.1", port: follower.port, nodeId: 1n }, { host: "127.0.0.1", port: 9, nodeId: 3n }, { host: "127.0.0.1", port: leader.port, nodeId: 2n }] });
    expect((await c.acquire("jobs", { ttlMs: 1000 })).status).toBe("acquired");
    expect(leader.seen[0]!.requestId).toBe(follower.seen[0]!.requestId);
    // The leader is remembered: the next request goes straight there.
    await c.acquire("other", { ttlMs: 1000 });
    expect(follower.seen).toHaveLength(1);
    expect(leader.seen).toHaveLength(2);
  });

  it("does not follow two nodes that name each other: it goes on to the others", async () => {
    const first = await serve(() => reply(4, 2n));
    const second = await serve(() => reply(4, 1n));
    const leader = await serve(() => ok(5n, 1000n));
    const at = (server: ScriptedServer, nodeId: bigint) => ({ host: "127.0.0.1", port: server.port, nodeId });
    const c = client({ endpoints: [at(first, 1n), at(second, 2n), at(leader, 3n)], attempts: 4 });
    expect((await c.acquire("jobs", { ttlMs: 1000 })).status).toBe("acquired");
    expect([first.seen.length, second.seen.length, leader.seen.length]).toEqual([1, 1, 1]);
  });

  it("tries the next endpoint when the hint is unknown", async () => {
    const follower = await serve(() => reply(4, 0n));
    const leader = await serve(() => ok(5n, 1000n));
    const c = client({ endpoints: [follower.endpoint, leader.endpoint] });
    expect((await c.inspect("jobs")).status).toBe("heldByYou");
    expect(leader.seen[0]!.requestId).toBe(follower.seen[0]!.requestId);
  });

  it("moves on to the next endpoint when one refuses connections", async () => {
    const dead = await serve(() => "close");
    const deadEndpoint = dead.endpoint;
    await dead.close();
    const alive = await serve(() => reply(2));
    const c = client({ endpoints: [deadEndpoint, alive.endpoint] });
    expect(await c.inspect("jobs")).toEqual({ status: "free" });
  });
});

describe("errors users can branch on", () => {
  it("rejects with BATON_ABORTED when the caller's signal fires, and sends nothing more", async () => {
    const server = await serve(() => "silence");
    const c = client({ endpoints: [server.endpoint] });
    const controller = new AbortController();
    const pending = c.acquire("jobs", { ttlMs: 1000, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort(new Error("user gave up"));
    const error = await rejection(pending);
    expect(error.code).toBe("BATON_ABORTED");
    expect((error.cause as Error).message).toBe("user gave up");
  });

  it("turns status 3 into BATON_INVALID_REQUEST and a reserved status into BATON_PROTOCOL", async () => {
    const server = await serve((request) => (request.command === Command.Acquire ? reply(3) : reply(9)));
    const c = client({ endpoints: [server.endpoint] });
    expect((await rejection(c.acquire("jobs", { ttlMs: 1000 }))).code).toBe("BATON_INVALID_REQUEST");
    expect((await rejection(c.inspect("jobs"))).code).toBe("BATON_PROTOCOL");
  });

  it("turns numbers lockd never sends into BATON_PROTOCOL: a token or time of 2^53 or more, a grant with token 0", async () => {
    const answers = [ok(1n << 53n, 1n), ok(1n, 1n << 53n), ok(0n, 1n), { status: 1, fencingToken: 0n, expiresAt: (1n << 64n) - 1n }];
    const server = await serve((_request, index) => answers[index]!);
    const c = client({ endpoints: [server.endpoint], attempts: 1 });
    for (let n = 0; n < answers.length; n++) {
      const error = await rejection(n < 3 ? c.acquire("jobs", { ttlMs: 1000 }) : c.inspect("jobs"));
      expect(error.code).toBe("BATON_PROTOCOL");
      expect(error.message).toContain("impossible answer");
    }
    // At the limits, the same answers are facts.
    const fine = await serve((request) => (request.command === Command.Acquire ? ok(BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER)) : reply(2)));
    const d = client({ endpoints: [fine.endpoint] });
    expect(await d.acquire("jobs", { ttlMs: 1000 })).toMatchObject({ status: "acquired", fencingToken: BigInt(Number.MAX_SAFE_INTEGER) });
    expect(await d.release("jobs")).toEqual({ status: "notHeld" });
  });

  it("refuses misuse before sending: a bad ttl, an empty endpoint list", async () => {
    const server = await serve(() => ok(1n, 1n));
    const c = client({ endpoints: [server.endpoint] });
    expect((await rejection(c.acquire("jobs", { ttlMs: 0 }))).code).toBe("BATON_INVALID_ARGUMENT");
    expect((await rejection(c.acquire("jobs", { ttlMs: 1.5 }))).code).toBe("BATON_INVALID_ARGUMENT");
    expect((await rejection(c.acquire("jobs", { ttlMs: 1000, safetyMarginMs: -1 }))).code).toBe("BATON_INVALID_ARGUMENT");
    expect((await rejection(c.acquire("jobs", { ttlMs: 1000, safetyMarginMs: Number.NaN }))).code).toBe("BATON_INVALID_ARGUMENT");
    expect(() => new BatonClient({ endpoints: [] })).toThrow(expect.objectContaining({ code: "BATON_INVALID_ARGUMENT" }));
    expect(server.seen).toHaveLength(0);
  });

  it("answers every other misuse with BATON_INVALID_ARGUMENT naming the argument, never a TypeError", async () => {
    const server = await serve(() => ok(1n, 1n));
    const c = client({ endpoints: [server.endpoint] });
    const invalid = async (call: () => unknown, mentions: string) => {
      let error: unknown;
      try {
        await call();
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toContain(mentions);
    };
    const untyped = c as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    await invalid(() => untyped.acquire!.call(c, "jobs"), "acquire needs an options object with ttlMs");
    await invalid(() => untyped.renew!.call(c, "jobs"), "renew needs an options object with ttlMs");
    await invalid(() => untyped.withLock!.call(c, "jobs", { ttlMs: 1000 }, "not a function"), "withLock needs a function");
    await invalid(() => c.acquire("jobs", { ttlMs: 10n as unknown as number }), "(a bigint)");
    await invalid(() => c.acquire("jobs", { ttlMs: 2 ** 53 }), "at most");
    await invalid(() => c.acquire("jobs", { ttlMs: 1000, waitMs: "soon" as unknown as number }), "waitMs");
    // The margin must cover the server's 1% + 1 ms, and leave some of the lease.
    await invalid(() => c.acquire("jobs", { ttlMs: 1000, safetyMarginMs: 0 }), "exceed ttl/100 + 1 ms");
    await invalid(() => c.acquire("jobs", { ttlMs: 1000, safetyMarginMs: 11 }), "exceed ttl/100 + 1 ms");
    await invalid(() => c.acquire("jobs", { ttlMs: 1000, safetyMarginMs: 1000 }), "less than the ttl");
    await invalid(() => c.inspect("jobs", { attempts: 1.5 }), "attempts must be a whole number");
    const misconfigured = (options: unknown) => () => new BatonClient(options as ConstructorParameters<typeof BatonClient>[0]);
    await invalid(misconfigured({ endpoints: "127.0.0.1:5625" }), "endpoints must be an array");
    await invalid(misconfigured({ endpoints: [null] }), "an endpoint is a");
    // "::1:5625" is an IPv6 address of its own, as lockd's --listen refuses it too.
    await invalid(misconfigured({ endpoints: ["::1:5625"] }), 'expected HOST:PORT, got "::1:5625" (an IPv6 address goes in brackets: [::1]:5625)');
    // eslint-disable-next-line no-sparse-arrays
    await invalid(misconfigured({ endpoints: ["127.0.0.1:5625", , ] }), "got undefined");
    await invalid(misconfigured({ endpoints: [{ host: Object.create(null), port: 1 }] }), "got an object");
    // Values whose String() throws (no prototype) are shown by their type wherever they are refused.
    const bare: unknown = Object.create(null);
    await invalid(misconfigured({ owner: bare }), "not an owner id: an object");
    await invalid(misconfigured({ timeoutMs: bare }), "timeoutMs must be a positive number, got an object");
    await invalid(() => c.acquire(bare as string, { ttlMs: 1000 }), "not a lock name or id: an object");
    await invalid(() => c.acquire("jobs", { ttlMs: bare as number }), "got an object");
    await invalid(misconfigured({ endpoints: [{ port: 1 }] }), "endpoint host");
    await invalid(misconfigured({ endpoints: [{ host: "127.0.0.1", port: "5625" }] }), "bad port");
    await invalid(misconfigured({ endpoints: [{ host: "127.0.0.1", port: 5625, nodeId: 2 }] }), "nodeId must be a bigint");
    await invalid(misconfigured({ endpoints: [{ host: "127.0.0.1", port: 5625, nodeId: 0n }] }), "nodeId must be a bigint");
    await invalid(misconfigured({ attempts: 2.5 }), "attempts must be a whole number");
    await invalid(misconfigured({ backoff: { baseMs: -1 } }), "backoff.baseMs");
    await invalid(misconfigured({ backoff: { baseMs: 2000, maxMs: 10 } }), "backoff.maxMs (10) must be at least backoff.baseMs (2000)");
    await invalid(misconfigured({ maxInFlightPerConnection: 0.5 }), "maxInFlightPerConnection");
    // A misspelt option, from JavaScript, is refused rather than ignored for its default.
    await invalid(misconfigured({ endpoint: [server.endpoint] }), 'BatonClient has no option "endpoint" (did you mean endpoints?); it takes endpoints, owner,');
    await invalid(misconfigured({ timeout: 100 }), 'BatonClient has no option "timeout" (did you mean timeoutMs?)');
    await invalid(misconfigured(null), "BatonClient's options must be an object, got null");
    await invalid(misconfigured({ backoff: { base: 10 } }), 'backoff has no option "base" (did you mean baseMs?); it takes baseMs, maxMs');
    await invalid(() => c.acquire("jobs", { ttlMs: 1000, wait: 5000 } as never), 'acquire has no option "wait" (did you mean waitMs?)');
    await invalid(() => c.acquire("jobs", { ttlMs: 1000, autoRenew: { interval: 10 } } as never), 'autoRenew has no option "interval" (did you mean intervalMs?)');
    await invalid(() => c.renew("jobs", { ttlMs: 1000, timeout: 10 } as never), 'renew has no option "timeout" (did you mean timeoutMs?)');
    await invalid(() => c.withLock("jobs", { ttl: 1000, ttlMs: 1000 } as never, () => undefined), 'withLock has no option "ttl" (did you mean ttlMs?)');
    await invalid(() => c.release("jobs", { ownerId: "ab" } as never), 'release has no option "ownerId" (did you mean owner?)');
    await invalid(() => c.inspect("jobs", { sigal: undefined } as never), 'inspect has no option "sigal"; it takes signal,');
    await invalid(() => c.inspect("jobs", 5 as never), "inspect's options must be an object, got 5");
    await invalid(() => c.connect({ signl: undefined } as never), 'connect has no option "signl"; it takes signal,');
    expect(server.seen).toHaveLength(0);
    // One options object can serve an acquire and the calls after it.
    const shared: AcquireOptions = { ttlMs: 1000, timeoutMs: 2000, attempts: 2 };
    await c.connect(shared);
    expect((await c.inspect("shared", shared)).status).toBe("heldByYou");
    expect(server.seen).toHaveLength(1);
    server.seen.length = 0;

    // A margin that fits the grant's ttl can be too thin for a longer renewal: refused before sending.
    const granted = await c.acquire("jobs", { ttlMs: 1000, safetyMarginMs: 50 });
    expect(granted.status).toBe("acquired");
    if (granted.status !== "acquired") return;
    await invalid(() => granted.lease.renew({ ttlMs: 10_000 }), "exceed ttl/100 + 1 ms");
    await invalid(() => granted.lease.renew({ ttlMs: 0 }), "ttlMs");
    await invalid(() => granted.lease.renew({ ttl: 500 } as never), 'lease.renew has no option "ttl" (did you mean ttlMs?)');
    await invalid(() => granted.lease.release({ timeout: 5 } as never), 'lease.release has no option "timeout" (did you mean timeoutMs?)');
    expect(granted.lease.held).toBe(true);
    expect(server.seen).toHaveLength(1);
  });

  it("rejects calls in flight and later calls with BATON_CLIENT_CLOSED after close()", async () => {
    const server = await serve(() => "silence");
    const c = client({ endpoints: [server.endpoint] });
    const pending = c.inspect("jobs");
    await new Promise((resolve) => setTimeout(resolve, 20));
    c.close();
    expect((await rejection(pending)).code).toBe("BATON_CLIENT_CLOSED");
    expect((await rejection(c.inspect("jobs"))).code).toBe("BATON_CLIENT_CLOSED");
  });

  it("never sends a lease's release or renewal again once the lease's local deadline has passed", async () => {
    // The first RELEASE and RENEW go unanswered; their retries would come after the deadline, when
    // the server may act on a newer lease of the same owner. They are not sent: the answer is lost.
    const server = await serve((request) => (request.command === Command.Acquire ? ok(7n, 100n) : "silence"));
    const c = client({ endpoints: [server.endpoint] });
    const acquired = async () => {
      const granted = await c.acquire("jobs", { ttlMs: 100 });
      if (granted.status !== "acquired") throw new Error(`expected a grant, got ${granted.status}`);
      return granted.lease;
    };
    const released = await acquired();
    expect(await released.release({ timeoutMs: 200, attempts: 3 })).toEqual({ status: "lost" });
    const renewed = await acquired();
    expect(await renewed.renew({ timeoutMs: 200 })).toEqual({ status: "lost" });
    expect(renewed.held).toBe(false);
    expect(server.seen.map((request) => request.command)).toEqual([Command.Acquire, Command.Release, Command.Acquire, Command.Renew]);
  });

  it("does not send a lease's renewal again once the lease was released meanwhile", async () => {
    // The RENEW's connection breaks; before its retry goes out, the lease is released. The retry
    // would act on whatever lease the owner holds by then: it is not sent.
    const server = await serve((request) => {
      if (request.command === Command.Acquire) return ok(7n, 100_000n);
      if (request.command === Command.Renew) return "close";
      return ok(7n, 2_000n);
    });
    const c = client({ endpoints: [server.endpoint], backoff: { baseMs: 300, maxMs: 300 } });
    const granted = await c.acquire("jobs", { ttlMs: 60_000 });
    if (granted.status !== "acquired") throw new Error(`expected a grant, got ${granted.status}`);
    const renewing = granted.lease.renew();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await granted.lease.release()).toMatchObject({ status: "released" });
    expect(await renewing).toEqual({ status: "lost" });
    expect(server.seen.map((request) => request.command)).toEqual([Command.Acquire, Command.Renew, Command.Release]);
  });

  it("resets a connection it presumes dead, so the kernel cannot deliver its requests later", async () => {
    const endings: string[] = [];
    const silent = createServer((socket) => {
      socket.on("data", () => {}); // reads, never answers
      socket.on("end", () => endings.push("FIN"));
      socket.on("error", (error: NodeJS.ErrnoException) => endings.push(error.code ?? "error"));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const c = client({ endpoints: [`127.0.0.1:${(silent.address() as AddressInfo).port}`], timeoutMs: 100, attempts: 1 });
      const error = await rejection(c.inspect("jobs"));
      expect(error.code).toBe("BATON_RETRIES_EXHAUSTED");
      for (let n = 0; n < 100 && endings.length === 0; n++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(endings).toEqual(["ECONNRESET"]);
    } finally {
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
