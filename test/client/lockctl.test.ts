import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonClient } from "../../client/index.js";
import { Command } from "../../src/protocol/index.js";
import { spawnLockd, type LockdProcess } from "../support/lockd-process.js";
import { startMetricsServer } from "../../src/server/metrics.js";
import { ScriptedServer, ok, reply } from "./support/scripted-server.js";

const LOCKCTL = resolve(fileURLToPath(new URL("../../dist/client/cli/lockctl.js", import.meta.url)));

let lockd: LockdProcess;
let endpoint: string;
let workDir: string;
beforeAll(async () => {
  lockd = await spawnLockd({ args: ["--fsync", "never"] });
  endpoint = `127.0.0.1:${lockd.port}`;
  workDir = mkdtempSync(join(tmpdir(), "baton-lockctl-"));
});
afterAll(async () => {
  await lockd.stop();
  lockd.cleanup();
  rmSync(workDir, { recursive: true, force: true });
});

interface Finished {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment lockctl runs in here: this file's lockd, no owner of the caller's, then `overrides`. */
function lockctlEnv(overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, BATON_ENDPOINTS: endpoint };
  delete env.BATON_OWNER;
  return Object.assign(env, overrides);
}

/** Collects what `child` prints on whichever of stdout and stderr are pipes; `onStdout` sees stdout so far at each chunk. */
function capture(child: ChildProcess, onStdout?: (text: string) => void): { stderr(): string; exited: Promise<Finished> } {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (text: string) => {
    stdout += text;
    onStdout?.(stdout);
  });
  child.stderr?.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const exited = new Promise<Finished>((resolveExit) => child.once("exit", (code) => resolveExit({ code, stdout, stderr })));
  return { stderr: () => stderr, exited };
}

function lockctl(args: readonly string[], onStdout?: (text: string) => void, envOverrides: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return capture(spawn(process.execPath, [LOCKCTL, ...args], { env: lockctlEnv(envOverrides), stdio: ["ignore", "pipe", "pipe"] }), onStdout).exited;
}

/** lockctl started through /bin/sh, so that `shell` (a ulimit, a redirection) applies to it alone; exec keeps it lockctl. */
function lockctlThroughShell(shell: string, args: readonly string[], stdio: "pipe" | "ignore" | number = "pipe"): Promise<Finished> {
  return capture(spawn("/bin/sh", ["-c", `${shell} && exec "$0" "$@"`, process.execPath, LOCKCTL, ...args], { env: lockctlEnv(), stdio: ["ignore", stdio, "pipe"] })).exited;
}

/** lockctl with stdout and stderr as given: a descriptor (/dev/full, say), or a pipe, which `onSpawn` may close at once. */
function lockctlWritingTo(args: readonly string[], out: { stdout?: number; stderr?: number; onSpawn?: (child: ChildProcess) => void }): Promise<Finished> {
  const child = spawn(process.execPath, [LOCKCTL, ...args], { env: lockctlEnv(), stdio: ["ignore", out.stdout ?? "pipe", out.stderr ?? "pipe"] });
  out.onSpawn?.(child);
  return capture(child).exited;
}

/** Runs `body` with /dev/full open for writing: every write to it fails with ENOSPC. */
async function withFullDevice<T>(body: (full: number) => Promise<T>): Promise<T> {
  const full = openSync("/dev/full", "w");
  try {
    return await body(full);
  } finally {
    closeSync(full);
  }
}

function json(finished: Finished): Record<string, unknown> {
  return JSON.parse(finished.stdout) as Record<string, unknown>;
}

/** A lockctl left running: its process, what it has printed so far, and its exit code. */
interface RunningLockctl {
  readonly process: ChildProcess;
  stdout(): string;
  readonly exited: Promise<number | null>;
}

function startLockctl(args: readonly string[]): RunningLockctl {
  const child = spawn(process.execPath, [LOCKCTL, ...args], { env: lockctlEnv(), stdio: ["ignore", "pipe", "ignore"] });
  let stdout = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (code) => resolveExit(code)));
  return { process: child, stdout: () => stdout, exited };
}

interface TickingRun extends RunningLockctl {
  /** The command's pid, once it has written its first tick. */
  readonly commandPid: Promise<number>;
}

/** `lockctl run NAME --ttl TTL` of a command that prints its pid, then appends a byte to `ticks` every 10 ms. */
function startTicking(name: string, ttlMs: string, ticks: string): TickingRun {
  writeFileSync(ticks, "");
  const command = `console.log("pid " + process.pid); setInterval(() => require("node:fs").appendFileSync(${JSON.stringify(ticks)}, "x"), 10)`;
  const run = startLockctl(["run", name, "--ttl", ttlMs, "--", process.execPath, "-e", command]);
  const pidLine = /pid (\d+)\n/;
  const commandPid = waitFor(() => pidLine.test(run.stdout())).then(() => Number(pidLine.exec(run.stdout())![1]));
  return { ...run, commandPid };
}

/** A process's scheduler state from /proc (R running, S sleeping, T stopped), or null once it is gone. */
function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return null;
  }
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolveWait) => setTimeout(resolveWait, 5));
}

const waitForState = (pid: number, ...states: string[]) => waitFor(() => states.includes(processState(pid) ?? ""));
const waitForGone = (pid: number) => waitFor(() => processState(pid) === null || processState(pid) === "Z");

describe("lockctl run: 8 concurrent processes on one lock never overlap", () => {
  it("counts to 8 with a non-atomic read-increment-write, and sees strictly increasing tokens", async () => {
    const counter = join(workDir, "counter");
    const tokens = join(workDir, "tokens");
    writeFileSync(counter, "0");
    writeFileSync(tokens, "");
    // Read, pause, write: without the lock, overlapping runs lose increments.
    const increment = `
      const fs = require("node:fs");
      const [counter, tokens] = process.argv.slice(1);
      const value = Number(fs.readFileSync(counter, "utf8"));
      setTimeout(() => {
        fs.writeFileSync(counter, String(value + 1));
        fs.appendFileSync(tokens, process.env.BATON_FENCING_TOKEN + "\\n");
      }, 30);`;
    const runs = await Promise.all(
      Array.from({ length: 8 }, () => lockctl(["run", "counter", "--ttl", "5000", "--wait", "20000", "--", process.execPath, "-e", increment, counter, tokens])),
    );
    for (const run of runs) expect(run).toMatchObject({ code: 0 });
    expect(readFileSync(counter, "utf8")).toBe("8");
    const seen = readFileSync(tokens, "utf8").trim().split("\n").map(BigInt);
    expect(seen).toHaveLength(8);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
  });
});

describe("lockctl run: the command's exit code, and its own codes", () => {
  it("exits with the command's code and releases the lock", async () => {
    const run = await lockctl(["run", "exit-code", "--", process.execPath, "-e", "process.exit(3)"]);
    expect(run.code).toBe(3);
    expect((await lockctl(["inspect", "exit-code"])).code).toBe(2);
  });

  it("exits 75 when the lock stays held for all of --wait", async () => {
    const holder = new BatonClient({ endpoints: [endpoint] });
    try {
      expect((await holder.acquire("busy", { ttlMs: 60_000 })).status).toBe("acquired");
      const run = await lockctl(["run", "busy", "--wait", "100", "--", process.execPath, "-e", "process.exit(0)"]);
      expect(run.code).toBe(75);
    } finally {
      holder.close();
    }
  });

  it("sends the command SIGTERM and exits 76 when the lease is lost", async () => {
    const owner = "5eed0000000000000000000000000001";
    const thief = new BatonClient({ endpoints: [endpoint], owner });
    try {
      let started!: () => void;
      const ready = new Promise<void>((resolveReady) => (started = resolveReady));
      const run = lockctl(["run", "lost", "--ttl", "900", "--owner", owner, "--", process.execPath, "-e", "console.log('started'); setInterval(() => {}, 1000)"], (out) => {
        if (out.includes("started")) started();
      });
      await ready;
      expect((await thief.release("lost")).status).toBe("released"); // the next renewal is refused
      const finished = await run;
      expect(finished.code).toBe(76);
      expect(finished.stderr).toContain("lost");
    } finally {
      thief.close();
    }
  });

  it.each(["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"] as const)("passes %s on to the command, then releases and exits with the command's code", async (signal) => {
    // The command answers the signal with an exit code of its own, so the code shows it arrived.
    const command = `process.on("${signal}", () => process.exit(42)); console.log("started"); setInterval(() => {}, 1000)`;
    const run = startLockctl(["run", `forward-${signal}`, "--ttl", "5000", "--", process.execPath, "-e", command]);
    await waitFor(() => run.stdout().includes("started"));
    run.process.kill(signal);
    expect(await run.exited).toBe(42);
    expect((await lockctl(["inspect", `forward-${signal}`])).code).toBe(2); // released
  });

  it("on SIGTSTP (a terminal's Ctrl-Z) stops the command along with itself, and continues it with itself while the lease holds", async () => {
    const ticks = join(workDir, "tstp-held-ticks");
    const run = startTicking("tstp-held", "60000", ticks);
    const commandPid = await run.commandPid;
    run.process.kill("SIGTSTP");
    await waitForState(run.process.pid!, "T");
    await waitForState(commandPid, "T");
    run.process.kill("SIGCONT");
    await waitForState(commandPid, "S", "R");
    const resumedAt = readFileSync(ticks, "utf8").length;
    await waitFor(() => readFileSync(ticks, "utf8").length > resumedAt); // ticking again
    run.process.kill("SIGTERM");
    expect(await run.exited).toBe(128 + 15);
    expect((await lockctl(["inspect", "tstp-held"])).code).toBe(2); // released
  });

  it("a lease lost while stopped: on SIGCONT the command gets SIGTERM before it runs again, and lockctl exits 76", async () => {
    const ticks = join(workDir, "tstp-lost-ticks");
    const run = startTicking("tstp-lost", "600", ticks);
    const commandPid = await run.commandPid;
    run.process.kill("SIGTSTP");
    await waitForState(commandPid, "T");
    const thief = new BatonClient({ endpoints: [endpoint] });
    try {
      // The stopped lockctl renews nothing: the lease runs out on the server and another owner gets the lock.
      const taken = await thief.acquire("tstp-lost", { ttlMs: 60_000, waitMs: 10_000 });
      expect(taken.status).toBe("acquired");
      const whenTaken = readFileSync(ticks, "utf8").length;
      run.process.kill("SIGCONT");
      expect(await run.exited).toBe(76);
      await waitForGone(commandPid);
      expect(readFileSync(ticks, "utf8").length).toBe(whenTaken);
    } finally {
      thief.close();
    }
  });

  it("a lease lost before a Ctrl-Z: when continued, the command goes on with its SIGTERM handler", async () => {
    const owner = "5eed0000000000000000000000000003";
    const thief = new BatonClient({ endpoints: [endpoint], owner });
    // The command takes its time over SIGTERM: it says so, and exits 300 ms later.
    const command = `process.on("SIGTERM", () => { console.log("term " + process.pid); setTimeout(() => { console.log("done"); process.exit(0); }, 300); }); console.log("started"); setInterval(() => {}, 1000)`;
    const run = startLockctl(["run", "lost-then-stopped", "--ttl", "900", "--kill-after", "60000", "--owner", owner, "--", process.execPath, "-e", command]);
    try {
      await waitFor(() => run.stdout().includes("started"));
      expect((await thief.release("lost-then-stopped")).status).toBe("released"); // the next renewal is refused
      await waitFor(() => /term \d+/.test(run.stdout()));
      const commandPid = Number(/term (\d+)/.exec(run.stdout())![1]);
      run.process.kill("SIGTSTP");
      await waitForState(commandPid, "T");
      run.process.kill("SIGCONT");
      // Without a SIGCONT of its own the command would stay stopped until --kill-after (a minute).
      expect(await run.exited).toBe(76);
      expect(run.stdout()).toContain("done");
    } finally {
      thief.close();
    }
  });

  it("after a lost lease, stops every process the command started, not only the command itself", async () => {
    const owner = "5eed0000000000000000000000000002";
    const thief = new BatonClient({ endpoints: [endpoint], owner });
    const ticks = join(workDir, "grandchild-ticks");
    writeFileSync(ticks, "");
    // A shell that starts a background writer ignoring SIGTERM, then waits: the writer is the
    // command's child, not lockctl's.
    const writer = `process.on("SIGTERM", () => {}); setInterval(() => require("node:fs").appendFileSync(process.argv[1], "x"), 20)`;
    const script = `"$0" -e '${writer}' "$1" & echo started; wait`;
    try {
      let started!: () => void;
      const ready = new Promise<void>((resolveReady) => (started = resolveReady));
      const run = lockctl(["run", "lost-group", "--ttl", "900", "--owner", owner, "--", "/bin/sh", "-c", script, process.execPath, ticks], (out) => {
        if (out.includes("started")) started();
      });
      await ready;
      await new Promise((resolveWait) => setTimeout(resolveWait, 200)); // the writer is writing
      expect((await thief.release("lost-group")).status).toBe("released"); // the next renewal is refused
      const finished = await run;
      expect(finished.code).toBe(76);
      const atExit = readFileSync(ticks, "utf8").length;
      expect(atExit).toBeGreaterThan(0);
      await new Promise((resolveWait) => setTimeout(resolveWait, 300));
      expect(readFileSync(ticks, "utf8").length).toBe(atExit);
    } finally {
      thief.close();
    }
  });

  it("after a lost lease, exits 76 without sending a release, which could end a newer lease of the same owner", async () => {
    // Grants, then never answers again: renewals time out until the local deadline passes.
    const unresponsive = await ScriptedServer.start((request) => (request.command === Command.Acquire ? ok(1n, 1n << 50n) : "silence"));
    try {
      let started!: () => void;
      const ready = new Promise<void>((resolveReady) => (started = resolveReady));
      const run = lockctl(
        ["run", "unreachable", "--ttl", "600", "--endpoints", unresponsive.endpoint, "--", process.execPath, "-e", "console.log('started'); setInterval(() => {}, 1000)"],
        (out) => {
          if (out.includes("started")) started();
        },
      );
      await ready;
      const finished = await run;
      expect(finished.code).toBe(76);
      expect(finished.stderr).toContain("deadline");
      expect(unresponsive.seen.filter((request) => request.command === Command.Release)).toHaveLength(0);
    } finally {
      await unresponsive.close();
    }
  }, 20_000);

  it("keeps the command's exit code but says so when the release at the end was not done", async () => {
    // Grants and renews, but answers the RELEASE notHeld: the lock was not released by this run.
    const server = await ScriptedServer.start((request) =>
      request.command === Command.Release ? { status: 2, fencingToken: 0n, expiresAt: 0n } : ok(1n, 1n << 50n),
    );
    try {
      const run = await lockctl(["run", "not-released", "--endpoints", server.endpoint, "--", process.execPath, "-e", "process.exit(3)"]);
      expect(run.code).toBe(3);
      expect(run.stderr).toContain("release of not-released not done (the server answered notHeld)");
    } finally {
      await server.close();
    }
  });

  it("exits 76 without starting the command when the grant arrives past its lease's local deadline", async () => {
    // A 2 ms ttl less the default 2 ms margin: the deadline is the send itself, so the grant is late.
    const marker = join(workDir, "started-too-late");
    const run = await lockctl(["run", "too-short", "--ttl", "2", "--", process.execPath, "-e", `require("fs").writeFileSync(${JSON.stringify(marker)}, "")`]);
    expect(run.code).toBe(76);
    expect(run.stderr).toContain("before the command started");
    expect(existsSync(marker)).toBe(false);
  });

  it("passes the lock name, fencing token and owner in the environment", async () => {
    const run = await lockctl(["run", "env", "--", process.execPath, "-e", "console.log(JSON.stringify([process.env.BATON_LOCK, process.env.BATON_FENCING_TOKEN, process.env.BATON_OWNER]))"]);
    const [lock, token, owner] = JSON.parse(run.stdout) as string[];
    expect(lock).toBe("env");
    expect(BigInt(token!)).toBeGreaterThan(0n);
    expect(owner).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe("lockctl acquire, renew, release, inspect: the exit code is the answer's status", () => {
  it("acquire prints the owner id that renew and release then use", async () => {
    const acquired = await lockctl(["acquire", "cli", "--ttl", "60000", "--json"]);
    expect(acquired.code).toBe(0);
    const { owner, fencingToken, status } = json(acquired);
    expect(status).toBe("acquired");
    expect(owner).toMatch(/^[0-9a-f]{32}$/);

    expect((await lockctl(["acquire", "cli"])).code).toBe(1);
    expect((await lockctl(["inspect", "cli"])).code).toBe(1);
    const mine = await lockctl(["inspect", "cli", "--owner", owner as string, "--json"]);
    expect(mine.code).toBe(0);
    expect(json(mine)).toMatchObject({ status: "heldByYou", fencingToken });

    const renewed = await lockctl(["renew", "cli", "--owner", owner as string, "--ttl", "60000", "--json"]);
    expect(renewed.code).toBe(0);
    expect(json(renewed)).toMatchObject({ status: "renewed", fencingToken });
    expect((await lockctl(["release", "cli", "--owner", "abc"])).code).toBe(2);
    const released = await lockctl(["release", "cli", "--owner", owner as string, "--json"]);
    expect(released.code).toBe(0);
    // Named as the SDK names it: a release's time is when it was released, not an expiry.
    expect(json(released)).toMatchObject({ status: "released", fencingToken, releasedAt: expect.any(Number) });
    expect(json(released)).not.toHaveProperty("expiresAt");
    expect((await lockctl(["acquire", "cli", "--owner", owner as string])).code).toBe(0);
    const releasedLine = await lockctl(["release", "cli", "--owner", owner as string]);
    expect(releasedLine.stdout).toMatch(/^released cli token=\d+/);
    expect((await lockctl(["inspect", "cli"])).code).toBe(2);
  });

  it("takes times in milliseconds, or with a unit: --ttl 2m is 120000 ms", async () => {
    const expiry = async (lock: string, ttl: string) => {
      const acquired = json(await lockctl(["acquire", lock, "--ttl", ttl, "--json"]));
      expect(acquired.status).toBe("acquired");
      return acquired.expiresAt as number;
    };
    for (const [ttl, ms] of [["2m", 120_000], ["1h", 3_600_000], ["45s", 45_000], ["90000ms", 90_000]] as const) {
      // Logical time never goes back, so grants of ms before and after bracket this one's expiry
      // exactly when its ttl is ms.
      const before = await expiry(`ttl-unit-before-${ttl}`, String(ms));
      const withUnit = await expiry(`ttl-unit-${ttl}`, ttl);
      const after = await expiry(`ttl-unit-after-${ttl}`, String(ms));
      expect(withUnit).toBeGreaterThanOrEqual(before);
      expect(withUnit).toBeLessThanOrEqual(after);
    }
  });

  it("exits 76 for a grant that came after its lease's local deadline, printing its token and why", async () => {
    // A 2 ms ttl less the default 2 ms margin: the deadline is the send itself, so the grant is late.
    const asJson = await lockctl(["acquire", "late-grant", "--ttl", "2", "--json"]);
    expect(asJson.code).toBe(76);
    expect(json(asJson)).toMatchObject({ command: "acquire", status: "acquired", leaseLost: "deadline" });
    expect(json(asJson).fencingToken).toEqual(expect.any(Number));
    expect(asJson.stderr).toContain("came after its lease's local deadline (deadline); treat the lease as lost");
    const asLine = await lockctl(["acquire", "late-grant-2", "--ttl", "2"]);
    expect(asLine.code).toBe(76);
    expect(asLine.stdout).toMatch(/^acquired late-grant-2 token=\d+ expires=\S+ owner=[0-9a-f]{32} lease-lost=deadline\n$/);
  });

  it("exits 5 when this owner's lease ran out and nobody acquired since", async () => {
    const acquired = json(await lockctl(["acquire", "short", "--ttl", "1", "--json"]));
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    expect((await lockctl(["renew", "short", "--owner", acquired.owner as string])).code).toBe(5);
  });

  it("exits 64 on misuse: renew without --owner, a bad flag, a missing name", async () => {
    const noOwner = await lockctl(["renew", "cli"]);
    expect(noOwner.code).toBe(64);
    expect(noOwner.stderr).toContain("--owner");
    expect((await lockctl(["acquire", "cli", "--ttl", "soon"])).code).toBe(64);
    expect((await lockctl(["release"])).code).toBe(64);
    // Longer than one Node timer holds: it would fire at once, with no grace period at all.
    const tooLong = await lockctl(["run", "cli", "--kill-after", "3000000000", "--", "true"]);
    expect(tooLong.code).toBe(64);
    expect(tooLong.stderr).toContain("expected 0..2147483647 ms, got 3000000000");
    // Past 2^53 - 1 the number is too large, and the message gives both ends.
    const huge = await lockctl(["inspect", "cli", "--timeout", "99999999999999999999"]);
    expect(huge.code).toBe(64);
    expect(huge.stderr).toContain("expected 1..9007199254740991 ms, got 99999999999999999999");
    // With a unit, the range is still in milliseconds; a fraction or an unknown unit is no time.
    const hours = await lockctl(["run", "cli", "--kill-after", "600h", "--", "true"]);
    expect(hours.code).toBe(64);
    expect(hours.stderr).toContain("expected 0..2147483647 ms, got 600h");
    for (const ttl of ["1.5s", "30x", "s", "-1s", "30 s"]) {
      const bad = await lockctl(["acquire", "cli", "--ttl", ttl]);
      expect(bad.code).toBe(64);
      expect(bad.stderr).toContain(`expected whole milliseconds, or a whole number with a unit (500ms, 30s, 2m, 1h), got "${ttl}"`);
    }
  });

  it("reports a usage error as one line on stderr, like every other error, and nothing on stdout", async () => {
    const misuse = [["acquire", "cli", "--ttl", "0"], ["acquire"], ["no-such-command"], ["run", "cli", "--json", "--", "true"], ["renew", "cli"], ["release", "cli", "--owner", "not-hex"], ["acquire", "cli", "--dedupe-window", "0"], ["acquire", "cli", "--tll", "1000"], ["aquire", "cli"]];
    for (const args of misuse) {
      const finished = await lockctl(args);
      expect(finished.code).toBe(64);
      expect(finished.stdout).toBe("");
      expect(finished.stderr).toMatch(/^lockctl: [^\n]+ \(see --help\)\n$/);
    }
    const unknownHelp = await lockctl(["help", "bogus"]);
    expect(unknownHelp).toMatchObject({ code: 64, stdout: "", stderr: "lockctl: unknown command 'bogus' (see --help)\n" });
    // Commander's suggestion stays, on the same line.
    expect((await lockctl(["acquire", "cli", "--tll", "1000"])).stderr).toBe("lockctl: unknown option '--tll' (Did you mean --ttl?) (see --help)\n");
  });

  it("takes --endpoints before the command too, as etcdctl does; given after it as well, that one wins", async () => {
    const dead = { BATON_ENDPOINTS: "127.0.0.1:1" };
    const before = await lockctl(["--endpoints", endpoint, "inspect", "endpoints-before", "--attempts", "1"], undefined, dead);
    expect(before.code).toBe(2);
    expect(before.stdout).toBe("free endpoints-before\n");
    const both = await lockctl(["--endpoints", "127.0.0.1:1", "inspect", "endpoints-both", "--endpoints", endpoint, "--attempts", "1"], undefined, dead);
    expect(both.code).toBe(2);
    const bothDead = await lockctl(["--endpoints", endpoint, "inspect", "endpoints-both", "--endpoints", "127.0.0.1:1", "--attempts", "1"]);
    expect(bothDead.code).toBe(69);
    expect((await lockctl(["--endpoints", "a:b:c", "inspect", "x"])).code).toBe(64);
  });

  it("names the environment variable when $BATON_ENDPOINTS or $BATON_OWNER is malformed", async () => {
    const endpoints = await lockctl(["inspect", "cli"], undefined, { BATON_ENDPOINTS: "garbage::" });
    expect(endpoints.code).toBe(64);
    expect(endpoints.stderr).toContain("$BATON_ENDPOINTS");
    const owner = await lockctl(["inspect", "cli"], undefined, { BATON_OWNER: "not-hex" });
    expect(owner.code).toBe(64);
    expect(owner.stderr).toContain("$BATON_OWNER");
  });

  it("exits 69 when no server answers", async () => {
    const unreachable = await lockctl(["inspect", "cli", "--endpoints", "127.0.0.1:1", "--timeout", "100"]);
    expect(unreachable.code).toBe(69);
  });

  it("makes exactly --attempts attempts before giving up", async () => {
    // A listener that accepts and never answers: every attempt ends in its reply timeout.
    const silent = createServer((socket) => socket.on("error", () => undefined));
    let accepted = 0;
    silent.on("connection", () => accepted++);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const once = await lockctl(["inspect", "cli", "--endpoints", `127.0.0.1:${port}`, "--timeout", "100", "--attempts", "1"]);
      expect(once.code).toBe(69);
      const attemptsOfOne = accepted;
      const thrice = await lockctl(["inspect", "cli", "--endpoints", `127.0.0.1:${port}`, "--timeout", "100", "--attempts", "3"]);
      expect(thrice.code).toBe(69);
      expect(attemptsOfOne).toBe(1);
      // A timed-out attempt drops its connection (a late reply must not be taken for the retry's).
      expect(accepted - attemptsOfOne).toBe(3);
    } finally {
      silent.close();
    }
  });

  it("documents every command with examples in --help", async () => {
    for (const command of ["acquire", "renew", "release", "inspect", "run", "bench"]) {
      const help = await lockctl([command, "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain("Examples:");
    }
    for (const command of ["acquire", "bench"]) {
      const help = await lockctl(["help", command]);
      expect(help.code).toBe(0);
      expect(help.stdout).toBe((await lockctl([command, "--help"])).stdout);
    }
    const bare = await lockctl(["help"]);
    expect(bare.code).toBe(0);
    expect(bare.stdout).toContain("Exit codes");
    const top = await lockctl(["--help"]);
    expect(top.stdout).toContain("Exit codes");
  });

  it("shows bench's default duration in a form that means the same when typed (a bare number is seconds)", async () => {
    const help = await lockctl(["bench", "--help"]);
    expect(help.stdout).toMatch(/\(default: 10s\)/);
    expect(help.stdout).not.toMatch(/--duration[^\n]*\n?[^\n]*default: 10000/);
  });

  it("--version prints package.json's version and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const result = await lockctl(["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${version}\n`);
  });
});

describe("lockctl bench", () => {
  it("drives pipelined load and reports throughput and latency percentiles", async () => {
    const run = await lockctl(["bench", "--duration", "300ms", "--connections", "2", "--pipeline", "8", "--keys", "20", "--json"]);
    expect(run.code).toBe(0);
    const summary = json(run) as { total: { ops: number; errors: number; p50Ms: number; p999Ms: number } };
    expect(summary.total.ops).toBeGreaterThan(0);
    expect(summary.total.errors).toBe(0);
    expect(summary.total.p999Ms).toBeGreaterThanOrEqual(summary.total.p50Ms);
  });

  it("says what the failed requests ran into: a server answering 6 (its lock table full) shows as unavailable", async () => {
    const full = await spawnLockd({ args: ["--fsync", "never", "--max-locks", "1"] });
    try {
      const endpoints = ["--endpoints", `127.0.0.1:${full.port}`];
      const args = ["bench", "--duration", "300ms", "--connections", "1", "--pipeline", "4", "--keys", "20", "--mix", "acquire=1"];
      const run = await lockctl([...args, ...endpoints, "--json"]);
      expect(run.code).toBe(1);
      const acquire = (json(run) as { commands: { acquire: { errors: number; errorKinds: Record<string, number> } } }).commands.acquire;
      expect(acquire.errors).toBeGreaterThan(0);
      expect(acquire.errorKinds).toEqual({ unavailable: acquire.errors });
      const text = await lockctl([...args, ...endpoints]);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/^acquire: ([a-z]+ \d+(, [a-z]+ \d+)*; )?errors: unavailable \d+$/m);
    } finally {
      await full.stop();
      full.cleanup();
    }
  });

  it("gives up the requests a silent server holds one --timeout after --duration, as errors, instead of running out their retries", async () => {
    // Accepts connections and never answers: each request would take 3 attempts of 400 ms.
    const silent = await ScriptedServer.start(() => "silence");
    try {
      const args = ["bench", "--duration", "200ms", "--timeout", "400", "--connections", "1", "--pipeline", "3", "--mix", "inspect=1", "--json"];
      const run = await lockctl([...args, "--endpoints", silent.endpoint]);
      expect(run.code).toBe(1);
      const inspect = (json(run) as { commands: { inspect: { errors: number; errorKinds: Record<string, number> } } }).commands.inspect;
      // Given up at 600 ms, during each request's second attempt: none ran out its retries ("timeout").
      expect(inspect.errorKinds).toEqual({ aborted: 3 });
      expect(new Set(silent.seen.map((request) => request.requestId)).size).toBe(3);
    } finally {
      await silent.close();
    }
  });

  it("counts only answered requests as throughput: a server that answers nothing does 0 ops, with every failure said", async () => {
    const silent = await ScriptedServer.start(() => "silence");
    try {
      const args = ["bench", "--duration", "200ms", "--timeout", "100", "--attempts", "1", "--connections", "1", "--pipeline", "4", "--mix", "inspect=1", "--endpoints", silent.endpoint];
      const run = await lockctl([...args, "--json"]);
      expect(run.code).toBe(1);
      const summary = json(run) as { total: { ops: number; opsPerSecond: number; errors: number; errorKinds: Record<string, number> }; commands: { inspect: { ops: number; errors: number } } };
      expect(summary.total.ops).toBe(0);
      expect(summary.total.opsPerSecond).toBe(0);
      expect(summary.total.errors).toBeGreaterThan(0);
      expect(summary.commands.inspect).toMatchObject({ ops: 0, errors: summary.total.errors });
      expect(Object.values(summary.total.errorKinds).reduce((sum, count) => sum + count, 0)).toBe(summary.total.errors);
      const text = await lockctl(args);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/^total +0 +0 /m);
      expect(text.stdout).toMatch(/^\d+ request\(s\) failed \(([a-z]+ \d+)(, [a-z]+ \d+)*\), counted in no ops, ops\/s or latency$/m);
    } finally {
      await silent.close();
    }
  });

  it("stops at the first request refused as invalid (a ttl above the server's --max-ttl), exit 64, instead of timing refusals", async () => {
    const strict = await spawnLockd({ args: ["--fsync", "never", "--max-ttl", "10000"] });
    try {
      // Long enough that a bench that went on would outlast the test.
      const run = await lockctl(["bench", "--duration", "10m", "--ttl", "20000", "--endpoints", `127.0.0.1:${strict.port}`]);
      expect(run.code).toBe(64);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(/^lockctl: bench stopped: the server rejected the (ACQUIRE|RENEW) request as invalid \(status 3\): check the ttl against the server's --max-ttl; every such request is refused alike\n$/);
    } finally {
      await strict.stop();
      strict.cleanup();
    }
  });

  it("sends no request after the first refusal as invalid but those already in flight", async () => {
    const refusing = await ScriptedServer.start(() => reply(3));
    try {
      const run = await lockctl(["bench", "--duration", "10m", "--connections", "2", "--pipeline", "3", "--mix", "acquire=1", "--endpoints", refusing.endpoint]);
      expect(run.code).toBe(64);
      expect(refusing.seen.length).toBeLessThanOrEqual(6);
    } finally {
      await refusing.close();
    }
  });

  it("takes a --timeout longer than a Node timer holds without giving every request up at once", async () => {
    const run = await lockctl(["bench", "--duration", "300ms", "--timeout", "2147483648", "--connections", "1", "--pipeline", "4", "--json"]);
    expect(run.code).toBe(0);
    expect((json(run) as { total: { ops: number; errors: number } }).total).toMatchObject({ errors: 0 });
  });

  it("refuses a zero duration as a usage error (64) instead of printing an empty table", async () => {
    for (const duration of ["0", "0ms", "0.0s"]) {
      const run = await lockctl(["bench", "--duration", duration]);
      expect(run.code).toBe(64);
      expect(run.stdout).toBe("");
      expect(run.stderr).toMatch(/--duration.*expected a duration above 0/);
    }
  });

  it("exits 69 when no server answers, printing nothing on stdout", async () => {
    const run = await lockctl(["bench", "--duration", "300ms", "--endpoints", "127.0.0.1:1"]);
    expect(run.code).toBe(69);
    expect(run.stdout).toBe("");
    expect(run.stderr).toMatch(/^lockctl: 127\.0\.0\.1:1: connect failed: connect ECONNREFUSED 127\.0\.0\.1:1 \(nothing listens there: is lockd running, and is this its --listen address\?\)/);
  });
});

describe("lockctl pointed at lockd's metrics address", () => {
  it("fails at once (exit 70), saying the endpoint is an HTTP server and not lockd's lock port", async () => {
    const metrics = await startMetricsServer("127.0.0.1", 0, () => {
      throw new Error("nothing here scrapes");
    });
    try {
      const run = await lockctl(["inspect", "jobs", "--endpoints", `127.0.0.1:${metrics.address.port}`, "--timeout", "60000"]);
      expect(run.code).toBe(70);
      expect(run.stdout).toBe("");
      expect(run.stderr).toBe("lockctl: the endpoint answered in HTTP: it is an HTTP server (perhaps lockd's --metrics-listen address), not lockd's lock port (its --listen address)\n");
      // bench too stops at the first such answer, instead of counting them for its whole duration, and
      // says what the endpoint is, although the rest of the HTTP answer meets its other pipelined
      // requests (of every command, whose errors come back at different depths) as replies too.
      for (let run = 0; run < 5; run++) {
        const benched = await lockctl(["bench", "--duration", "10m", "--connections", "2", "--pipeline", "8", "--endpoints", `127.0.0.1:${metrics.address.port}`]);
        expect(benched.code).toBe(70);
        expect(benched.stdout).toBe("");
        expect(benched.stderr).toContain("lockctl: bench stopped: the endpoint answered in HTTP: it is an HTTP server");
      }
    } finally {
      await metrics.close();
    }
  });
});

describe("lockctl's failure messages say what the failure means", () => {
  it("running out of its own file descriptors is lockctl's limit (ulimit -n), not the server failing", async () => {
    const server = await ScriptedServer.start(() => reply(2));
    try {
      const run = await lockctlThroughShell("ulimit -n 100", ["bench", "--connections", "200", "--duration", "300ms", "--mix", "inspect=1", "--endpoints", server.endpoint]);
      expect(run.code).toBe(69);
      expect(run.stderr).toBe(
        `lockctl: ${server.endpoint}: connect failed: this process ran out of file descriptors (EMFILE: its open-file limit, ulimit -n, is reached; the server was not reached): raise the limit or open fewer connections\n`,
      );
    } finally {
      await server.close();
    }
  });

  it("a status no command can have asks whether the endpoint is a lockd, as impossible numbers do", async () => {
    const odd = await ScriptedServer.start(() => reply(7));
    try {
      const run = await lockctl(["inspect", "jobs", "--endpoints", odd.endpoint, "--attempts", "1"]);
      expect(run.code).toBe(70);
      expect(run.stderr).toBe("lockctl: unexpected status 7 for INSPECT (no lockd answers that: is the endpoint a lockd's --listen address?)\n");
    } finally {
      await odd.close();
    }
  });

  it("status 6 (unavailable): a capacity limit of the server, or its storage, and where to look", async () => {
    const full = await ScriptedServer.start(() => reply(6));
    try {
      const run = await lockctl(["inspect", "jobs", "--endpoints", full.endpoint, "--attempts", "1"]);
      expect(run.code).toBe(69);
      expect(run.stderr).toContain(`${full.endpoint} is unavailable (status 6: a capacity limit of the server is reached, or its storage failed; see lockd's log)`);
    } finally {
      await full.close();
    }
  });
});

describe("lockctl's output that cannot be written: exit 74, no stack trace, and no grant left held", () => {
  const NO_STACK = /\n\s+at /;

  it("acquire to a full disk: exit 74, one line on stderr, and the lease it was granted is released", async () => {
    const run = await withFullDevice((full) => lockctlWritingTo(["acquire", "unwritten-full", "--ttl", "60000"], { stdout: full }));
    expect(run.code).toBe(74);
    expect(run.stderr).toBe("lockctl: could not write the answer to stdout (ENOSPC: no space left on device, write); released the lease granted on unwritten-full, since nobody saw it granted\n");
    expect((await lockctl(["inspect", "unwritten-full"])).code).toBe(2); // free
  });

  it("acquire to /dev/null opened read-write (subprocess.DEVNULL, stdio 'ignore', or >&-, which Node reopens so): a discard, the lease kept", async () => {
    const run = await lockctlThroughShell("exec 1<>/dev/null", ["acquire", "discarded-rw", "--ttl", "60000", "--owner", "ab"]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    expect((await lockctl(["inspect", "discarded-rw", "--owner", "ab"])).code).toBe(0); // held by ab
  });

  it("an error or a run writes nothing to stdout: its own exit code stands, whatever stdout is", async () => {
    const cases: [string[], number][] = [
      [["inspect", "x", "--endpoints", "127.0.0.1:1", "--attempts", "1"], 69],
      [["acquire"], 64],
      [["acquire", "x", "--ttl", "0"], 64],
      [["run", "unwritten-run", "--ttl", "60000", "--", "sh", "-c", "exit 3"], 3],
    ];
    for (const [args, code] of cases) {
      const run = await withFullDevice((full) => lockctlWritingTo(args, { stdout: full }));
      expect([args.join(" "), run.code]).toEqual([args.join(" "), code]);
      expect(run.stderr).not.toContain("could not write");
    }
  });

  it("acquire into a pipe whose reader is gone (| true): exit 74, and the lease is released", async () => {
    // The reading end is closed before lockctl has even started: its answer meets EPIPE.
    const run = await lockctlWritingTo(["acquire", "unwritten-pipe", "--ttl", "60000"], { onSpawn: (child) => child.stdout!.destroy() });
    expect(run.code).toBe(74);
    expect(run.stderr).toContain("could not write the answer to stdout (write EPIPE); released the lease granted on unwritten-pipe");
    expect((await lockctl(["inspect", "unwritten-pipe"])).code).toBe(2);
  });

  it("inspect to a full disk: exit 74, not the answer's own code", async () => {
    const run = await withFullDevice((full) => lockctlWritingTo(["inspect", "unwritten-inspect"], { stdout: full }));
    expect(run.code).toBe(74);
    expect(run.stderr).toBe("lockctl: could not write the answer to stdout (ENOSPC: no space left on device, write)\n");
  });

  it("--help and --version to a full disk: exit 74 and one line, no trace from inside the parser", async () => {
    for (const args of [["--help"], ["acquire", "--help"], ["--version"]]) {
      const run = await withFullDevice((full) => lockctlWritingTo(args, { stdout: full }));
      expect(run.code).toBe(74);
      expect(run.stderr).toBe("lockctl: could not write to stdout (ENOSPC: no space left on device, write)\n");
    }
  });

  it("an error with stderr on a full disk keeps its own exit code (69), with no trace", async () => {
    const run = await withFullDevice((full) => lockctlWritingTo(["inspect", "x", "--endpoints", "127.0.0.1:1", "--attempts", "1"], { stderr: full }));
    expect(run.code).toBe(69);
    expect(run.stdout).toBe("");
  });

  it("bench's summary to a full disk: exit 74", async () => {
    const run = await withFullDevice((full) => lockctlWritingTo(["bench", "--duration", "200ms", "--connections", "1", "--pipeline", "2", "--mix", "inspect=1"], { stdout: full }));
    expect(run.code).toBe(74);
    expect(run.stderr).toContain("could not write the bench summary to stdout (ENOSPC");
    expect(run.stderr).not.toMatch(NO_STACK);
  });

  it("bench's summary into a pipe whose reader stopped early is no failure, as with help", async () => {
    const run = await lockctlWritingTo(["bench", "--duration", "200ms", "--connections", "1", "--pipeline", "2", "--mix", "inspect=1"], { onSpawn: (child) => child.stdout!.destroy() });
    expect(run.code).toBe(0);
    expect(run.stderr).not.toContain("could not write");
  });

  it("a deliberate discard (>/dev/null) is no failure: the answer's own exit code", async () => {
    const run = await lockctlThroughShell("exec >/dev/null", ["inspect", "discarded"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe("");
  });
});

/** A lockctl left running with both outputs read, to be sent a signal. */
function startCapturing(args: readonly string[]) {
  const child = spawn(process.execPath, [LOCKCTL, ...args], { env: lockctlEnv(), stdio: ["ignore", "pipe", "pipe"] });
  return { process: child, ...capture(child) };
}

/** A command line run by /bin/sh as a user would paste it, `lockctl` being this one. */
function pastedIntoShell(commandLine: string): Promise<Finished> {
  const child = spawn("/bin/sh", ["-c", `lockctl() { "$NODE" "$LOCKCTL" "$@"; }; ${commandLine}`], {
    env: { ...lockctlEnv(), NODE: process.execPath, LOCKCTL },
    stdio: ["ignore", "pipe", "pipe"],
  });
  return capture(child).exited;
}

describe("lockctl on Ctrl-C (SIGINT)", () => {
  it("acquire with its ACQUIRE in flight: says the lock, owner id and request id it sent, then exits 130", async () => {
    const silent = await ScriptedServer.start(() => "silence");
    try {
      const run = startCapturing(["acquire", "interrupted", "--endpoints", silent.endpoint, "--timeout", "60000"]);
      await waitFor(() => silent.seen.length > 0);
      run.process.kill("SIGINT");
      const finished = await run.exited;
      expect(finished.code).toBe(130);
      expect(finished.stdout).toBe("");
      const [sent] = silent.seen;
      expect(finished.stderr).toBe(
        `lockctl: interrupted with an ACQUIRE under way (lock=interrupted owner=${sent!.ownerId} request=${sent!.requestId}), which the server may still grant if it got it: ` +
          `\`lockctl inspect --endpoints ${silent.endpoint} --owner ${sent!.ownerId} interrupted\` shows whether it did, ` +
          `\`lockctl release --endpoints ${silent.endpoint} --owner ${sent!.ownerId} interrupted\` ends the lease\n`,
      );
    } finally {
      await silent.close();
    }
  });

  it("run, before its command started: says the same of its ACQUIRE (with --hex-id where the lock is a raw id), then exits 130", async () => {
    const silent = await ScriptedServer.start(() => "silence");
    const marker = join(workDir, "interrupted-run-started");
    try {
      const run = startCapturing(["run", "00ff", "--hex-id", "--endpoints", silent.endpoint, "--timeout", "60000", "--", process.execPath, "-e", `require("fs").writeFileSync(${JSON.stringify(marker)}, "")`]);
      await waitFor(() => silent.seen.length > 0);
      run.process.kill("SIGINT");
      const finished = await run.exited;
      expect(finished.code).toBe(130);
      const [sent] = silent.seen;
      expect(finished.stderr).toContain(`(lock=${sent!.lockId} owner=${sent!.ownerId} request=${sent!.requestId})`);
      expect(finished.stderr).toContain(`\`lockctl release --endpoints ${silent.endpoint} --owner ${sent!.ownerId} --hex-id 00ff\``);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await silent.close();
    }
  });

  it("the commands it prints work pasted into a shell: the same lock, owner and server, whatever the name holds", async () => {
    // The ACQUIRE goes unanswered; what the printed commands send is answered 2 (free, not held).
    // The last two are shown by their id (--hex-id): a terminal would act on the escape, and a backquote
    // would end the quoting around the command.
    for (const name of ["with space", `q'uo"te $HOME`, "-looks-like-a-flag", "ünïcode/ロック", "e\u001b[31mred\ttab", "back`quote"]) {
      const server = await ScriptedServer.start((_request, index) => (index === 0 ? "silence" : reply(2)));
      try {
        const run = startCapturing(["acquire", "--endpoints", server.endpoint, "--timeout", "60000", "--", name]);
        await waitFor(() => server.seen.length > 0);
        run.process.kill("SIGINT");
        const { stderr } = await run.exited;
        const printed = [...stderr.matchAll(/`(lockctl [^`]+)`/g)].map((match) => match[1]!);
        if (["\u001b", "\t", "`"].some((character) => name.includes(character))) for (const command of printed) expect(command).toMatch(/ --hex-id [0-9a-f]{32}$/);
        expect(printed.map((command) => command.split(" ")[1])).toEqual(["inspect", "release"]);
        for (const command of printed) {
          // $BATON_ENDPOINTS names another server: the printed command must say which one.
          const pasted = await pastedIntoShell(command);
          expect([command, pasted.code, pasted.stderr]).toEqual([command, 2, ""]);
        }
        const [acquired, inspected, released] = server.seen;
        expect([inspected!.command, released!.command]).toEqual([Command.Inspect, Command.Release]);
        for (const followUp of [inspected!, released!]) expect([followUp.lockId, followUp.ownerId]).toEqual([acquired!.lockId, acquired!.ownerId]);
      } finally {
        await server.close();
      }
    }
  });

  it("bench: prints its summary so far, then exits 130", async () => {
    const run = startCapturing(["bench", "--duration", "10m", "--connections", "1", "--pipeline", "4", "--keys", "20", "--json"]);
    await waitFor(() => /ops\/s/.test(run.stderr())); // the first progress line: a second of load done
    run.process.kill("SIGINT");
    const finished = await run.exited;
    expect(finished.code).toBe(130);
    const summary = json(finished) as { interrupted: boolean; total: { ops: number; errors: number } };
    expect(summary.interrupted).toBe(true);
    expect(summary.total.ops).toBeGreaterThan(0);
    // Requests given up because of the Ctrl-C are no failures of the server.
    expect(summary.total.errors).toBe(0);
  });
});
