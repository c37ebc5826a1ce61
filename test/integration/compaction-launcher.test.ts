/**
 * Compaction processes are started by a launcher that lockd forks once at start, while it is small:
 * fork() copies the parent's page tables, which in a lockd holding GBs stopped every connection for
 * tens of ms at each compaction. These tests run the real built processes.
 */
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { getEventListeners } from "node:events";
import { openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, Server, type AddressInfo } from "node:net";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { openDataDir } from "../../src/storage/data-dir.js";
import type { CompactionJob } from "../../src/storage/compaction.js";
import type { ListenerHandle } from "../../src/storage/compaction-launcher.js";
import type * as CompactorModule from "../../src/storage/compactor.js";
import { capturingLogger } from "../support/capturing-logger.js";
import { descriptorTarget, descriptorsFor, listeningSockets } from "../support/descriptors.js";
import { sleep } from "../support/answers.js";
import { acquire } from "../support/frames.js";
import { spawnLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { useTempDirs } from "../support/temp-dir.js";

const tempDir = useTempDirs();
const CONFIG = { dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 7 };
const BUILT_COMPACTOR = resolve(fileURLToPath(new URL("../../dist/src/storage/compactor.js", import.meta.url)));

interface ProcessInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly state: string;
  readonly command: string;
  /** The scheduling policy: 0 normal, 5 SCHED_IDLE. */
  readonly policy: number;
}

const SCHED_IDLE = 5;

function processes(): ProcessInfo[] {
  const found: ProcessInfo[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const command = readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " ");
      found.push({ pid: Number(name), state: fields[0]!, ppid: Number(fields[1]), command, policy: Number(fields[38]) });
    } catch {
      // exited while we looked
    }
  }
  return found;
}

function childrenOf(pid: number): ProcessInfo[] {
  return processes().filter((each) => each.ppid === pid && each.state !== "Z");
}

/** Living processes among `pids` (a zombie has exited; only its entry waits to be collected). */
function alive(pids: readonly number[]): number[] {
  const living = new Set(processes().filter((each) => each.state !== "Z").map((each) => each.pid));
  return pids.filter((pid) => living.has(pid));
}

/** Waits until `pid` catches SIGHUP, SIGINT and SIGTERM (its SigCgt mask in /proc). */
async function catchesStopSignals(pid: number): Promise<void> {
  const stopSignals = (1n << 0n) | (1n << 1n) | (1n << 14n); // signal n is bit n - 1
  let caught = 0n;
  for (let tries = 0; tries < 500; tries++) {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    caught = BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)$/m.exec(status)![1]}`);
    if ((caught & stopSignals) === stopSignals) return;
    await sleep(10);
  }
  throw new Error(`${pid} does not catch SIGHUP, SIGINT and SIGTERM (SigCgt ${caught.toString(16)})`);
}

/** A launcher of the built code, as lockd starts it, and its pid (launchers of earlier tests may still be exiting). */
async function startLauncherProcess(): Promise<{ launcher: CompactorModule.CompactionLauncher; pid: number }> {
  const { startCompactionLauncher } = (await import(BUILT_COMPACTOR)) as typeof CompactorModule;
  const isLauncher = (each: ProcessInfo): boolean => each.command.includes("compaction-launcher.js");
  const earlier = new Set(childrenOf(process.pid).filter(isLauncher).map((each) => each.pid));
  const launcher = startCompactionLauncher({ idlePriority: false, logger: capturingLogger() });
  for (let tries = 0; tries < 500; tries++) {
    const started = childrenOf(process.pid).find((each) => isLauncher(each) && !earlier.has(each.pid));
    if (started !== undefined) return { launcher, pid: started.pid };
    await sleep(10);
  }
  await launcher.close();
  throw new Error("the launcher did not start");
}

/** Runs `test` with a launcher of the built code (as lockd starts it) and the lines it logs; closes it after. */
async function withLauncher(test: (launcher: CompactorModule.CompactionLauncher, lines: string[]) => Promise<void>): Promise<void> {
  const { startCompactionLauncher } = (await import(BUILT_COMPACTOR)) as typeof CompactorModule;
  const logger = capturingLogger();
  const launcher = startCompactionLauncher({ idlePriority: false, logger });
  try {
    await test(launcher, logger.lines);
  } finally {
    await launcher.close();
  }
}

describe("the compaction launcher", () => {
  it("is lockd's only child; it starts the compaction processes, and a lockd killed with -9 leaves none of them behind", async () => {
    const lockd = await spawnLockd({ args: ["--segment-bytes", "65536", "--snapshot-every", "65536"] });
    try {
      const launchers = childrenOf(lockd.child.pid!);
      expect(launchers.map((each) => each.command)).toEqual([expect.stringContaining("compaction-launcher.js")]);
      const launcher = launchers[0]!.pid;

      // Fresh request ids fill 64 KiB segments quickly; keep going until a compaction process runs.
      const client = await RawClient.open(lockd.port);
      let compaction: ProcessInfo | undefined;
      for (let round = 0; round < 400 && compaction === undefined; round++) {
        for (let n = 0; n < 200; n++) client.write(acquire({ lock: BigInt(n), owner: BigInt(round) }, 60_000n));
        await client.read(200 * 17);
        compaction = childrenOf(launcher).find((each) => each.command.includes("compaction-process.js"));
      }
      expect(compaction, "no compaction process was seen under the launcher").toBeDefined();
      // Started through chrt where chrt works here (the launcher finds out at this first job). Seen
      // before chrt has replaced itself with Node, the process may not have its policy yet.
      const chrtWorks = spawnSync("chrt", ["--idle", "0", "true"]).status === 0;
      let policy = compaction!.policy;
      for (let tries = 0; chrtWorks && policy !== SCHED_IDLE && tries < 50; tries++) {
        await sleep(10);
        policy = processes().find((each) => each.pid === compaction!.pid)?.policy ?? policy;
      }
      expect(policy).toBe(chrtWorks ? SCHED_IDLE : 0);
      expect(childrenOf(lockd.child.pid!).map((each) => each.pid)).toEqual([launcher]);

      await lockd.kill();
      client.end();
      const deadline = Date.now() + 5_000;
      while (alive([launcher, compaction!.pid]).length > 0 && Date.now() < deadline) await sleep(20);
      expect(alive([launcher, compaction!.pid])).toEqual([]);
    } finally {
      await lockd.kill();
      lockd.cleanup();
    }
  });

  it("Ctrl-C at a terminal (SIGINT to lockd's whole process group) stops lockd cleanly, with no word about its launcher", async () => {
    const lockd = await spawnLockd({ ownProcessGroup: true });
    try {
      const launcher = childrenOf(lockd.child.pid!)[0]!.pid;
      await catchesStopSignals(launcher);
      process.kill(-lockd.child.pid!, "SIGINT");
      expect(await lockd.stop()).toBe(0);
      expect(lockd.stderr()).not.toContain("compaction launcher");
      expect(lockd.stderr()).toContain("stopped: every answer sent, the log closed");
      const deadline = Date.now() + 5_000;
      while (alive([launcher]).length > 0 && Date.now() < deadline) await sleep(20);
      expect(alive([launcher])).toEqual([]);
    } finally {
      await lockd.kill();
      lockd.cleanup();
    }
  });

  describe("jobs that stay in progress, and helpers that are signalled, stopped or killed", () => {
    /** A job that stays in progress: its only segment is a FIFO nobody writes, so opening it blocks. */
    function blockingJob(): CompactionJob {
      const dir = openDataDir(tempDir());
      const fifo = join(dir.logDir, "00000000000000000001.seg");
      expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
      return { dir, config: CONFIG, snapshotPath: null, segments: [{ path: fifo, lastIndex: 5 }] };
    }

    async function onlyChild(parent: number, script: string): Promise<number> {
      for (let tries = 0; tries < 500; tries++) {
        const found = childrenOf(parent).filter((each) => each.command.includes(script));
        if (found.length === 1) return found[0]!.pid;
        await sleep(10);
      }
      throw new Error(`no ${script} under ${parent}`);
    }

    /**
     * Stops `pid` and waits until it is stopped. A SIGSTOP takes effect only when the process next
     * handles signals; a SIGTERM sent before then is dequeued first (lower number) and kills it.
     */
    async function stopProcess(pid: number): Promise<void> {
      process.kill(pid, "SIGSTOP");
      for (let tries = 0; tries < 500; tries++) {
        if (processes().find((each) => each.pid === pid)?.state === "T") return;
        await sleep(10);
      }
      throw new Error(`${pid} did not stop`);
    }

    it("a stopped compaction process (SIGSTOP) is killed at once", () =>
      withLauncher(async (launcher) => {
        const shutdown = new AbortController();
        const job = launcher.run(blockingJob(), shutdown.signal);
        const launcherPid = await onlyChild(process.pid, "compaction-launcher.js");
        const compaction = await onlyChild(launcherPid, "compaction-process.js");
        await stopProcess(compaction);
        shutdown.abort();
        await expect(job).rejects.toThrow("compaction process exited with SIGKILL");
        expect(alive([compaction])).toEqual([]);
      }));

    it("stop signals sent to lockd's whole process group (Ctrl-C, a closed terminal, a supervisor) leave the launcher and its job to lockd", () =>
      withLauncher(async (launcher, lines) => {
        const shutdown = new AbortController();
        const job = launcher.run(blockingJob(), shutdown.signal);
        const launcherPid = await onlyChild(process.pid, "compaction-launcher.js");
        const compaction = await onlyChild(launcherPid, "compaction-process.js");
        // Seen as soon as it exists, the process may still be starting Node, with every signal's
        // default action in place: wait until it has taken the signals over.
        await catchesStopSignals(compaction);
        for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
          process.kill(launcherPid, signal);
          process.kill(compaction, signal);
        }
        // A signal's default action would have ended either process by the time one more message
        // has gone to the launcher and its answer come back.
        const dir = openDataDir(tempDir());
        await expect(launcher.run({ dir, config: CONFIG, snapshotPath: null, segments: [] }, new AbortController().signal)).rejects.toThrow(
          "a compaction is already running",
        );
        expect(alive([launcherPid, compaction])).toEqual([launcherPid, compaction]);
        expect(lines).toEqual([]);
        shutdown.abort();
        await expect(job).rejects.toThrow("compaction process exited with SIGKILL");
        expect(alive([compaction])).toEqual([]);
      }));

    it("a compaction process killed while writing has its part-written snapshot removed, and only its own", () =>
      withLauncher(async (launcher) => {
        const job = blockingJob();
        const running = launcher.run(job, new AbortController().signal);
        const compaction = await onlyChild(await onlyChild(process.pid, "compaction-launcher.js"), "compaction-process.js");
        // As far as it got; and another process's snapshot, still being written.
        const own = join(job.dir.snapshotDir, `00000000000000000005.snap.${compaction}.tmp`);
        const another = join(job.dir.snapshotDir, `00000000000000000005.snap.${compaction + 1}.tmp`);
        writeFileSync(own, Buffer.alloc(5 << 20, 1));
        writeFileSync(another, Buffer.alloc(1 << 20, 1));
        process.kill(compaction, "SIGKILL"); // as the out-of-memory killer would
        await expect(running).rejects.toThrow("compaction process exited with SIGKILL");
        expect(readdirSync(job.dir.snapshotDir)).toEqual([basename(another)]);
      }));

    it("a stopped launcher is killed, and the job given up", () =>
      withLauncher(async (launcher, lines) => {
        const shutdown = new AbortController();
        await stopProcess(await onlyChild(process.pid, "compaction-launcher.js"));
        const job = launcher.run(blockingJob(), shutdown.signal);
        shutdown.abort();
        await expect(job).rejects.toThrow("compaction launcher exited with SIGKILL");
        // The job's failure says why; no second line for the launcher.
        expect(lines).toEqual([]);
      }));

    it("a launcher that dies while idle is logged, and the next job starts a new one", () =>
      withLauncher(async (launcher, lines) => {
        process.kill(await onlyChild(process.pid, "compaction-launcher.js"), "SIGKILL");
        for (let tries = 0; tries < 500 && lines.length === 0; tries++) await sleep(10);
        expect(lines).toEqual([expect.stringMatching(/^compaction launcher exited with SIGKILL; the next compaction starts a new one/)]);
        const dir = openDataDir(tempDir());
        const empty = await launcher.run({ dir, config: CONFIG, snapshotPath: null, segments: [] }, new AbortController().signal);
        expect(empty).toMatchObject({ lastIndex: 0 });
      }));
  });

  it("hands back copies of a listening socket, each a descriptor of its own that accepts, and keeps none itself", async () => {
    const { launcher, pid: launcherPid } = await startLauncherProcess();
    const server = createServer();
    const copyServers: Server[] = [];
    try {
      await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, resolve));
      const { port } = server.address() as AddressInfo;
      const handle = (server as unknown as { _handle: ListenerHandle & { fd: number } })._handle;
      const listener = descriptorTarget("self", handle.fd);
      const copies = (await launcher.copyListener(handle, 3)) as (ListenerHandle & { fd: number })[];
      expect(copies).toHaveLength(3);
      const fds = copies.map((copy) => copy.fd);
      expect(new Set([handle.fd, ...fds]).size).toBe(4);
      expect(fds.map((fd) => descriptorTarget("self", fd))).toEqual([listener, listener, listener]);
      // The launcher closed its own: a lockd gone frees its port.
      expect(descriptorsFor(launcherPid, listener)).toBe(0);

      // Each copy accepts once listened on, and the queue keeps the length it was given.
      const accepted: Promise<string>[] = [];
      for (const copy of copies) {
        const copyServer = new Server();
        copyServers.push(copyServer);
        accepted.push(new Promise((resolve) => copyServer.once("connection", (socket) => (socket.destroy(), resolve("copy")))));
        copyServer.listen(copy, 4096);
      }
      server.close(); // only its own descriptor: the copies go on accepting
      await new Promise<void>((resolve, reject) => connect(port, "127.0.0.1", resolve).on("error", reject));
      expect(await Promise.race(accepted)).toBe("copy");
      expect(spawnSync("ss", ["-ltnH", `sport = :${port}`], { encoding: "utf8" }).stdout).toMatch(/^LISTEN\s+\d+\s+4096\s/);
    } finally {
      for (const copyServer of copyServers) copyServer.close();
      server.close();
      await launcher.close();
    }
  });

  it("closed while it hands back copies of a listening socket, it has let go of the socket once close resolves", async () => {
    const { launcher, pid: launcherPid } = await startLauncherProcess();
    const server = createServer();
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const { port } = server.address() as AddressInfo;
    const handle = (server as unknown as { _handle: ListenerHandle & { fd: number } })._handle;
    const copies = launcher.copyListener(handle, 63).then(
      () => "copied",
      (error: Error) => error.message,
    );
    // Closed once the launcher has the socket, while it sends it back.
    const listener = descriptorTarget("self", handle.fd);
    const holds = (): boolean => descriptorsFor(launcherPid, listener) > 0;
    for (let tries = 0; tries < 500 && !holds(); tries++) await sleep(2);
    expect(holds()).toBe(true);
    await launcher.close();
    expect(await copies).toBe("compaction launcher closed");
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => (socket.destroy(), resolve(false)));
      socket.on("error", () => resolve(true));
    });
    expect(refused).toBe(true);
  });

  it("a lockd killed with -9 while the launcher hands back copies takes the launcher and its compaction with it, and frees its port", async () => {
    // A stand-in for lockd: a launcher running a compaction, copies of a listening socket being
    // handed back, and a kill -9 once a few have arrived. Node holds back the launcher's 'disconnect'
    // while a handle it sent is unacknowledged.
    const dir = openDataDir(tempDir());
    const fifo = join(dir.logDir, "00000000000000000001.seg");
    expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
    const script = `
      import { createServer } from "node:net";
      import { readdirSync, readFileSync, readlinkSync } from "node:fs";
      const { startCompactionLauncher } = await import(${JSON.stringify(BUILT_COMPACTOR)});
      const launcher = startCompactionLauncher({ idlePriority: false, logger: { info() {}, warn() {}, error() {} } });
      const job = { dir: ${JSON.stringify(dir)}, config: ${JSON.stringify(CONFIG)}, snapshotPath: null, segments: [{ path: ${JSON.stringify(fifo)}, lastIndex: 5 }] };
      launcher.run(job, new AbortController().signal).catch(() => {});
      const server = createServer().listen({ host: "127.0.0.1", port: 0 }, () => {
        const listener = readlinkSync("/proc/self/fd/" + server._handle.fd);
        launcher.copyListener(server._handle, 63).catch(() => {});
        const held = () => readdirSync("/proc/self/fd").filter((fd) => { try { return readlinkSync("/proc/self/fd/" + fd) === listener; } catch { return false; } }).length;
        const watch = setInterval(() => {
          const children = (pid) => readFileSync("/proc/" + pid + "/task/" + pid + "/children", "utf8").trim().split(" ").filter(Boolean).map(Number);
          const [launcherPid] = children(process.pid);
          const compactions = children(launcherPid);
          if (held() < 4 || compactions.length === 0) return;
          clearInterval(watch);
          console.log(JSON.stringify({ launcherPid, compactions, listener }));
          process.kill(process.pid, "SIGKILL");
        }, 1);
      });`;
    // Its stdout is a file: the launcher and the compaction inherit it, and a pipe would stay open as long as they live.
    const reportFile = join(tempDir(), "report");
    const scriptFile = join(tempDir(), "stand-in.mjs");
    writeFileSync(scriptFile, script);
    const standIn = spawn(process.execPath, [scriptFile], { stdio: ["ignore", openSync(reportFile, "w"), "inherit"] });
    const [, signal] = (await once(standIn, "exit")) as [number | null, NodeJS.Signals | null];
    expect(signal).toBe("SIGKILL");
    const { launcherPid, compactions, listener } = JSON.parse(readFileSync(reportFile, "utf8")) as { launcherPid: number; compactions: number[]; listener: string };
    expect(compactions).toHaveLength(1);
    for (let tries = 0; tries < 250 && alive([launcherPid, ...compactions]).length > 0; tries++) await sleep(20);
    expect(alive([launcherPid, ...compactions])).toEqual([]);
    // Nothing listens on the socket any more (its port may be anyone's again by now).
    expect(listeningSockets().filter((socket) => socket.target === listener)).toEqual([]);
  });

  it("a launcher killed while it hands back copies: the copies that came are closed, and the request fails", async () => {
    const { launcher, pid: launcherPid } = await startLauncherProcess();
    const server = createServer();
    try {
      await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
      const handle = (server as unknown as { _handle: ListenerHandle & { fd: number } })._handle;
      const listener = descriptorTarget("self", handle.fd);
      const held = (): number => descriptorsFor("self", listener);
      const copies = launcher.copyListener(handle, 63).then(
        () => "copied",
        (error: Error) => error.message,
      );
      for (let tries = 0; tries < 1000 && held() < 4; tries++) await sleep(1);
      expect(held()).toBeGreaterThanOrEqual(4);
      process.kill(launcherPid, "SIGKILL");
      expect(await copies).toBe("compaction launcher exited with SIGKILL");
      expect(held()).toBe(1);
    } finally {
      server.close();
      await launcher.close();
    }
  });

  it("reports a failed job's reason, takes the next job, and leaves no listener on the compactor's signal", () =>
    withLauncher(async (launcher) => {
      // One signal for the compactor's whole life, as in lockd: each job must remove what it added.
      const shutdown = new AbortController();
      const dir = openDataDir(tempDir());
      const missing = join(dir.logDir, "00000000000000000001.seg");
      const failing = launcher.run({ dir, config: CONFIG, snapshotPath: null, segments: [{ path: missing, lastIndex: 5 }] }, shutdown.signal);
      await expect(failing).rejects.toThrow(missing);
      const empty = await launcher.run({ dir, config: CONFIG, snapshotPath: null, segments: [] }, shutdown.signal);
      expect(empty).toMatchObject({ lastIndex: 0, locks: 0, dedupeEntries: 0 });
      expect(readdirSync(dir.snapshotDir)).toEqual(["00000000000000000000.snap"]);
      expect(getEventListeners(shutdown.signal, "abort")).toEqual([]);
    }));
});
