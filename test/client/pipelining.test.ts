import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonClient } from "../../client/index.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";

let lockd: LockdProcess;
let client: BatonClient;
beforeAll(async () => {
  lockd = await spawnLockd({ args: ["--fsync", "never"] });
  client = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
});
afterAll(async () => {
  client.close();
  await lockd.stop();
  lockd.cleanup();
});

describe("many requests in flight on one connection, replies matched in order", () => {
  it("answers 300 concurrent acquires, then 300 concurrent inspects, over a single connection, each with its own reply", async () => {
    let connects = 0;
    client.on("connect", () => connects++);
    const names = Array.from({ length: 300 }, (_, i) => `pipelined-${i}`);
    const results = await Promise.all(names.map((name) => client.acquire(name, { ttlMs: 60_000, owner: client.owner })));
    const tokens = results.map((result) => (result.status === "acquired" ? result.fencingToken : -1n));
    expect(new Set(tokens).size).toBe(names.length);
    expect(tokens.every((token) => token > 0n)).toBe(true);
    const inspected = await Promise.all(names.map((name) => client.inspect(name)));
    inspected.forEach((result, i) => expect(result).toEqual({ status: "heldByYou", fencingToken: tokens[i], expiresAt: expect.any(BigInt) }));
    expect(connects).toBe(1);
  });

  it("keeps the order of requests issued together on one lock", async () => {
    const other = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`] });
    try {
      const [acquired, seen, refused, released, after] = await Promise.all([
        // The client's owner id, which its inspect and release use too.
        client.acquire("ordered", { ttlMs: 60_000, owner: client.owner }),
        client.inspect("ordered"),
        other.acquire("ordered", { ttlMs: 60_000 }),
        client.release("ordered"),
        client.inspect("ordered"),
      ]);
      expect(acquired.status).toBe("acquired");
      expect(seen.status).toBe("heldByYou");
      // `other` has its own connection, so its place in the server's order is not fixed; only its answer's shape is.
      expect(["held", "acquired"]).toContain(refused.status);
      expect(released).toMatchObject({ status: "released", fencingToken: acquired.status === "acquired" ? acquired.fencingToken : 0n });
      expect(["free", "heldByOther"]).toContain(after.status);
    } finally {
      other.close();
    }
  });
});
