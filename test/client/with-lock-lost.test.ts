/**
 * withLock throws LeaseLostError when the lease was lost before the callback returned: work that may
 * have overlapped another holder's must not look like work done under the lock.
 */
import { describe, expect, it } from "vitest";
import { LeaseLostError } from "../../client/index.js";
import { Command } from "../../src/protocol/index.js";
import { ok, reply } from "./support/scripted-server.js";
import { rejection, useScriptedSession } from "./support/scripted-session.js";

const session = useScriptedSession();

describe("withLock rejects with LeaseLostError when the lease was lost while the callback ran", () => {
  it("the local deadline passed: the error says so and carries what the callback returned", async () => {
    const server = await session.serve(() => ok(31n, 99_999n));
    const clock = { nowMs: 0 };
    const client = session.client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const error = await rejection(
      client.withLock("slow", { ttlMs: 10_000, autoRenew: false }, () => {
        clock.nowMs = 20_000;
        return "report written";
      }),
    );
    expect(error).toBeInstanceOf(LeaseLostError);
    expect((error as LeaseLostError).reason).toBe("deadline");
    expect((error as LeaseLostError).result).toBe("report written");
    // The final release is not sent past the deadline, as before.
    expect(server.seen.map((request) => request.command)).toEqual([Command.Acquire]);
  });

  it("the client was closed while the callback ran, and the callback returned after the lease's deadline", async () => {
    const server = await session.serve(() => ok(35n, 99_999n));
    const clock = { nowMs: 0 };
    const client = session.client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const error = await rejection(
      client.withLock("closed-late", { ttlMs: 10_000 }, (lease) => {
        client.close(); // a shutdown handler, while the work goes on
        expect(lease.lossReason).toBe("client-closed");
        expect(lease.deadlinePassed).toBe(false);
        clock.nowMs = 20_000;
        expect(lease.deadlinePassed).toBe(true);
        return "written after the deadline";
      }),
    );
    expect(error).toBeInstanceOf(LeaseLostError);
    expect((error as LeaseLostError).reason).toBe("deadline");
    expect((error as LeaseLostError).result).toBe("written after the deadline");
  });

  it("the client was closed while the callback ran, which returned before the lease's deadline: its value stands", async () => {
    const server = await session.serve(() => ok(36n, 99_999n));
    const clock = { nowMs: 0 };
    const client = session.client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const value = await client.withLock("closed-early", { ttlMs: 10_000 }, () => {
      client.close();
      clock.nowMs = 5_000;
      return "written under the lock";
    });
    expect(value).toBe("written under the lock");
  });

  it("a renewal was refused", async () => {
    const server = await session.serve((request) => (request.command === Command.Renew ? reply(2) : ok(32n, 99_999n)));
    const client = session.client({ endpoints: [server.endpoint] });
    const error = await rejection(
      client.withLock("taken", { ttlMs: 10_000, autoRenew: false }, async (lease) => {
        expect(await lease.renew()).toEqual({ status: "notHeld" });
        return 7;
      }),
    );
    expect((error as LeaseLostError).reason).toBe("refused");
    expect((error as LeaseLostError).result).toBe(7);
  });

  it("the callback's own error wins over the loss", async () => {
    const server = await session.serve(() => ok(33n, 99_999n));
    const clock = { nowMs: 0 };
    const client = session.client({ endpoints: [server.endpoint], clock: () => clock.nowMs });
    const failure = new Error("the work failed");
    const error = await rejection(
      client.withLock("failed", { ttlMs: 10_000 }, () => {
        clock.nowMs = 20_000;
        throw failure;
      }),
    );
    expect(error).toBe(failure);
  });

  it("resolves with the callback's value when the lease was held to the end, or the callback released it", async () => {
    const server = await session.serve(() => ok(34n, 99_999n));
    const client = session.client({ endpoints: [server.endpoint] });
    expect(await client.withLock("held", { ttlMs: 10_000 }, () => "done")).toBe("done");
    expect(await client.withLock("released", { ttlMs: 10_000 }, async (lease) => (await lease.release()).status)).toBe("released");
  });
});
