/**
 * The SDK when things go wrong around a lease: misused options, a server that stops answering, a
 * client closed mid-call, answers that arrive too late or make no sense. Scripted servers show
 * exactly what went over the wire; the client's monotonic clock is the test's where time matters.
 */
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Command } from "../../src/protocol/index.js";
import { LeaseLostError } from "../../client/index.js";
import { ScriptedServer, ok, reply } from "./support/scripted-server.js";
import { rejection, useScriptedSession } from "./support/scripted-session.js";
import { startUnansweredListener } from "./support/unanswered-listener.js";

const { serve, client } = useScriptedSession();

const commands = (server: ScriptedServer) => server.seen.map((request) => request.command);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("auto-renewal options are checked before anything is sent", () => {
  it("refuses a bad interval, or one no shorter than the lease, without acquiring", async () => {
    const server = await serve(() => ok(1n, 1n));
    const c = client({ endpoints: [server.endpoint] });
    for (const intervalMs of [0, -5, "100", Number.NaN, 900, 5000] as unknown as number[]) {
      const error = await rejection(c.acquire("jobs", { ttlMs: 1000, autoRenew: { intervalMs } }));
      expect(error.code).toBe("BATON_INVALID_ARGUMENT");
      expect(error.message).toContain("autoRenew.intervalMs");
      const inWithLock = await rejection(c.withLock("jobs", { ttlMs: 1000, autoRenew: { intervalMs } }, () => "ran"));
      expect(inWithLock.code).toBe("BATON_INVALID_ARGUMENT");
    }
    // 900 ms is the whole lease of a 1000 ms ttl (the default margin takes 100): 899 renews in time.
    expect((await c.acquire("jobs", { ttlMs: 1000, autoRenew: { intervalMs: 899 } })).status).toBe("acquired");
    expect(commands(server)).toEqual([Command.Acquire]);
  });

  it("refuses a renewal to a ttl that the chosen interval no longer fits, without sending it", async () => {
    const server = await serve(() => ok(1n, 1n));
    const c = client({ endpoints: [server.endpoint] });
    const granted = await c.acquire("jobs", { ttlMs: 60_000, autoRenew: { intervalMs: 10_000 } });
    if (granted.status !== "acquired") throw new Error("expected a grant");
    const error = await rejection(granted.lease.renew({ ttlMs: 5_000 }));
    expect(error.code).toBe("BATON_INVALID_ARGUMENT");
    expect(granted.lease.held).toBe(true);
    expect(commands(server)).toEqual([Command.Acquire]);
  });
});

describe("auto-renewal follows the ttl of the latest renewal", () => {
  it("renews at a third of a shorter ttl set by hand, and keeps the lease", async () => {
    const server = await serve(() => ok(3n, 1n));
    const c = client({ endpoints: [server.endpoint] });
    const granted = await c.acquire("jobs", { ttlMs: 60_000, autoRenew: true });
    if (granted.status !== "acquired") throw new Error("expected a grant");
    const { lease } = granted;
    expect(await lease.renew({ ttlMs: 300 })).toMatchObject({ status: "renewed" });
    // At the first ttl's interval (20 s) nothing would renew, and the 300 ms lease would end at 270 ms.
    await pause(900);
    expect(lease.held).toBe(true);
    expect(lease.ttlMs).toBe(300);
    const renewals = server.seen.filter((request) => request.command === Command.Renew);
    expect(renewals.length).toBeGreaterThanOrEqual(3);
    expect(renewals.every((request) => request.ttlMs === 300n)).toBe(true);
  });
});

describe("a server that stops answering", () => {
  it("is left for the next endpoint after a timeout, not retried until the attempts run out", async () => {
    const hung = await serve(() => "silence");
    const healthy = await serve(() => reply(2));
    const c = client({ endpoints: [hung.endpoint, healthy.endpoint], timeoutMs: 100, attempts: 3 });
    expect(await c.inspect("jobs")).toEqual({ status: "free" });
    expect(hung.seen).toHaveLength(1);
    expect(healthy.seen[0]!.requestId).toBe(hung.seen[0]!.requestId);
  });

  it("moves only the request that timed out: later calls start where the last answer came from", async () => {
    // The first endpoint answers everything but the first request; the second never answers.
    const leader = await serve((_request, index) => (index === 0 ? "silence" : reply(2)));
    const silent = await serve(() => "silence");
    const c = client({ endpoints: [leader.endpoint, silent.endpoint], timeoutMs: 60_000 });
    expect((await rejection(c.inspect("jobs", { timeoutMs: 50, attempts: 1 }))).code).toBe("BATON_RETRIES_EXHAUSTED");
    // Were the client to start there now, this call would wait out the silent endpoint's 60 s.
    expect(await c.inspect("jobs")).toEqual({ status: "free" });
    expect(silent.seen).toHaveLength(0);
  });

  it("moves on from an endpoint that accepts and drops every connection, as a server at its connection limit does", async () => {
    const dropping = await serve(() => "close");
    const healthy = await serve(() => reply(2));
    const c = client({ endpoints: [dropping.endpoint, healthy.endpoint] });
    expect(await c.inspect("jobs")).toEqual({ status: "free" });
    expect(dropping.seen).toHaveLength(1);
  });

  it("counts a dial that hangs against the attempt's timeout, then tries the next endpoint", async () => {
    const unanswered = await startUnansweredListener();
    try {
      const healthy = await serve(() => reply(2));
      // Left to the connect timeout, the first attempt would take a minute.
      const c = client({ endpoints: [unanswered.endpoint, healthy.endpoint], timeoutMs: 200, connectTimeoutMs: 60_000, attempts: 2 });
      expect(await c.inspect("jobs")).toEqual({ status: "free" });
      expect(healthy.seen).toHaveLength(1);
    } finally {
      unanswered.close();
    }
  });
});

describe("close() ends every call at once", () => {
  it("rejects a call sleeping between retries, without waiting out the backoff", async () => {
    // Every attempt is cut off; the retry would come 5-10 minutes later, long past the test's timeout.
    const server = await serve(() => "close");
    const c = client({ endpoints: [server.endpoint], backoff: { baseMs: 600_000, maxMs: 600_000 } });
    const pending = c.inspect("jobs");
    while (server.seen.length === 0) await pause(5);
    await pause(20);
    c.close();
    expect((await rejection(pending)).code).toBe("BATON_CLIENT_CLOSED");
    expect(server.seen).toHaveLength(1);
  });

  it("resets a connection with requests unanswered, so its kernel cannot deliver them later; closes an idle one", async () => {
    // A server that reads and never answers, and tells how each connection ended: a reset or a FIN.
    const endings: string[] = [];
    let received = 0;
    const silent = createServer((socket) => {
      socket.on("data", () => received++);
      socket.on("end", () => endings.push("fin"));
      socket.on("error", (error: NodeJS.ErrnoException) => endings.push(error.code ?? "error"));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const endpoint = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
      const busy = client({ endpoints: [endpoint], timeoutMs: 60_000 });
      const pending = busy.inspect("jobs");
      while (received === 0) await pause(5);
      busy.close();
      expect((await rejection(pending)).code).toBe("BATON_CLIENT_CLOSED");
      while (endings.length < 1) await pause(5);
      const idle = client({ endpoints: [endpoint] });
      await idle.connect();
      idle.close();
      while (endings.length < 2) await pause(5);
      expect(endings).toEqual(["ECONNRESET", "fin"]);
    } finally {
      silent.close();
    }
  });

  it("ends leases it does not track too (no auto-renewal, no signal read)", async () => {
    const server = await serve(() => ok(4n, 1n));
    const c = client({ endpoints: [server.endpoint] });
    const granted = await c.acquire("jobs", { ttlMs: 60_000 });
    if (granted.status !== "acquired") throw new Error("expected a grant");
    expect(granted.lease.held).toBe(true);
    c.close();
    expect(granted.lease.held).toBe(false);
    expect(granted.lease.lossReason).toBe("client-closed");
    expect(granted.lease.signal.aborted).toBe(true);
  });

  it("still says deadline for a lease whose deadline had passed before the close, watched or not", async () => {
    const clock = { nowMs: 0 };
    const server = await serve(() => ok(4n, 1n));
    const c = client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const leases = await Promise.all(
      [{}, { autoRenew: { intervalMs: 100_000 } }].map(async (options) => {
        const granted = await c.acquire("jobs", { ttlMs: 1000_000, ...options });
        if (granted.status !== "acquired") throw new Error("expected a grant");
        return granted.lease;
      }),
    );
    leases[0]!.signal.addEventListener("abort", () => {});
    clock.nowMs = 2000_000; // both deadlines passed while the timers had not fired yet
    c.close();
    expect(leases.map((lease) => lease.lossReason)).toEqual(["deadline", "deadline"]);
  });
});

describe("a lease that ended stays ended", () => {
  it("answers lost to a renewal whose answer came after the local deadline, and never comes back", async () => {
    const clock = { nowMs: 0 };
    const server = await serve((request) => {
      // The renewal is answered, but only once the lease's local deadline (900 ms) has passed.
      if (request.command === Command.Renew) clock.nowMs = 950;
      return ok(5n, 1n);
    });
    const c = client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const granted = await c.acquire("jobs", { ttlMs: 1000 });
    if (granted.status !== "acquired") throw new Error("expected a grant");
    const { lease } = granted;
    clock.nowMs = 800;
    expect(await lease.renew()).toEqual({ status: "lost" });
    expect(lease.held).toBe(false);
    expect(lease.lossReason).toBe("deadline");
    clock.nowMs = 1000;
    expect(lease.held).toBe(false);
    expect(await lease.release()).toEqual({ status: "lost" });
    expect(commands(server)).toEqual([Command.Acquire, Command.Renew]);
  });
});

describe("withLock tells, as a warning, when the lease was not held to the end", () => {
  it("warns when the release is answered notHeld for a lease held locally", async () => {
    const server = await serve((request) => (request.command === Command.Release ? reply(2) : ok(6n, 1n)));
    const c = client({ endpoints: [server.endpoint] });
    const warnings: Error[] = [];
    c.on("warning", (error) => warnings.push(error));
    expect(await c.withLock("jobs", { ttlMs: 60_000, autoRenew: false }, () => "done")).toBe("done");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toBeInstanceOf(LeaseLostError);
    expect((warnings[0] as LeaseLostError).reason).toBe("refused");
    expect(warnings[0]!.message).toContain("answered notHeld");
  });

  it("warns of the deadline, not of a refusal, when the release is answered expired after the local deadline", async () => {
    const clock = { nowMs: 0 };
    const server = await serve((request) => {
      if (request.command !== Command.Release) return ok(6n, 1n);
      clock.nowMs = 5000; // the server stalled with the release in hand, past the 1000 ms lease
      return reply(5, 6n, 1n);
    });
    const c = client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const warnings: Error[] = [];
    c.on("warning", (error) => warnings.push(error));
    expect(await c.withLock("jobs", { ttlMs: 1000, autoRenew: false }, () => "done")).toBe("done");
    expect(warnings.map((error) => (error as LeaseLostError).reason)).toEqual(["deadline"]);
    expect(warnings[0]!.message).toContain("answered expired after the lease's local deadline");
  });

  it("warns when the lease ended while the callback ran, and sends no release (withLock then rejects)", async () => {
    const clock = { nowMs: 0 };
    const server = await serve(() => ok(6n, 1n));
    const c = client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const warnings: Error[] = [];
    c.on("warning", (error) => warnings.push(error));
    const lost = await rejection(
      c.withLock("jobs", { ttlMs: 1000, autoRenew: false }, () => {
        clock.nowMs = 5000; // the callback outlived the lease
        return "late";
      }),
    );
    expect(lost).toMatchObject({ code: "BATON_LEASE_LOST", reason: "deadline", result: "late" });
    expect(warnings.map((error) => (error as LeaseLostError).reason)).toEqual(["deadline"]);
    expect(commands(server)).toEqual([Command.Acquire]);
  });

  it("stays quiet when the release succeeds, or the callback released the lease itself", async () => {
    const server = await serve((request) => (request.command === Command.Release ? ok(6n, 2n) : ok(6n, 1n)));
    const c = client({ endpoints: [server.endpoint] });
    const warnings: Error[] = [];
    c.on("warning", (error) => warnings.push(error));
    await c.withLock("jobs", { ttlMs: 60_000 }, () => "done");
    await c.withLock("jobs", { ttlMs: 60_000 }, async (lease) => lease.release());
    expect(warnings).toEqual([]);
    expect(commands(server)).toEqual([Command.Acquire, Command.Release, Command.Acquire, Command.Release]);
  });
});

describe("durations past what a Node timer holds (2^31 - 1 ms, about 24.8 days)", () => {
  it("keeps a 30-day auto-renewed lease quiet instead of renewing every millisecond", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const server = await serve(() => ok(8n, 1n));
      const c = client({ endpoints: [server.endpoint], timeoutMs: 3e9 });
      const granted = await c.acquire("jobs", { ttlMs: 30 * 24 * 3600 * 1000, autoRenew: true });
      if (granted.status !== "acquired") throw new Error("expected a grant");
      expect(granted.lease.signal.aborted).toBe(false);
      expect(await c.inspect("jobs")).toMatchObject({ status: "heldByYou" });
      await pause(100);
      expect(granted.lease.held).toBe(true);
      expect(commands(server)).toEqual([Command.Acquire, Command.Inspect]);
      expect(warnings.filter((warning) => warning.name === "TimeoutOverflowWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe("answers about a lease carry its token", () => {
  it("turns a lease answer with token 0 (status 0 or 5, any command) into BATON_PROTOCOL", async () => {
    const server = await serve((request) => (request.command === Command.Release ? reply(5, 0n, 1n) : ok(0n, 0n)));
    const c = client({ endpoints: [server.endpoint], attempts: 1 });
    for (const call of [() => c.inspect("jobs"), () => c.release("jobs"), () => c.renew("jobs", { ttlMs: 1000 })]) {
      const error = await rejection(call());
      expect(error.code).toBe("BATON_PROTOCOL");
      expect(error.message).toContain("impossible answer");
      expect(error.message).toContain("(no lockd answers that: is the endpoint a lockd's --listen address?)");
    }
  });
});

describe("a lease keeps its process alive", () => {
  it("waits for the lease to end when its server dies, instead of exiting under the holder", async () => {
    // The holder awaits its lease's end; the server grants, then goes away for good.
    const sdk = fileURLToPath(new URL("../../dist/client/index.js", import.meta.url));
    const holder = `
      import { BatonClient } from ${JSON.stringify(sdk)};
      const client = new BatonClient({ endpoints: [process.argv[1]], backoff: { baseMs: 1, maxMs: 5 } });
      const granted = await client.acquire("jobs", { ttlMs: 3000, autoRenew: true });
      console.log("acquired");
      const signal = granted.lease.signal;
      const reason = await new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason.reason)));
      console.log("ended: " + reason);
      client.close();
    `;
    const server = await ScriptedServer.start(() => ok(9n, 1n));
    const child = spawn(process.execPath, ["--input-type=module", "-e", holder, server.endpoint], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => {
      output += text;
      if (text.includes("acquired")) void server.close();
    });
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(output).toBe("acquired\nended: deadline\n");
    expect(code).toBe(0);
  });
});

describe("an auto-renewal outlasts a stalled leader when another endpoint is dead", () => {
  it("tries the leader again before the deadline, each attempt taking at most half the time left", async () => {
    // The leader does not answer the first renewal (a stall); the second endpoint's dial hangs.
    // With a 3 s ttl a renewal starts at 1 s and the deadline is at 2.7 s: attempts of 1 s (the
    // interval) would spend it on the stalled leader and the dead endpoint; of half what is left
    // (0.85 s, then about 0.4 s), a third fits.
    const unanswered = await startUnansweredListener();
    try {
      let renewals = 0;
      const leader = await serve((request) => (request.command === Command.Renew && renewals++ === 0 ? "silence" : ok(7n, 1n)));
      const c = client({ endpoints: [leader.endpoint, unanswered.endpoint] });
      const granted = await c.acquire("jobs", { ttlMs: 3000, autoRenew: true });
      if (granted.status !== "acquired") throw new Error("expected a grant");
      await pause(2900);
      expect(granted.lease.lossReason).toBeUndefined();
      const renewIds = leader.seen.filter((request) => request.command === Command.Renew).map((request) => request.requestId);
      expect(renewIds.length).toBeGreaterThanOrEqual(2);
      expect(renewIds[1]).toBe(renewIds[0]); // the stalled renewal, sent again
    } finally {
      unanswered.close();
    }
  });
});

describe("a renewal's pauses between retries fit what is left of its lease", () => {
  it("retries within the lease however long the backoff has grown", async () => {
    // The first renewal attempt loses its connection; the backoff before the retry would be a minute.
    let renewals = 0;
    const server = await serve((request) => (request.command === Command.Renew && renewals++ === 0 ? "close" : ok(7n, 1n)));
    const c = client({ endpoints: [server.endpoint], backoff: { baseMs: 60_000, maxMs: 60_000 } });
    const granted = await c.acquire("jobs", { ttlMs: 3000, autoRenew: true });
    if (granted.status !== "acquired") throw new Error("expected a grant");
    await pause(3200); // past the first deadline (2.7 s)
    expect(granted.lease.lossReason).toBeUndefined();
    const renewIds = server.seen.filter((request) => request.command === Command.Renew).map((request) => request.requestId);
    expect(renewIds.length).toBeGreaterThanOrEqual(2);
    expect(renewIds[1]).toBe(renewIds[0]);
  });
});
