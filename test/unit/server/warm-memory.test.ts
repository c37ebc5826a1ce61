/**
 * WarmMemory hands the tables buffers whose pages a worker thread wrote first. It changes where page
 * faults happen, never what the state machine answers: these tests check the stock it keeps, that
 * what it hands out is zeroed memory of the size asked, that a failing worker leaves it working, and
 * that a state machine on it answers exactly as one on fresh memory.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { FRESH_MEMORY, type TableMemory } from "../../../src/core/table-memory.js";
import type { Logger } from "../../../src/logging/logger.js";
import { WarmMemory } from "../../../src/server/warm-memory.js";
import { Command } from "../../../src/protocol/wire.js";
import { seededRandom } from "../../support/seeded-random.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();

/** The built worker: worker threads run JavaScript, and `npm test` builds dist/ first. */
const BUILT_WORKER = new URL("../../../dist/src/server/page-writer-worker.js", import.meta.url);

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info: () => {}, warn: (message: string) => void warnings.push(message), error: () => {} };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}

const opened: WarmMemory[] = [];
function warmMemory(logger: Logger = recordingLogger(), script: URL = BUILT_WORKER): WarmMemory {
  const memory = new WarmMemory(logger, script);
  opened.push(memory);
  return memory;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((memory) => memory.close()));
});

describe("WarmMemory", () => {
  it("the first take of a size is a fresh buffer; two written ones of that size are then kept in stock", async () => {
    const memory = warmMemory();
    const first = memory.take(65536);
    expect(first.byteLength).toBe(65536);
    expect(memory.stocked(65536)).toBe(0);
    await until(() => memory.stocked(65536) === 2);
    const second = memory.take(65536);
    expect(second).toBeInstanceOf(SharedArrayBuffer);
    expect(second.byteLength).toBe(65536);
    expect(new Uint8Array(second).every((byte) => byte === 0)).toBe(true);
    // The stock is refilled to two, and no further.
    await until(() => memory.stocked(65536) === 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(memory.stocked(65536)).toBe(2);
  });

  it("sizes are stocked separately, and every buffer is a distinct piece of memory", async () => {
    const memory = warmMemory();
    memory.take(4096);
    memory.take(8192);
    await until(() => memory.stocked(4096) === 2 && memory.stocked(8192) === 2);
    const a = memory.take(4096);
    const b = memory.take(4096);
    new Uint8Array(a)[0] = 1;
    expect(new Uint8Array(b)[0]).toBe(0);
    expect(memory.stocked(8192)).toBe(2);
  });

  it("an expected one-off size is prepared once and not restocked after it is taken", async () => {
    const memory = warmMemory();
    memory.expect(1 << 20);
    await until(() => memory.stocked(1 << 20) === 1);
    const table = memory.takeOnce(1 << 20);
    expect(table.byteLength).toBe(1 << 20);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(memory.stocked(1 << 20)).toBe(0);
  });

  it("a size taken once without being expected is not prepared, before or after", async () => {
    const memory = warmMemory();
    expect(memory.takeOnce(1 << 16).byteLength).toBe(1 << 16);
    memory.take(4096); // a recurring size, so that something is known to have come back meanwhile
    await until(() => memory.stocked(4096) === 2);
    expect(memory.stocked(1 << 16)).toBe(0);
  });

  it("a one-off taken before it was written is let go when it arrives, not kept", async () => {
    const memory = warmMemory();
    const size = 64 << 20; // 16k pages: still being written when it is taken
    memory.expect(size);
    expect(memory.takeOnce(size).byteLength).toBe(size);
    memory.take(4096); // sent after it, so back after it
    await until(() => memory.stocked(4096) === 2);
    expect(memory.stocked(size)).toBe(0);
  });

  it("hands over written buffers during a synchronous run, with no event-loop turn (as in recovery)", () => {
    const memory = warmMemory();
    memory.take(4096);
    const started = performance.now();
    // Busy, like a replay: nothing here lets the event loop deliver a message.
    while (memory.stocked(4096) < 2 && performance.now() - started < 5000);
    expect(memory.stocked(4096)).toBe(2);
  });

  it("if the worker fails, it says so once and hands out fresh buffers from then on", async () => {
    const failing = join(tempDir(), "failing-worker.mjs");
    writeFileSync(failing, 'import { parentPort } from "node:worker_threads"; parentPort.on("message", () => { throw new Error("no pages today"); });\n');
    const logger = recordingLogger();
    const memory = warmMemory(logger, pathToFileURL(failing));
    memory.take(4096);
    await until(() => logger.warnings.length === 1);
    expect(logger.warnings[0]).toContain("no pages today");
    for (let i = 0; i < 3; i++) expect(memory.take(4096).byteLength).toBe(4096);
    expect(memory.stocked(4096)).toBe(0);
  });
});

describe("a state machine on warm memory answers exactly as one on fresh memory", () => {
  it("same answers over 300k commands that grow, prune and double the request-id table", async () => {
    const random = seededRandom("warm-memory equivalence");
    const machines = [FRESH_MEMORY, warmMemory()].map(
      (memory: TableMemory) => new StateMachine({ dedupeWindowMs: 20_000, expiredRetentionMs: 1_000, hashSeed: 7, memory }),
    );
    const command = Buffer.alloc(57);
    const answers = [Buffer.alloc(17), Buffer.alloc(17)];
    let nowMs = 1;
    for (let i = 0; i < 300_000; i++) {
      if (i % 1000 === 0) await new Promise((resolve) => setImmediate(resolve)); // lets the stock arrive
      nowMs += random.next() < 0.01 ? 1 + Math.floor(random.next() * 20) : 0;
      command[0] = [Command.Acquire, Command.Renew, Command.Release][Math.floor(random.next() * 3)]!;
      // Mostly new request ids, some retries of recent ones; a small lock and owner space so commands collide.
      command.writeUInt32BE(random.next() < 0.9 ? i : Math.max(0, i - Math.floor(random.next() * 50)), 13);
      command.writeUInt32BE(Math.floor(random.next() * 500), 29);
      command.writeUInt32BE(Math.floor(random.next() * 4), 45);
      command.writeBigUInt64BE(BigInt(1 + Math.floor(random.next() * 3000)), 49);
      machines.forEach((machine, m) => machine.execute(command, 0, nowMs, answers[m]!, 0, null));
      if (!answers[0]!.equals(answers[1]!)) expect({ i, warm: answers[1]!.toString("hex") }).toEqual({ i, warm: answers[0]!.toString("hex") });
    }
    expect(machines[1]!.dedupeEntryCount).toBe(machines[0]!.dedupeEntryCount);
    expect(machines[1]!.nextFencingToken).toBe(machines[0]!.nextFencingToken);
    expect(machines[0]!.dedupeEntryCount).toBeGreaterThan(100_000);
  });
});
