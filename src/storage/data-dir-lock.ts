/**
 * One lockd per data directory. The LOCK file holds the owner's pid and is created exclusively; a
 * LOCK whose pid is no longer running was left by a killed process and is taken over.
 */
import { readFileSync, unlinkSync, writeFileSync } from "node:fs";

export class DataDirInUseError extends Error {
  readonly code = "DATA_DIR_IN_USE";
}

export interface DataDirLock {
  release(): void;
}

export function lockDataDir(lockFile: string, dirForMessages: string): DataDirLock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, `${process.pid}\n`, { flag: "wx" });
      return {
        release() {
          try {
            if (readFileSync(lockFile, "utf8").trim() === String(process.pid)) unlinkSync(lockFile);
          } catch {
            // already gone: nothing to release
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = readHolder(lockFile);
    if (holder !== null && holder !== process.pid && isRunning(holder)) {
      throw new DataDirInUseError(
        `data directory ${dirForMessages} is in use by another lockd (pid ${holder}); ` +
          `stop it, or use another --data. If no lockd uses it, delete ${lockFile}.`,
      );
    }
    // Stale: its process is gone. Remove it and race for it once more.
    try {
      unlinkSync(lockFile);
    } catch {
      // someone else removed it first
    }
  }
  throw new DataDirInUseError(`data directory ${dirForMessages} is being locked by another lockd starting at the same time`);
}

function readHolder(lockFile: string): number | null {
  try {
    const pid = Number(readFileSync(lockFile, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
