/**
 * The lock server over a log whose sync holds the event loop (as a sync on the loop does when the
 * disk stalls). Bytes a peer sends during the stall wait unread in the kernel, and the timeout sweep
 * runs before the loop reads again: it must not close a connection whose frame arrived meanwhile.
 * The peer is a child process, so it can send while this process's loop is held.
 */
import { spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import type { AppendResult, CommitLog } from "../../../src/log/commit-log.js";
import { Status } from "../../../src/protocol/index.js";
import { CommitPipeline } from "../../../src/server/commit-pipeline.js";
import { DEFAULT_CONFIG } from "../../../src/server/config.js";
import { LockServer } from "../../../src/server/lock-server.js";
import { silentLogger } from "../../../src/logging/logger.js";
import { splitAnswers } from "../../support/answers.js";
import { acquire } from "../../support/frames.js";
import { RawClient } from "../../support/raw-client.js";

const FRAME_TIMEOUT_MS = 500;
const STALL_MS = 2_000;

/** Durable at once, except that the append after `stallNext()` blocks the thread first. */
class StallingLog implements CommitLog {
  private stall = false;

  stallNext(): void {
    this.stall = true;
  }

  append(_records: Buffer, _lastIndex: number, done: (result: AppendResult) => void): void {
    if (this.stall) {
      this.stall = false;
      const until = performance.now() + STALL_MS;
      while (performance.now() < until); // the loop is held, as by an fdatasync the disk stalls
    }
    done({ ok: true });
  }

  async close(): Promise<void> {}
}

/** Sends the first 30 bytes of `frame`, says "half", sends the rest `restAfterMs` later, prints the answer. */
const PEER = `
const { connect } = require("node:net");
const [port, hex, restAfterMs] = process.argv.slice(1);
const frame = Buffer.from(hex, "hex");
let answer = Buffer.alloc(0);
const socket = connect({ port: Number(port), host: "127.0.0.1", noDelay: true }, () => {
  socket.write(frame.subarray(0, 30), () => {
    process.stdout.write("half\\n");
    setTimeout(() => socket.write(frame.subarray(30)), Number(restAfterMs));
  });
});
socket.on("data", (chunk) => {
  answer = Buffer.concat([answer, chunk]);
  if (answer.length >= 17) process.stdout.write("answer " + answer.subarray(0, 17).toString("hex") + "\\n", () => process.exit(0));
});
socket.on("close", () => { if (answer.length < 17) process.stdout.write("closed\\n"); process.exit(0); });
socket.on("error", () => {});
`;

let server: LockServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

describe("a sync that holds the event loop does not count against the clients' frame timeout", () => {
  it("answers a frame whose second half arrived while the loop was held past --frame-timeout", async () => {
    const log = new StallingLog();
    const pipeline = new CommitPipeline({
      stateMachine: new StateMachine({ dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 5 }),
      log,
      limits: { maxLocks: 1_000, maxDedupeEntries: 1_000, maxTtlMs: 3_600_000 },
      clock: { nowMs: () => 1_000_000 },
      logger: silentLogger,
      term: 1,
      nextIndex: 1,
    });
    server = await LockServer.listen({ ...DEFAULT_CONFIG, port: 0, frameTimeoutMs: FRAME_TIMEOUT_MS }, pipeline, silentLogger);
    server.serve();
    const port = server.address().port;

    const frame = acquire({ lock: 1n, owner: 1n }, 60_000n);
    const peer = spawn(process.execPath, ["-e", PEER, String(port), frame.toString("hex"), "800"], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    const lines = new Promise<string>((resolve) => {
      peer.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
      peer.once("exit", () => resolve(output));
    });
    while (!output.includes("half")) await new Promise((resolve) => setTimeout(resolve, 5));
    await new Promise((resolve) => setTimeout(resolve, 50)); // the server reads the half frame

    // Another client's request: its batch's sync holds the loop for longer than the frame timeout,
    // and the peer's second half arrives in the middle of it.
    log.stallNext();
    const other = await RawClient.open(port);
    other.write(acquire({ lock: 2n, owner: 2n }, 60_000n));
    expect(splitAnswers(await other.read(17))[0]!.status).toBe(Status.Ok);

    const result = await lines;
    expect(result).toMatch(/answer 00/); // status 0: granted, not closed
    other.close();
  });
});
