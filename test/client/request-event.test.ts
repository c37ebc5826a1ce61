import { describe, expect, it } from "vitest";
import { BatonClient, type RequestEvent } from "../../client/index.js";
import { Command } from "../../src/protocol/index.js";
import { ScriptedServer, ok, reply } from "./support/scripted-server.js";

describe("the request event: each logical request, before its first attempt, with the ids it carries", () => {
  it("names the command, the lock, the owner and the request id the server then sees, once for all the retries", async () => {
    // The first attempt is answered 6 (unavailable): the retry carries the same request id.
    const server = await ScriptedServer.start((request, index) => (index === 0 ? reply(6) : request.command === Command.Acquire ? ok(1n, 1n << 40n) : reply(2)));
    const client = new BatonClient({ endpoints: [server.endpoint], backoff: { baseMs: 1, maxMs: 5 } });
    const events: RequestEvent[] = [];
    client.on("request", (event) => events.push(event));
    try {
      expect((await client.acquire("jobs", { ttlMs: 60_000 })).status).toBe("acquired");
      expect((await client.inspect("jobs")).status).toBe("free");
      expect(server.seen).toHaveLength(3);
      const [first, retry, inspect] = server.seen;
      expect(retry!.requestId).toBe(first!.requestId);
      expect(events).toEqual([
        { command: "ACQUIRE", requestId: first!.requestId, lock: "jobs", owner: first!.ownerId },
        { command: "INSPECT", requestId: inspect!.requestId, lock: "jobs", owner: client.owner },
      ]);
    } finally {
      client.close();
      await server.close();
    }
  });
});
