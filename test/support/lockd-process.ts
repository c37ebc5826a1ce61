/**
 * Spawns the real, built `lockd` (dist/) on an ephemeral port with its own temporary data directory,
 * for integration tests that talk real TCP. `npm test` builds first (pretest).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect } from "vitest";

export const LOCKD_BIN = resolve(fileURLToPath(new URL("../../dist/src/cli/lockd.js", import.meta.url)));

/**
 * The data directories spawnLockd made, removed after the test file, whether or not a test called
 * `cleanup` (a restart reuses one through `dataDir`, so each test cannot tell when it is done with it).
 */
const madeDirs: string[] = [];
afterAll(() => {
  for (const dir of madeDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

export interface LockdProcess {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Everything lockd wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** Removes the data directory (after stop/kill). */
  cleanup(): void;
}

export interface SpawnOptions {
  /** Extra flags, e.g. ["--max-ttl", "5000"]. */
  readonly args?: readonly string[];
  /** Reuse a data directory (restarts); a fresh temporary one otherwise. */
  readonly dataDir?: string;
  /** Listen on this port instead of an ephemeral one. */
  readonly port?: number;
  /** Start lockd under this open-file limit (`ulimit -n`), through /bin/sh. */
  readonly openFileLimit?: number;
  /** Extra environment variables for lockd. */
  readonly env?: Readonly<Record<string, string>>;
  /** Start lockd as the leader of a process group of its own, as a shell starts a command. */
  readonly ownProcessGroup?: boolean;
}

export async function spawnLockd(options: SpawnOptions = {}): Promise<LockdProcess> {
  const dataDir = options.dataDir ?? madeDir();
  const lockdArgs = [LOCKD_BIN, "--listen", `127.0.0.1:${options.port ?? 0}`, "--data", dataDir, ...(options.args ?? [])];
  const child =
    options.openFileLimit === undefined
      ? spawn(process.execPath, lockdArgs, {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, ...options.env },
          detached: options.ownProcessGroup === true,
        })
      : // exec: the child stays lockd itself, so signals reach it.
        spawn("/bin/sh", ["-c", `ulimit -n ${options.openFileLimit} && exec "$0" "$@"`, process.execPath, ...lockdArgs], {
          stdio: ["ignore", "pipe", "pipe"],
        });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolveExit) => child.once("exit", (code) => resolveExit(code)));

  const port = await new Promise<number>((resolvePort, reject) => {
    let stdout = "";
    child.stdout!.setEncoding("utf8").on("data", (text: string) => {
      stdout += text;
      const match = /lockd listening on 127\.0\.0\.1:(\d+)/.exec(stdout);
      // lockd wrote its start messages to stderr before this line, but the two pipes are read by
      // separate callbacks, and a test continuing straight from this one could look at stderr before
      // the other callback of the same poll ran. After the poll phase, everything written is read.
      if (match) setImmediate(() => resolvePort(Number(match[1])));
    });
    void exited.then((code) => reject(new Error(`lockd exited with ${code} before listening:\n${stderr}`)));
  });

  return {
    host: "127.0.0.1",
    port,
    dataDir,
    child,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    cleanup() {
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function madeDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "baton-test-"));
  madeDirs.push(dir);
  return dir;
}

/**
 * One lockd for a whole test file: spawned before its first test and stopped after its last (a clean
 * exit, code 0, is asserted). The returned value forwards to the running process.
 */
export function useLockd(options: SpawnOptions = {}): LockdProcess {
  let current: LockdProcess | undefined;
  beforeAll(async () => {
    current = await spawnLockd(options);
  });
  afterAll(async () => {
    expect(await current!.stop()).toBe(0);
    current!.cleanup();
  });
  return new Proxy({} as LockdProcess, {
    get: (_target, key) => {
      if (current === undefined) throw new Error("lockd is not running yet (use it inside a test)");
      return Reflect.get(current, key);
    },
  });
}
