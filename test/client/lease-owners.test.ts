/**
 * Each lease has its own owner id unless the client was given one: the server renews and releases an
 * owner's current lease of a lock, so a late request of an earlier lease must not carry the newer
 * lease's owner id.
 */
import { describe, expect, it } from "vitest";
import { BatonClient, type Lease } from "../../client/index.js";
import { Command } from "../../src/protocol/index.js";
import { useLockd } from "../support/lockd-process.js";
import { ok, reply } from "./support/scripted-server.js";
import { useScriptedSession } from "./support/scripted-session.js";

const session = useScriptedSession();

const lockd = useLockd({ args: ["--fsync", "never"] });

function leaseOf(result: Awaited<ReturnType<BatonClient["acquire"]>>): Lease {
  if (result.status !== "acquired") throw new Error(`expected a grant, got ${result.status}`);
  return result.lease;
}

describe("each lease gets its own owner id when the client was given none", () => {
  it("two leases of one client have different owner ids, neither the client's, and each renews and releases with its own", async () => {
    const server = await session.serve(() => ok(7n, 99_999n));
    const client = session.client({ endpoints: [server.endpoint] });
    const first = leaseOf(await client.acquire("job", { ttlMs: 60_000 }));
    await first.release();
    const second = leaseOf(await client.acquire("job", { ttlMs: 60_000 }));
    await second.renew();
    await second.release();
    expect(first.owner).toMatch(/^[0-9a-f]{32}$/);
    expect(first.owner).not.toBe(second.owner);
    expect(first.owner).not.toBe(client.owner);
    expect(second.owner).not.toBe(client.owner);
    expect(server.seen.map((request) => [request.command, request.ownerId])).toEqual([
      [Command.Acquire, first.owner],
      [Command.Release, first.owner],
      [Command.Acquire, second.owner],
      [Command.Renew, second.owner],
      [Command.Release, second.owner],
    ]);
  });

  it("one acquire call keeps its owner id for every retry and every try of its wait", async () => {
    const server = await session.serve((_request, index) => (index === 0 ? "close" : index < 3 ? reply(1, 0n, 1n) : ok(8n, 99_999n)));
    const client = session.client({ endpoints: [server.endpoint] });
    const lease = leaseOf(await client.acquire("waited", { ttlMs: 60_000, waitMs: 60_000 }));
    expect(server.seen).toHaveLength(4);
    expect(new Set(server.seen.map((request) => request.ownerId))).toEqual(new Set([lease.owner]));
    // The try after the lost connection is a retry (same request id); each try of the wait a new request.
    expect(server.seen[1]!.requestId).toBe(server.seen[0]!.requestId);
    expect(server.seen[2]!.requestId).not.toBe(server.seen[1]!.requestId);
  });

  it("withLock's lease renews and releases with its own owner id", async () => {
    const server = await session.serve(() => ok(9n, 99_999n));
    const client = session.client({ endpoints: [server.endpoint] });
    const owner = await client.withLock("scoped", { ttlMs: 60_000 }, async (lease) => {
      await lease.renew();
      return lease.owner;
    });
    expect(owner).not.toBe(client.owner);
    expect(server.seen.map((request) => [request.command, request.ownerId])).toEqual([
      [Command.Acquire, owner],
      [Command.Renew, owner],
      [Command.Release, owner],
    ]);
  });

  it("a client created with an owner id gives it to every lease, and a call's owner wins over both", async () => {
    const server = await session.serve(() => ok(10n, 99_999n));
    const client = session.client({ endpoints: [server.endpoint], owner: "5eed" });
    const shared = leaseOf(await client.acquire("a", { ttlMs: 60_000 }));
    const again = leaseOf(await client.acquire("b", { ttlMs: 60_000 }));
    const named = leaseOf(await client.acquire("c", { ttlMs: 60_000, owner: "abc" }));
    expect(shared.owner).toBe(client.owner);
    expect(again.owner).toBe(client.owner);
    expect(named.owner).toBe("00000000000000000000000000000abc");
  });
});

describe("a late request of an earlier lease cannot end a newer lease of the same client", () => {
  it("a RELEASE of the expired first lease, delivered after the second was granted, leaves the second held", async () => {
    const client = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
    const other = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
    try {
      const first = leaseOf(await client.acquire("relayed", { ttlMs: 100 }));
      await new Promise((resolve) => setTimeout(resolve, 200)); // past its deadline and the server's expiry
      const second = leaseOf(await client.acquire("relayed", { ttlMs: 60_000 }));
      // What a relay that held the first lease's RELEASE would deliver now: the same request, late.
      expect((await client.release("relayed", { owner: first.owner })).status).not.toBe("released");
      expect(await client.inspect("relayed", { owner: second.owner })).toMatchObject({ status: "heldByYou", fencingToken: second.fencingToken });
      expect((await other.acquire("relayed", { ttlMs: 60_000 })).status).toBe("held");
      await second.release();
    } finally {
      client.close();
      other.close();
    }
  });
});
