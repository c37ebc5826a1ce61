/**
 * A client that reads its answers slowly, or not at all, gets them queued as bytes, within
 * --max-queued-reply-bytes: while a write waits in the socket, later answers go into one backlog,
 * written whole once the socket has taken everything before it. One write per batch instead would
 * keep each batch's whole reply buffer, and the runtime's bookkeeping, alive for 17 bytes of answer.
 */
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { DEFAULT_CONFIG } from "../../../src/server/config.js";
import { Connection } from "../../../src/server/connection.js";
import { InflightBudget } from "../../../src/server/inflight-budget.js";
import { Status } from "../../../src/protocol/index.js";
import { PipelineHarness } from "../../support/pipeline-harness.js";
import { acquire } from "../../support/frames.js";
import { DeferredLog, FakeSocket } from "../../support/fake-commit-io.js";

const SM_CONFIG = { hashSeed: 7, dedupeWindowMs: 60_000, expiredRetentionMs: 60_000 };
const MAX_QUEUED = 1024;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function connectionOverBackedUpSocket() {
  const log = new DeferredLog();
  const pipeline = new PipelineHarness(new StateMachine(SM_CONFIG), log).pipeline;
  const socket = new FakeSocket();
  socket.backlog = true; // the client reads nothing until the test drains the socket
  const config = { ...DEFAULT_CONFIG, maxQueuedReplyBytes: MAX_QUEUED };
  const connection = new Connection(socket as unknown as Socket, Buffer.alloc(0), pipeline, config, new InflightBudget(config.maxInflightTotal), () => 0);
  return { log, socket, connection };
}

/**
 * Sends up to `count` grants, one per read and one batch each, as a client trickling requests would,
 * while the server reads them; returns how many were sent.
 */
async function trickle(log: DeferredLog, socket: FakeSocket, firstLock: number, count: number): Promise<number> {
  let sent = 0;
  for (let n = 0; n < count; n++) {
    if (!socket.paused) {
      socket.emit("data", acquire({ lock: BigInt(firstLock + n), owner: 1n }, 60_000n));
      sent++;
    }
    await turn();
    while (log.pending.length > 0) log.completeOldest();
    await turn();
  }
  return sent;
}

describe("answers to a client that is not reading", () => {
  it("wait as bytes in one backlog, not as one socket write per batch, and stop reading at the limit", async () => {
    const { log, socket, connection } = connectionOverBackedUpSocket();

    await trickle(log, socket, 0, 200);

    // The first batch's write waits in the socket; every later answer joined the backlog.
    expect(socket.written.length).toBe(1);
    expect(socket.paused).toBe(true); // past the limit: its requests are no longer read
    expect(connection.queuedReplyBytes).toBeGreaterThan(MAX_QUEUED);
    expect(connection.queuedReplyBytes).toBeLessThanOrEqual(MAX_QUEUED + 2 * 17);
    expect(connection.idle).toBe(false);
  });

  it("go out whole and in order once the client reads, and reading resumes", async () => {
    const { log, socket, connection } = connectionOverBackedUpSocket();
    let sent = await trickle(log, socket, 0, 100);

    socket.drain(); // the first write completes: the backlog goes out as one write
    expect(socket.written.length).toBe(2);
    socket.drain();
    expect(connection.queuedReplyBytes).toBe(0);
    expect(socket.paused).toBe(false);
    sent += await trickle(log, socket, 1000, 5);
    socket.drain();
    socket.drain();

    const answers = socket.answers();
    expect(answers.length).toBe(sent);
    expect(answers.every((answer) => answer.status === Status.Ok)).toBe(true);
    expect(answers.map((answer) => answer.fencingToken)).toEqual(answers.map((_, n) => BigInt(n + 1)));
  });
});
