/**
 * Reads log segments for a replay (recovery, compaction) into one buffer reused from read to read.
 * A fresh buffer per read would fault in every page of it again and, as external memory, push V8
 * into extra garbage collections during the replay.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

/** Window through which a file is checked for zeros: the bytes checked never land in the big buffer. */
const ZERO_CHECK_BYTES = 256 << 10;

export class SegmentReader {
  private buffer = Buffer.alloc(0);
  private zeroCheck: { readonly window: Buffer; readonly zeros: Buffer } | null = null;
  /** Bytes of segments read into memory so far (zero checks not counted). */
  bytesRead = 0;

  /** The size of the buffer reads land in: the most of the log held in memory at once. */
  get bufferBytes(): number {
    return this.buffer.length;
  }

  /**
   * Up to `limit` bytes of the file from offset `from` (all of it by default; fewer where the file
   * ends), valid until the next read.
   */
  read(path: string, limit = Number.POSITIVE_INFINITY, from = 0): Buffer {
    const fd = openSync(path, "r");
    try {
      const size = Math.max(0, Math.min(limit, fstatSync(fd).size - from));
      if (size > this.buffer.length) this.buffer = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, this.buffer, done, size - done, from + done);
        if (n === 0) break; // the file shrank since fstat: what was read is the file
        done += n;
      }
      this.bytesRead += done;
      return this.buffer.subarray(0, done);
    } finally {
      closeSync(fd);
    }
  }

  /** Whether every byte of the file from `from` on is zero, read through a small window. */
  zerosFrom(path: string, from: number): boolean {
    this.zeroCheck ??= { window: Buffer.allocUnsafe(ZERO_CHECK_BYTES), zeros: Buffer.alloc(ZERO_CHECK_BYTES) };
    const { window, zeros } = this.zeroCheck;
    const fd = openSync(path, "r");
    try {
      for (let at = from; ; ) {
        const n = readSync(fd, window, 0, window.length, at);
        if (n === 0) return true;
        if (window.compare(zeros, 0, n, 0, n) !== 0) return false;
        at += n;
      }
    } finally {
      closeSync(fd);
    }
  }
}
