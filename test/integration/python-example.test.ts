import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { lockIdFromName, Status } from "../../src/protocol/index.js";
import { startMetricsServer } from "../../src/server/metrics.js";
import { useLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire } from "../support/frames.js";
import { splitAnswers } from "../support/answers.js";

const EXAMPLE = fileURLToPath(new URL("../../examples/python/lock_example.py", import.meta.url));

const lockd = useLockd();

function runPython(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("python3", [EXAMPLE, ...args], { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("a raw-socket Python client written from protocol.md works against lockd", () => {
  it("acquires, inspects and releases a lock named by the SHA-256 convention", async () => {
    const { code, stdout, stderr } = await runPython(["127.0.0.1", String(lockd.port), "orders/42"]);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = stdout.trim().split("\n").map((line) => {
      const match = /^(\w+) status=(\d+) fencing_token=(\d+) expires_at=(\d+)$/.exec(line);
      if (match === null) throw new Error(`unexpected output line: ${line}`);
      return { name: match[1], status: Number(match[2]), token: BigInt(match[3]!), expiresAt: BigInt(match[4]!) };
    });
    const [acquired, inspected, released] = lines;
    expect(lines.map((l) => l.name)).toEqual(["ACQUIRE", "INSPECT", "RELEASE"]);
    expect(acquired!.status).toBe(Status.Ok);
    expect(acquired!.token).toBeGreaterThan(0n);
    expect(inspected).toEqual({ ...acquired, name: "INSPECT" });
    expect(released!.status).toBe(Status.Ok);
    expect(released!.token).toBe(acquired!.token);
    expect(released!.expiresAt).toBeLessThan(acquired!.expiresAt);
  });

  it("derives the same lock id from a name as every other client (the script sees our lease as held)", async () => {
    const lock = BigInt(`0x${lockIdFromName("reports/daily").toString("hex")}`);
    const client = await RawClient.open(lockd.port);
    client.write(acquire({ lock, owner: 1n }, 60_000n));
    const [ours] = splitAnswers(await client.read(17));
    expect(ours!.status).toBe(Status.Ok);
    const { code, stdout } = await runPython(["127.0.0.1", String(lockd.port), "reports/daily"]);
    expect(code).toBe(0);
    expect(stdout.split("\n")[0]).toBe(`ACQUIRE status=1 fencing_token=0 expires_at=${ours!.expiresAt}`);
    client.close();
  });

  it("says in one line, without a traceback, when nothing listens or the port is not a number", async () => {
    // Port 1, where the other tests' dead endpoints are: an ephemeral port freed here could be taken
    // meanwhile by a test running beside this one.
    const refused = await runPython(["127.0.0.1", "1"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^lock_example\.py: 127\.0\.0\.1:1: .*Connection refused\n$/);
    const notAPort = await runPython(["127.0.0.1", "notaport"]);
    expect(notAPort.code).toBe(1);
    expect(notAPort.stderr).toMatch(/^lock_example\.py: PORT must be a number from 1 to 65535, got 'notaport'\nUsage: /);
    const outOfRange = await runPython(["127.0.0.1", "99999"]);
    expect(outOfRange.code).toBe(1);
    expect(outOfRange.stderr).toMatch(/^lock_example\.py: PORT must be a number from 1 to 65535, got '99999'\n/);
  });

  it("stops at an answer no lockd gives (an HTTP server's, say), instead of printing it", async () => {
    const metrics = await startMetricsServer("127.0.0.1", 0, () => {
      throw new Error("nothing here scrapes");
    });
    try {
      const { code, stdout, stderr } = await runPython(["127.0.0.1", String(metrics.address.port)]);
      expect(code).toBe(1);
      expect(stdout).toBe("");
      expect(stderr).toBe(`lock_example.py: 127.0.0.1:${metrics.address.port} answered status 72: is it lockd's --listen address?\n`);
    } finally {
      await metrics.close();
    }
  });
});
