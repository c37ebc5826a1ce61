/**
 * lockd listens before it logs what a start changes (a fencing bump, new retention settings), so
 * that a port it cannot have stops the start with nothing changed. A client that connects in
 * between must not have its requests executed before those changes, nor later after it reset the
 * connection: its connection is closed unread, as one over the limit is.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Status } from "../../../src/protocol/index.js";
import { DEFAULT_CONFIG } from "../../../src/server/config.js";
import { LockServer } from "../../../src/server/lock-server.js";
import { silentLogger } from "../../../src/logging/logger.js";
import { splitAnswers } from "../../support/answers.js";
import { acquire } from "../../support/frames.js";
import { immediatePipeline } from "../../support/pipeline-harness.js";
import { RawClient } from "../../support/raw-client.js";


const clients: RawClient[] = [];
let server: LockServer | null = null;
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = null;
});

async function openClient(port: number): Promise<RawClient> {
  const client = await RawClient.open(port);
  clients.push(client);
  return client;
}

describe("a connection accepted before the server serves", () => {
  it("is closed without its request being read, and a connection after serve() is answered", async () => {
    const pipeline = immediatePipeline();
    server = await LockServer.listen({ ...DEFAULT_CONFIG, port: 0 }, pipeline, silentLogger);
    const early = await openClient(server.address().port);
    early.write(acquire({ lock: 1n, owner: 1n }, 60_000n));
    await early.closed;
    expect(pipeline.counters.requests).toBe(0);
    expect(pipeline.lastIndex).toBe(0);

    server.serve();
    const later = await openClient(server.address().port);
    later.write(acquire({ lock: 1n, owner: 1n }, 60_000n));
    expect(splitAnswers(await later.read(17))[0]!.status).toBe(Status.Ok);
    expect(pipeline.counters.requests).toBe(1);
  });
});
