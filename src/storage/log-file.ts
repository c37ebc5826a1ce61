/**
 * The one file operation seam on the durable hot path: positional writes and fdatasync on a segment.
 * Production uses node:fs; tests substitute a fault-injecting implementation (torn and short writes,
 * failing fsync, ENOSPC) without touching the log's logic.
 */
import { closeSync, fdatasync, fsyncSync, openSync, write } from "node:fs";

export interface LogFile {
  /** Writes `bytes` at `position`; may write fewer bytes than asked (the caller continues). */
  write(bytes: Buffer, position: number, done: (error: NodeJS.ErrnoException | null, written: number) => void): void;
  /** Makes every byte written so far durable. */
  sync(done: (error: NodeJS.ErrnoException | null) => void): void;
  close(): void;
}

export interface LogFileOpener {
  /** Opens (creating it if asked) a segment file for writing at explicit positions. */
  open(path: string, create: boolean): LogFile;
}

export class NodeLogFile implements LogFile {
  constructor(private readonly fd: number) {}

  write(bytes: Buffer, position: number, done: (error: NodeJS.ErrnoException | null, written: number) => void): void {
    write(this.fd, bytes, 0, bytes.length, position, done);
  }

  sync(done: (error: NodeJS.ErrnoException | null) => void): void {
    fdatasync(this.fd, done);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export const nodeLogFiles: LogFileOpener = {
  open(path, create) {
    return new NodeLogFile(openSync(path, create ? "wx" : "r+"));
  },
};

/** fsync a directory so a file created, renamed or deleted in it survives power loss. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
