/**
 * Reads log segments whole, for a replay (recovery, compaction), into one buffer reused from segment
 * to segment. A fresh buffer per segment (32 MiB by default) would fault in every page of it again
 * and, as external memory, push V8 into extra garbage collections during the replay.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";

export class SegmentReader {
  private buffer = Buffer.alloc(0);

  /** The file's bytes, valid until the next read. */
  read(path: string): Buffer {
    const fd = openSync(path, "r");
    try {
      const size = fstatSync(fd).size;
      if (size > this.buffer.length) this.buffer = Buffer.allocUnsafe(size);
      let done = 0;
      while (done < size) {
        const n = readSync(fd, this.buffer, done, size - done, done);
        if (n === 0) break; // the file shrank since fstat: what was read is the file
        done += n;
      }
      return this.buffer.subarray(0, done);
    } finally {
      closeSync(fd);
    }
  }
}
