/**
 * The file operation seam on the durable hot path: positional writes and fdatasync on a segment.
 * Production uses node:fs; tests substitute a fault-injecting implementation (torn and short writes,
 * failing fsync, ENOSPC) without touching the log's logic.
 *
 * Writes are synchronous: a batch lands in the page cache in microseconds, and doing it inline saves a
 * thread-pool round trip per batch. The fdatasync, which waits for the device, is asynchronous so the
 * next batch is read and executed while the disk works.
 */
import { closeSync, fdatasync, fdatasyncSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";

export interface LogFile {
  /** Writes `bytes` at `position`; returns how many were written (possibly fewer). Throws on error. */
  write(bytes: Buffer, position: number): number;
  /** Makes every byte written so far durable, on the thread pool. */
  sync(done: (error: NodeJS.ErrnoException | null) => void): void;
  /** The same, blocking the caller: cheaper for one small batch than a thread-pool round trip. */
  syncNow(): void;
  close(): void;
}

export interface LogFileOpener {
  /** Opens a segment file for writing at explicit positions, creating it (exclusively) if asked. */
  open(path: string, create: boolean): LogFile;
  /** Makes an existing segment's bytes durable, through a read-only descriptor: for recovery. */
  syncExisting(path: string): void;
  /**
   * Writes bytes `from` to `to` of an existing segment again, as they read now, and makes them
   * durable: for recovery, where they may be pages whose writeback failed. Linux marks those clean
   * and keeps them cached, so a sync alone would write nothing, and the file would read them until
   * the cache dropped them.
   */
  rewriteExisting(path: string, from: number, to: number): void;
}

export class NodeLogFile implements LogFile {
  constructor(private readonly fd: number) {}

  write(bytes: Buffer, position: number): number {
    return writeSync(this.fd, bytes, 0, bytes.length, position);
  }

  sync(done: (error: NodeJS.ErrnoException | null) => void): void {
    fdatasync(this.fd, done);
  }

  syncNow(): void {
    fdatasyncSync(this.fd);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export const nodeLogFiles: LogFileOpener = {
  open(path, create) {
    return new NodeLogFile(openSync(path, create ? "wx" : "r+"));
  },
  syncExisting(path) {
    syncThroughDescriptor(path, fdatasyncSync);
  },
  rewriteExisting(path, from, to) {
    const fd = openSync(path, "r+");
    try {
      const chunk = Buffer.allocUnsafe(Math.min(REWRITE_CHUNK_BYTES, Math.max(1, to - from)));
      for (let at = from; at < to; ) {
        const read = readSync(fd, chunk, 0, Math.min(chunk.length, to - at), at);
        if (read === 0) throw new Error(`${path} ends at ${at}, before ${to}`);
        for (let written = 0; written < read; ) written += writeSync(fd, chunk, written, read - written, at + written);
        at += read;
      }
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
  },
};

const REWRITE_CHUNK_BYTES = 1 << 20;

/** `syncDirectory` on the thread pool, for work that must not hold up the event loop. */
export async function syncDirectoryAsync(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync a directory so a file created, renamed or deleted in it survives power loss. */
export function syncDirectory(dir: string): void {
  syncThroughDescriptor(dir, fsyncSync);
}

/** Opens `path` read-only (enough for either sync), syncs it with `sync`, and closes it. */
function syncThroughDescriptor(path: string, sync: (fd: number) => void): void {
  const fd = openSync(path, "r");
  try {
    sync(fd);
  } finally {
    closeSync(fd);
  }
}
