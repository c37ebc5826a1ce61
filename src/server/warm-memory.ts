/**
 * Table memory whose pages are allocated on another thread before the tables take it.
 *
 * The request-id table grows by ~60 bytes per change until its dedupe window is full. Each new
 * 4 KiB page costs a page fault on its first write, and on a virtual machine a fault costs several
 * microseconds (8-12 µs on this project's VM): at full load that was ~12,000 faults a second on the
 * event loop, which executes every command. Here a worker thread writes every page of buffers of the
 * sizes the tables ask for, ahead of time, and the tables take those: the faults happen on the other
 * core, in parallel with serving.
 *
 * The tables ask for the same few chunk sizes over and over; each is kept in stock (STOCK_PER_SIZE
 * buffers written and waiting). A doubling index table is a one-off: the index says so in advance
 * (`expect`), and exactly one buffer of that size is prepared. A take that finds no prepared buffer
 * gets a fresh one, as it would without this class. Buffers are SharedArrayBuffers, the only memory
 * two threads can both write. (Moving ArrayBuffers over instead, by transfer, would let an outgrown
 * table be freed without waiting for the worker's garbage collection, but measured slower: 6 of 6
 * alternating runs at c=50 P=16 in memory went to the build before.) A buffer a table lets go is
 * therefore freed once both threads have collected it.
 */
import { MessageChannel, type MessagePort, Worker, receiveMessageOnPort } from "node:worker_threads";
import type { TableMemory } from "../core/table-memory.js";
import type { Logger } from "../logging/logger.js";

/** Prepared buffers kept per recurring size: a request-id chunk's arrays fill in ~0.1 s at full speed. */
const STOCK_PER_SIZE = 2;

export class WarmMemory implements TableMemory {
  private readonly ready = new Map<number, SharedArrayBuffer[]>();
  private readonly pending = new Map<number, number>();
  /** Sizes announced with `expect` and not taken yet: prepared once, not restocked. */
  private readonly oneOffSizes = new Set<number>();
  /**
   * One-off buffers taken before they were ready (a table filling faster than the worker writes, as
   * in recovery): dropped when they arrive, where kept they would hold their memory for good.
   */
  private readonly late = new Map<number, number>();
  private readonly worker: Worker;
  /**
   * Where the worker sends written buffers. Read with `receiveMessageOnPort`, not events: recovery
   * fills the tables in one synchronous run, during which no event would be delivered, and is where
   * the most pages are written first.
   */
  private readonly written: MessagePort;
  private failed = false;

  constructor(logger: Logger, workerScript: URL = new URL("./page-writer-worker.js", import.meta.url)) {
    const { port1, port2 } = new MessageChannel();
    this.written = port1;
    this.worker = new Worker(workerScript, { workerData: { written: port2 }, transferList: [port2] });
    this.worker.unref(); // never what keeps lockd running
    this.worker.on("error", (error) => {
      // Only speed depends on it: the tables take fresh buffers from now on.
      this.failed = true;
      logger.warn(`the page-writing thread failed (${error.message}); table memory is allocated on first use from now on`);
    });
  }

  take(bytes: number): ArrayBuffer | SharedArrayBuffer {
    this.collectWritten();
    const prepared = this.readyOf(bytes).pop();
    this.restock(bytes, STOCK_PER_SIZE);
    return prepared ?? new SharedArrayBuffer(bytes);
  }

  takeOnce(bytes: number): ArrayBuffer | SharedArrayBuffer {
    this.collectWritten();
    const prepared = this.readyOf(bytes).pop();
    if (this.oneOffSizes.delete(bytes) && prepared === undefined && (this.pending.get(bytes) ?? 0) > 0) {
      this.late.set(bytes, (this.late.get(bytes) ?? 0) + 1);
    }
    return prepared ?? new ArrayBuffer(bytes);
  }

  expect(bytes: number): void {
    this.oneOffSizes.add(bytes);
    this.restock(bytes, 1);
  }

  /** Prepared buffers of `bytes` waiting to be taken. */
  stocked(bytes: number): number {
    this.collectWritten();
    return this.readyOf(bytes).length;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
    this.written.close();
  }

  /** Moves the buffers the worker has sent so far into the stock. */
  private collectWritten(): void {
    for (let received = receiveMessageOnPort(this.written); received !== undefined; received = receiveMessageOnPort(this.written)) {
      const buffer = received.message as SharedArrayBuffer;
      const size = buffer.byteLength;
      this.pending.set(size, (this.pending.get(size) ?? 1) - 1);
      const late = this.late.get(size) ?? 0;
      if (late > 0) this.late.set(size, late - 1);
      else this.readyOf(size).push(buffer);
    }
  }

  private restock(bytes: number, target: number): void {
    if (this.failed) return;
    let stocked = this.readyOf(bytes).length + (this.pending.get(bytes) ?? 0);
    for (; stocked < target; stocked++) {
      this.pending.set(bytes, (this.pending.get(bytes) ?? 0) + 1);
      this.worker.postMessage(bytes);
    }
  }

  private readyOf(bytes: number): SharedArrayBuffer[] {
    let ready = this.ready.get(bytes);
    if (ready === undefined) this.ready.set(bytes, (ready = []));
    return ready;
  }
}
