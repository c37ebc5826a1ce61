/**
 * Stand-ins for the two ends of the commit path, for driving real Connections and the real pipeline
 * without a disk or sockets: logs whose appends complete at once or only when the test says so, and
 * enough of a net.Socket for a Connection.
 */
import { EventEmitter } from "node:events";
import type { AppendResult, CommitLog } from "../../src/log/commit-log.js";
import { readRecord, type RecordHeader } from "../../src/log/record.js";
import type { Response } from "../../src/protocol/index.js";
import { splitAnswers } from "./answers.js";

/** A log that completes each append at once, or fails every one once told to. */
export class ImmediateLog implements CommitLog {
  failing = false;

  append(_records: Buffer, _lastIndex: number, done: (result: AppendResult) => void): void {
    done(this.failing ? { ok: false, error: new Error("disk gone") } : { ok: true });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A log whose appends complete only when the test says so, remembering what each was lent. */
export class DeferredLog implements CommitLog {
  readonly pending: { lent: Buffer; copy: Buffer; done: (result: AppendResult) => void }[] = [];
  reusedEarly = 0;
  completed = 0;

  append(records: Buffer, _lastIndex: number, done: (result: AppendResult) => void): void {
    this.pending.push({ lent: records, copy: Buffer.from(records), done });
  }

  /** The records of the n-th pending append, in order, each with where its entries start in `bytes`. */
  records(n: number): { readonly header: RecordHeader; readonly entriesAt: number; readonly bytes: Buffer }[] {
    const bytes = this.pending[n]!.copy;
    const found = [];
    for (let at = 0; at < bytes.length; ) {
      const scan = readRecord(bytes, at);
      if (scan.kind !== "record") throw new Error(`no record at ${at}: ${scan.kind}`);
      found.push({ header: scan.header, entriesAt: scan.entriesAt, bytes });
      at = scan.end;
    }
    return found;
  }

  /** Completes the oldest append, first checking nobody wrote into its bytes meanwhile. */
  completeOldest(): void {
    const append = this.pending.shift()!;
    if (!append.lent.equals(append.copy)) this.reusedEarly++;
    this.completed++;
    append.done({ ok: true });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Enough of a net.Socket for a Connection: requests go in with `emit("data", bytes)`. `copy` is what
 * a write hands over: the kernel copies the bytes during the call, unless `backlog` makes every write
 * wait in user space, holding the buffer, until `drain()`. A write's callback runs on the next tick,
 * as Node's does for a write the kernel took at once.
 */
export class FakeSocket extends EventEmitter {
  destroyed = false;
  writableLength = 0;
  backlog = false;
  paused = false;
  readonly written: { lent: Buffer; copy: Buffer }[] = [];

  setNoDelay(): void {}
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  end(): void {}
  destroy(): void {
    this.destroyed = true;
  }

  /** Every answer written so far, as the client would read them. */
  answers(): Response[] {
    return splitAnswers(Buffer.concat(this.written.map((w) => w.copy)));
  }

  write(bytes: Buffer, callback?: (error?: Error | null) => void): boolean {
    this.written.push({ lent: bytes, copy: Buffer.from(bytes) });
    if (this.backlog) {
      this.writableLength += bytes.length;
      if (callback !== undefined) this.waitingWrites.push(callback);
    } else if (callback !== undefined) {
      process.nextTick(callback);
    }
    return true;
  }

  /** With `backlog`: the client reads everything queued so far, and those writes complete in order. */
  drain(): void {
    this.writableLength = 0;
    for (const callback of this.waitingWrites.splice(0)) callback();
  }

  private readonly waitingWrites: ((error?: Error | null) => void)[] = [];
}
