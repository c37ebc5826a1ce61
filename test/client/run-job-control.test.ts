/**
 * lockctl run's job control where the order of events matters, with the command faked (spawn
 * mocked), the signals lockctl sends recorded instead of sent, and the client's clock set by the test.
 */
import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { BatonClient as Client } from "../../client/index.js";
import type { ScriptedServer as Server } from "./support/scripted-server.js";

const command = Object.assign(new EventEmitter(), { pid: 424_242 });
vi.mock("node:child_process", async (original) => ({ ...(await original<typeof import("node:child_process")>()), spawn: vi.fn(() => command) }));

const { BatonClient } = await import("../../client/index.js");
const { runLocked } = await import("../../client/cli/run.js");
const { LockId } = await import("../../client/ids.js");
const { ScriptedServer, ok } = await import("./support/scripted-server.js");

let server: Server | undefined;
let client: Client | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  command.removeAllListeners();
  client?.close();
  await server?.close();
});

/** `lockctl run` of the fake command under a 60 s lease; the signals it sends are recorded. */
async function runFakeCommand(): Promise<{ clock: { nowMs: number }; sent: string[]; status: Promise<number> }> {
  server = await ScriptedServer.start(() => ok(12n, 99_999n));
  const clock = { nowMs: 0 };
  client = new BatonClient({ endpoints: [server.endpoint], clock: () => clock.nowMs });
  const sent: string[] = [];
  vi.spyOn(process, "kill").mockImplementation((pid: number, signal?: string | number) => {
    sent.push(`${pid === process.pid ? "lockctl" : pid} ${String(signal)}`);
    return true;
  });
  vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  const status = runLocked(client, { lock: LockId.fromName("job-control"), lockArgument: { name: "job-control", hexId: false, endpoints: "127.0.0.1:5625" }, ttlMs: 60_000, waitMs: 0, killAfterMs: 10_000, command: "x", args: [] });
  while (command.listenerCount("exit") === 0) await new Promise((resolve) => setImmediate(resolve));
  return { clock, sent, status };
}

/** Ctrl-Z, then fg at `continuedAtMs`: the command's exit, queued before the stop, is handled before the SIGCONT and the timers. */
async function stopExitAndContinue(clock: { nowMs: number }, continuedAtMs: number): Promise<void> {
  process.emit("SIGTSTP", "SIGTSTP"); // the group is stopped, then lockctl
  clock.nowMs = continuedAtMs;
  command.emit("exit", 0, null);
  for (let n = 0; n < 10; n++) await Promise.resolve();
  process.emit("SIGCONT", "SIGCONT");
}

describe("lockctl run: Ctrl-Z handled just before the command's exit", () => {
  it("continued after the lease ran out: what the command left in its group is killed, not continued, and lockctl exits 76", async () => {
    const { clock, sent, status } = await runFakeCommand();
    await stopExitAndContinue(clock, 120_000); // stopped past the lease's local deadline
    expect(await status).toBe(76);
    expect(sent).toEqual([`-${command.pid} SIGSTOP`, "lockctl SIGSTOP", `-${command.pid} SIGKILL`]);
  });

  it("continued while the lease still holds: what the command left in its group is continued, and the lease released", async () => {
    const { clock, sent, status } = await runFakeCommand();
    await stopExitAndContinue(clock, 1_000); // well within the lease
    expect(await status).toBe(0);
    expect(sent).toEqual([`-${command.pid} SIGSTOP`, "lockctl SIGSTOP", `-${command.pid} SIGCONT`]);
    expect(server!.seen.map((request) => request.command)).toContain(3); // RELEASE
  });
});
