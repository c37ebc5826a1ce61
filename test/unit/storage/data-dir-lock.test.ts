import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DataDirInUseError, lockDataDir } from "../../../src/storage/data-dir-lock.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();
const holders: ChildProcess[] = [];

afterEach(() => {
  for (const holder of holders.splice(0)) killGroup(holder, "SIGKILL");
});

/** Another process (its own process group) holding an exclusive flock on `file`, as a lockd would. */
/**
 * A process that holds an exclusive flock on `file` (which exists). One process only: `flock FILE
 * COMMAND` would leave the lock with two (flock and its child), and the one still exiting after the
 * other was seen to exit could keep the lock a moment longer.
 */
async function holdElsewhere(file: string): Promise<ChildProcess> {
  const holder = spawn("sh", ["-c", 'exec 9<"$0" && flock --exclusive 9 && echo locked && exec sleep 60', file], {
    detached: true,
    stdio: ["ignore", "pipe", "inherit"],
  });
  holders.push(holder);
  await new Promise<void>((resolve, reject) => {
    holder.stdout!.once("data", () => resolve());
    holder.once("exit", (code) => reject(new Error(`flock holder exited with ${code}`)));
  });
  return holder;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((resolve) => child.once("exit", resolve));
}

describe("one lockd per data directory (flock)", () => {
  it("refuses a second holder while the first holds the directory, and admits one after release", () => {
    const lockFile = join(tempDir(), "LOCK");
    const first = lockDataDir(lockFile, "d");
    expect(first.kind).toBe("flock");
    expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid}\n`);
    expect(() => lockDataDir(lockFile, "d")).toThrow(DataDirInUseError);
    expect(() => lockDataDir(lockFile, "d")).toThrow(`data directory d is in use by another lockd (pid ${process.pid}`);
    first.release();
    expect(existsSync(lockFile)).toBe(true); // never unlinked: the next holder locks the same inode
    const second = lockDataDir(lockFile, "d");
    second.release();
  });

  it("refuses while a process the pid in the file does not name holds the lock (another pid namespace)", async () => {
    const lockFile = join(tempDir(), "LOCK");
    writeFileSync(lockFile, "999999999\n"); // what a lockd in another container would leave: a pid we cannot see
    const holder = await holdElsewhere(lockFile);
    expect(() => lockDataDir(lockFile, "d")).toThrow(/in use by another lockd \(pid 999999999, as its own pid namespace numbers it\)/);
    killGroup(holder, "SIGKILL"); // the kernel drops the lock of a killed holder
    await exited(holder);
    const taken = lockDataDir(lockFile, "d");
    expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid}\n`);
    taken.release();
  });

  it("still refuses a second holder after LOCK was deleted: the directory itself is locked too", () => {
    const root = tempDir();
    const lockFile = join(root, "LOCK");
    const first = lockDataDir(lockFile, "d");
    unlinkSync(lockFile); // as a clean-up script that took it for a stale pid file would
    const refusal = `data directory d is in use by another lockd, whose ${lockFile} was deleted while it ran, so its pid is unknown (\`fuser -v ${root}\` names it)`;
    expect(() => lockDataDir(lockFile, "d")).toThrow(refusal);
    expect(() => lockDataDir(lockFile, "d")).toThrow(refusal); // and again: the empty LOCK left by the first refusal changes nothing
    first.release();
    lockDataDir(lockFile, "d").release();
  });

  it("holds LOCK alone, saying why, where the directory cannot be flocked (NFS), and still refuses a second holder", () => {
    const dir = tempDir();
    // As on NFS: an exclusive flock needs a descriptor open for writing, which a directory cannot be.
    const nfsLike = join(dir, "nfs-flock");
    writeFileSync(nfsLike, `#!/bin/sh\n[ -d /proc/self/fd/3 ] && { echo "flock: 3: Bad file descriptor" >&2; exit 1; }\nexec flock "$@"\n`, { mode: 0o755 });
    const lockFile = join(dir, "LOCK");
    const first = lockDataDir(lockFile, "d", { flockProgram: nfsLike });
    expect(first.kind).toBe("flock");
    expect(first.directoryUnlocked).toBe("cannot lock " + dir + " with flock: flock: 3: Bad file descriptor");
    expect(() => lockDataDir(lockFile, "d", { flockProgram: nfsLike })).toThrow(DataDirInUseError);
    first.release();
    const second = lockDataDir(lockFile, "d");
    expect(second.directoryUnlocked).toBe(null);
    second.release();
  });

  it("leaves nothing locked when it fails part way", () => {
    const root = tempDir();
    const lockFile = join(root, "LOCK");
    mkdirSync(lockFile); // EISDIR when opened for writing
    expect(() => lockDataDir(lockFile, "d")).toThrow(/EISDIR/);
    rmdirSync(lockFile);
    // Refused after both flocks are taken: a running holder that has no flock (pid 1 always runs).
    writeFileSync(lockFile, "1 pid-file\n");
    expect(() => lockDataDir(lockFile, "d")).toThrow(/started without flock/);
    writeFileSync(lockFile, "");
    lockDataDir(lockFile, "d").release(); // neither lock was left behind
  });

  it("refuses while another process holds the directory's flock, and takes it once that process is killed", async () => {
    const root = tempDir();
    const holder = await holdElsewhere(root);
    expect(() => lockDataDir(join(root, "LOCK"), "d")).toThrow(DataDirInUseError);
    killGroup(holder, "SIGKILL");
    await exited(holder);
    lockDataDir(join(root, "LOCK"), "d").release();
  });

  it("takes over a LOCK that names a running process but is not locked", () => {
    const lockFile = join(tempDir(), "LOCK");
    writeFileSync(lockFile, "1\n"); // pid 1 always runs, but holds no flock here
    const taken = lockDataDir(lockFile, "d");
    expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid}\n`);
    taken.release();
  });

  it("works with a flock that knows only -n, -x and a descriptor (BusyBox's)", () => {
    const dir = tempDir();
    const busybox = join(dir, "busybox-flock");
    // Rejects everything but the shared short options, then locks as the real one would.
    writeFileSync(busybox, `#!/bin/sh\n[ "$*" = "-n -x 3" ] || { echo "flock: unrecognized option '$1'" >&2; exit 1; }\nexec flock "$@"\n`, { mode: 0o755 });
    const lockFile = join(dir, "LOCK");
    const first = lockDataDir(lockFile, "d", { flockProgram: busybox });
    expect(first.kind).toBe("flock");
    expect(() => lockDataDir(lockFile, "d", { flockProgram: busybox })).toThrow(DataDirInUseError);
    first.release();
    lockDataDir(lockFile, "d", { flockProgram: busybox }).release();
  });

  it("reports a flock failure that is not a conflict instead of starting unlocked", () => {
    const dir = tempDir();
    const script = join(dir, "broken-flock");
    writeFileSync(script, "#!/bin/sh\necho 'flock: bad descriptor' >&2\nexit 1\n", { mode: 0o755 });
    expect(() => lockDataDir(join(dir, "LOCK"), "d", { flockProgram: script })).toThrow(/cannot lock .*LOCK with flock: flock: bad descriptor/);
  });
});

describe("one lockd per data directory (pid-file fallback without flock)", () => {
  const noFlock = { flockProgram: "/nonexistent/flock" };

  it("refuses a second holder while the first is alive, and takes over a stale lock", () => {
    const lockFile = join(tempDir(), "LOCK");
    const held = lockDataDir(lockFile, "d", noFlock);
    expect(held.kind).toBe("pid-file");
    writeFileSync(lockFile, "1\n"); // pid 1 is always running
    expect(() => lockDataDir(lockFile, "d", noFlock)).toThrow(/in use by another lockd \(pid 1\)/);
    writeFileSync(lockFile, "999999999\n"); // no such process: stale
    const taken = lockDataDir(lockFile, "d", noFlock);
    expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid} pid-file\n`);
    taken.release();
    expect(existsSync(lockFile)).toBe(false);
    held.release();
  });

  it("takes over from a holder that has exited but not been reaped yet (a zombie)", async () => {
    // The shell becomes `sleep 30` before the short sleep ends, so that one's parent never collects
    // it. (A child that ended before the exec could be collected by the shell itself.)
    const parent = spawn("/bin/sh", ["-c", "sleep 0.2 & echo $!; exec sleep 30"], { stdio: ["ignore", "pipe", "ignore"] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout!.once("data", (text: Buffer) => resolve(text.toString()))));
      const state = () => {
        const stat = readFileSync(`/proc/${zombie}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      };
      for (let tries = 0; tries < 500 && state() !== "Z"; tries++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(state()).toBe("Z");
      const lockFile = join(tempDir(), "LOCK");
      writeFileSync(lockFile, `${zombie} pid-file\n`);
      const taken = lockDataDir(lockFile, "d", noFlock);
      expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid} pid-file\n`);
      taken.release();
    } finally {
      parent.kill("SIGKILL");
    }
  });

  it("is seen by a lockd that has flock: it refuses while the holder without flock runs, and takes over after", () => {
    const lockFile = join(tempDir(), "LOCK");
    writeFileSync(lockFile, "1 pid-file\n"); // a lockd started without flock, still running (pid 1 always is)
    expect(() => lockDataDir(lockFile, "d")).toThrow(/in use by another lockd \(pid 1, started without flock\)/);
    writeFileSync(lockFile, "999999999 pid-file\n"); // that lockd is gone
    const taken = lockDataDir(lockFile, "d");
    expect(taken.kind).toBe("flock");
    expect(readFileSync(lockFile, "utf8")).toBe(`${process.pid}\n`);
    taken.release();
  });
});
