/**
 * One lockd per data directory, enforced by the kernel: lockd holds an exclusive flock(2) on
 * DIR/LOCK for its whole life. The lock belongs to the open file description, so the kernel drops it
 * when the process dies in any way (kill -9 included), and it is seen by every process on the host
 * whatever its pid namespace (two containers sharing a volume) and, on NFS, by other hosts.
 *
 * Node has no flock binding, so the `flock` program (util-linux's, or BusyBox's) takes the lock on our
 * descriptor (passed to it as fd 3), which is the shell idiom `exec 9>LOCK; flock -n 9`: the child locks the
 * shared open file description and exits, and the lock stays with the descriptor we keep open.
 *
 * The directory itself is flocked the same way, after LOCK: a LOCK deleted by hand (it looks like a
 * stale pid file) would otherwise let the next lockd lock a new inode while the running one holds the
 * old, and both would write the same log. Where the file system cannot flock a directory (NFS), LOCK
 * alone is held, and lockd warns.
 *
 * A pid in the file is only for messages. Where `flock` is missing, the directory falls back to the
 * pid check (a LOCK whose pid runs in this pid namespace is in use), which cannot see a lockd in
 * another container; lockd warns when it starts that way. Such a holder takes no flock, so it marks
 * its pid (PID_FILE_MARK), and a lockd that does get the flock still refuses while that pid runs:
 * otherwise one started where `flock` is missing and one started where it is present would share
 * the directory.
 */
import { spawnSync } from "node:child_process";
import { closeSync, constants, ftruncateSync, openSync, readFileSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";

export class DataDirInUseError extends Error {
  readonly code = "DATA_DIR_IN_USE";
}

export type DataDirLockKind = "flock" | "pid-file";

export interface DataDirLock {
  /** How the directory is held: "pid-file" cannot see a lockd in another pid namespace. */
  readonly kind: DataDirLockKind;
  /**
   * With "flock": why the directory itself could not be flocked (only LOCK is), or null when it is.
   * Without its lock, a LOCK deleted by hand lets a second lockd in.
   */
  readonly directoryUnlocked?: string | null;
  release(): void;
}

export interface DataDirLockOptions {
  /** The flock(1) program; tests point it at a missing path to exercise the fallback. */
  readonly flockProgram?: string;
}

/**
 * Only the options util-linux's flock and BusyBox's (Alpine) share. Both exit 1 without a word when
 * `-n` finds the lock held, and print a message for every other failure.
 */
const FLOCK_ARGS = ["-n", "-x", "3"];

/** Follows the pid of a holder without flock: `<pid> pid-file`. */
const PID_FILE_MARK = "pid-file";

export function lockDataDir(lockFile: string, dirForMessages: string, options: DataDirLockOptions = {}): DataDirLock {
  const program = options.flockProgram ?? "flock";
  const opened: number[] = [];
  const closeAll = () => {
    for (const fd of opened.splice(0)) closeSync(fd);
  };
  try {
    // LOCK first: it tells whether flock works here at all, and it is what earlier versions lock.
    const fd = openSync(lockFile, constants.O_RDWR | constants.O_CREAT, 0o644);
    opened.push(fd);
    const fileLocked = flockDescriptor(program, fd, lockFile);
    if (fileLocked === "no-flock") {
      closeAll();
      return lockWithPidFile(lockFile, dirForMessages);
    }
    if (fileLocked === "held") throw heldElsewhere(lockFile, dirForMessages);
    const directory = lockDirectory(program, dirname(lockFile), lockFile, dirForMessages);
    if (directory.fd !== null) opened.push(directory.fd);
    const unlocked = runningHolder(lockFile, PID_FILE_MARK);
    if (unlocked !== null) throw inUseByPid(dirForMessages, `pid ${unlocked}, started without flock`, lockFile);
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    // The file is never removed: a process that opened it before the unlink would lock the old inode
    // while the next lockd locks a new one (the directory's lock, where there is one, would still
    // keep them apart).
    return { kind: "flock", directoryUnlocked: directory.unlockedWhy, release: closeAll };
  } catch (error) {
    closeAll();
    throw error;
  }
}

/**
 * The directory's own flock, held through the returned descriptor. A file system whose flock needs a
 * descriptor open for writing (NFS emulates flock with byte-range locks) cannot lock a directory:
 * then `fd` is null and `unlockedWhy` says why, and LOCK alone keeps a second lockd out.
 */
function lockDirectory(program: string, path: string, lockFile: string, dirForMessages: string): { fd: number | null; unlockedWhy: string | null } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  let locked: ReturnType<typeof flockDescriptor>;
  try {
    locked = flockDescriptor(program, fd, path);
  } catch (error) {
    closeSync(fd);
    return { fd: null, unlockedWhy: (error as Error).message };
  }
  if (locked !== "locked") {
    closeSync(fd);
    // "no-flock" cannot happen here: the program just ran for LOCK. LOCK was free and the directory
    // is not: the holder's LOCK was deleted, and the file there now (made by this start, or an
    // earlier refused one) names nobody.
    throw new DataDirInUseError(
      `data directory ${dirForMessages} is in use by another lockd, whose ${lockFile} was deleted while it ran, so its pid is unknown ` +
        `(\`fuser -v ${path}\` names it); stop it, or use another --data`,
    );
  }
  return { fd, unlockedWhy: null };
}

/**
 * Takes an exclusive flock on `fd` through the flock program, without waiting: "held" when another
 * open file holds it, "no-flock" when the program is missing. Any other failure throws.
 */
function flockDescriptor(program: string, fd: number, pathForMessages: string): "locked" | "held" | "no-flock" {
  const result = spawnSync(program, FLOCK_ARGS, {
    stdio: ["ignore", "ignore", "pipe", fd],
    encoding: "utf8",
    timeout: 10_000,
  });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return "no-flock";
  if (result.status === 1 && result.stderr.trim() === "") return "held";
  if (result.status !== 0) {
    const why = result.error?.message ?? (result.stderr.trim() || `exit status ${result.status ?? result.signal}`);
    throw new Error(`cannot lock ${pathForMessages} with flock: ${why}`);
  }
  return "locked";
}

/** The refusal for a directory another lockd holds, naming its pid if LOCK still does. */
function heldElsewhere(lockFile: string, dirForMessages: string): DataDirInUseError {
  const holder = readHolder(lockFile);
  return new DataDirInUseError(
    `data directory ${dirForMessages} is in use by another lockd (${holder === null ? "pid unknown" : `pid ${holder}`}` +
      `, as its own pid namespace numbers it); stop it, or use another --data`,
  );
}

function lockWithPidFile(lockFile: string, dirForMessages: string): DataDirLock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, `${process.pid} ${PID_FILE_MARK}\n`, { flag: "wx" });
      return {
        kind: "pid-file",
        release() {
          try {
            if (readHolder(lockFile, PID_FILE_MARK) === process.pid) unlinkSync(lockFile);
          } catch {
            // already gone: nothing to release
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = runningHolder(lockFile);
    if (holder !== null) throw inUseByPid(dirForMessages, `pid ${holder}`, lockFile);
    // Stale: its process is gone. Remove it and race for it once more.
    try {
      unlinkSync(lockFile);
    } catch {
      // someone else removed it first
    }
  }
  throw new DataDirInUseError(`data directory ${dirForMessages} is being locked by another lockd starting at the same time`);
}

/** The pid a LOCK file names (as readHolder), if it is another process and still runs; else null. */
function runningHolder(lockFile: string, mark?: string): number | null {
  const holder = readHolder(lockFile, mark);
  return holder !== null && holder !== process.pid && isRunning(holder) ? holder : null;
}

/** The refusal for a directory a running pid holds; `holder` says which (in parentheses). */
function inUseByPid(dirForMessages: string, holder: string, lockFile: string): DataDirInUseError {
  return new DataDirInUseError(
    `data directory ${dirForMessages} is in use by another lockd (${holder}); ` +
      `stop it, or use another --data. If no lockd uses it, delete ${lockFile}.`,
  );
}

/** The pid a LOCK file names (only if it carries `mark`, when given), or null. */
function readHolder(lockFile: string, mark?: string): number | null {
  try {
    const [pidText, markText] = readFileSync(lockFile, "utf8").trim().split(" ");
    if (mark !== undefined && markText !== mark) return null;
    const pid = Number(pidText);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/**
 * A process that has exited and waits for its parent to collect its status still takes signals: a
 * lockd killed with -9 under a parent slow to reap it (a container's pid 1 that is not an init)
 * would otherwise hold its directory until reaped. Linux says so in /proc; elsewhere it counts as running.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return false;
  }
}
