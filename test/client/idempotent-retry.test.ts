import { describe, expect, it } from "vitest";
import { BatonClient } from "../../client/index.js";
import { useLockd } from "../support/lockd-process.js";
import { ReplyDroppingProxy } from "./support/reply-dropping-proxy.js";

const lockd = useLockd({ args: ["--fsync", "never"] });

describe("a retry reuses the request id, so the server replays its original answer", () => {
  it("gets the grant whose reply was lost, instead of 'held' by its own lease", async () => {
    const proxy = await ReplyDroppingProxy.start(lockd.port);
    const client = new BatonClient({ endpoints: [proxy.endpoint], backoff: { baseMs: 1, maxMs: 5 } });
    try {
      const result = await client.acquire("replayed", { ttlMs: 60_000 });
      // The first ACQUIRE was granted (its reply dropped by the proxy); the retry, same request id,
      // was answered with that very grant. A new request would have been refused: the lock is held.
      expect(proxy.dropped).toMatchObject({ status: 0 });
      expect(proxy.requestIds).toHaveLength(2);
      expect(proxy.requestIds[1]).toBe(proxy.requestIds[0]);
      expect(result).toMatchObject({ status: "acquired", fencingToken: proxy.dropped!.fencingToken, expiresAt: proxy.dropped!.expiresAt });
      const direct = new BatonClient({ endpoints: [`127.0.0.1:${lockd.port}`], owner: client.owner });
      expect((await direct.acquire("replayed", { ttlMs: 60_000 })).status).toBe("held");
      direct.close();
    } finally {
      client.close();
      await proxy.close();
    }
  });
});
