/**
 * lockd accepts through several descriptors of its listening socket, which its compaction launcher
 * hands back (--accepts-per-turn). Every one of them must be closed when the server closes, also one
 * that arrives while it closes: a descriptor left open keeps the port listening with nobody
 * accepting, and a restart on the same port would fail.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { DEFAULT_CONFIG } from "../../src/server/config.js";
import { LockServer } from "../../src/server/lock-server.js";
import { silentLogger } from "../../src/logging/logger.js";
import type { CopyListener } from "../../src/storage/compaction-launcher.js";
import type * as CompactorModule from "../../src/storage/compactor.js";
import { splitAnswers } from "../support/answers.js";
import { inspect } from "../support/frames.js";
import { immediatePipeline } from "../support/pipeline-harness.js";
import { RawClient } from "../support/raw-client.js";

const BUILT_COMPACTOR = resolve(fileURLToPath(new URL("../../dist/src/storage/compactor.js", import.meta.url)));


let launcher: CompactorModule.CompactionLauncher | null = null;
afterEach(async () => {
  await launcher?.close();
  launcher = null;
});

async function startLauncher(): Promise<CompactorModule.CompactionLauncher> {
  const { startCompactionLauncher } = (await import(BUILT_COMPACTOR)) as typeof CompactorModule;
  launcher = startCompactionLauncher({ idlePriority: false, logger: silentLogger });
  return launcher;
}

/** Whether anything accepts connections on `port` (a refused dial: nothing listens). */
function listening(port: number): Promise<boolean> {
  return new Promise((resolveDial) => {
    const socket = connect(port, "127.0.0.1", () => (socket.destroy(), resolveDial(true)));
    socket.on("error", () => resolveDial(false));
  });
}

describe("a server accepting through copies of its listening socket", () => {
  it("serves through them, and once closed nothing listens on its port", async () => {
    const copier = await startLauncher();
    const server = await LockServer.listen({ ...DEFAULT_CONFIG, port: 0 }, immediatePipeline(), silentLogger);
    server.serve();
    expect(server.acceptingDescriptors).toBe(1);
    expect(await server.acceptThroughCopies(8, copier.copyListener)).toEqual({ kind: "accepting", descriptors: 8, asked: 8 });
    expect(server.acceptingDescriptors).toBe(8);
    // Every descriptor listens with the queue length lockd asks for, not Node's default of 511.
    const somaxconn = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8"));
    expect(spawnSync("ss", ["-ltnH", `sport = :${server.address().port}`], { encoding: "utf8" }).stdout).toMatch(
      new RegExp(`^LISTEN\\s+\\d+\\s+${Math.min(4096, somaxconn)}\\s`),
    );
    const { port } = server.address();
    const clients = await Promise.all(Array.from({ length: 20 }, () => RawClient.open(port)));
    for (const [n, client] of clients.entries()) client.write(inspect({ lock: BigInt(n), owner: 1n }));
    for (const client of clients) expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.NotHeld);
    for (const client of clients) client.close();
    await server.close();
    expect(await listening(port)).toBe(false);
  });

  it("closes copies that arrive while it closes, and says so", async () => {
    const copier = await startLauncher();
    const server = await LockServer.listen({ ...DEFAULT_CONFIG, port: 0 }, immediatePipeline(), silentLogger);
    server.serve();
    const { port } = server.address();
    let closing: Promise<void> | null = null;
    const copiesAfterClose: CopyListener = (handle, count) =>
      copier.copyListener(handle, count).then((copies) => {
        closing = server.close();
        return copies;
      });
    expect(await server.acceptThroughCopies(4, copiesAfterClose)).toEqual({ kind: "closing" });
    await closing;
    expect(await listening(port)).toBe(false);
  });

  it("serves on through its one descriptor when no copies come, and says why", async () => {
    const server = await LockServer.listen({ ...DEFAULT_CONFIG, port: 0 }, immediatePipeline(), silentLogger);
    server.serve();
    await expect(server.acceptThroughCopies(4, () => Promise.reject(new Error("no launcher")))).rejects.toThrow("no launcher");
    const client = await RawClient.open(server.address().port);
    client.write(inspect({ lock: 1n, owner: 1n }));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.NotHeld);
    client.close();
    await server.close();
  });
});
