/**
 * A fault-injecting LogFileOpener over real files: each fault is armed by the test and fires once on
 * the next matching call. Faults: a short write (only part of the bytes), a torn write (part of the
 * bytes reach the file, then the write fails), a failing fsync (at once, or after later syncs have
 * returned), and ENOSPC.
 */
import { nodeLogFiles, type LogFile, type LogFileOpener } from "../../src/storage/log-file.js";

export type Fault =
  | { readonly kind: "short-write"; readonly bytes: number }
  | { readonly kind: "torn-write"; readonly bytes: number }
  | { readonly kind: "fsync-fails" }
  /** The next thread-pool sync reports EIO only after `afterMs`, so later syncs return before it. */
  | { readonly kind: "fsync-fails-late"; readonly afterMs: number }
  | { readonly kind: "enospc" };

function errno(code: string, message: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${code}: ${message}`);
  error.code = code;
  return error;
}

export class FaultyFiles implements LogFileOpener {
  private armed: Fault[] = [];
  writes = 0;
  syncs = 0;
  /** Of `syncs`: those made on the calling thread (syncNow) rather than on the thread pool (sync). */
  inlineSyncs = 0;

  arm(fault: Fault): void {
    this.armed.push(fault);
  }

  syncExisting(path: string): void {
    this.syncs++;
    nodeLogFiles.syncExisting(path);
  }

  rewriteExisting(path: string, from: number, to: number): void {
    this.syncs++;
    nodeLogFiles.rewriteExisting(path, from, to);
  }

  open(path: string, create: boolean): LogFile {
    const real = nodeLogFiles.open(path, create);
    const take = (kinds: Fault["kind"][]): Fault | undefined => {
      const at = this.armed.findIndex((fault) => kinds.includes(fault.kind));
      return at < 0 ? undefined : this.armed.splice(at, 1)[0];
    };
    return {
      write: (bytes, position) => {
        this.writes++;
        const fault = take(["short-write", "torn-write", "enospc"]);
        if (fault === undefined) return real.write(bytes, position);
        if (fault.kind === "enospc") throw errno("ENOSPC", "no space left on device");
        if (fault.kind === "fsync-fails" || fault.kind === "fsync-fails-late") throw new Error("unreachable: fsync faults are taken by sync()");
        const written = real.write(bytes.subarray(0, Math.min(fault.bytes, bytes.length)), position);
        if (fault.kind === "torn-write") throw errno("EIO", "i/o error");
        return written;
      },
      sync: (done) => {
        this.syncs++;
        const fault = take(["fsync-fails", "fsync-fails-late"]);
        if (fault?.kind === "fsync-fails-late") return setTimeout(done, fault.afterMs, errno("EIO", "fsync failed"));
        if (fault !== undefined) return setImmediate(done, errno("EIO", "fsync failed"));
        real.sync(done);
      },
      syncNow: () => {
        this.syncs++;
        this.inlineSyncs++;
        if (take(["fsync-fails"]) !== undefined) throw errno("EIO", "fsync failed");
        real.syncNow();
      },
      close: () => real.close(),
    };
  }
}
