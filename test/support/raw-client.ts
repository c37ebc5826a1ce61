/**
 * A raw TCP peer for integration tests: writes bytes exactly as given and collects reply bytes.
 */
import { connect, type Socket } from "node:net";

export class RawClient {
  private received = Buffer.alloc(0);
  private waiters: { bytes: number; resolve: () => void; reject: (error: Error) => void }[] = [];
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.waiters = this.waiters.filter((waiter) => {
        if (this.received.length < waiter.bytes) return true;
        waiter.resolve();
        return false;
      });
    });
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        // Whoever still waits for bytes will not get them.
        for (const waiter of this.waiters.splice(0)) waiter.reject(new Error(`connection closed with ${this.received.length} bytes buffered`));
        resolve();
      }),
    );
    socket.on("error", () => {});
  }

  static open(port: number, host = "127.0.0.1"): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true }, () => resolve(new RawClient(socket)));
      socket.once("error", reject);
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Resolves with the first `count` bytes received (waits until they are there), and consumes them. */
  async read(count: number, timeoutMs = 10_000): Promise<Buffer> {
    if (this.received.length < count) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${count} bytes (have ${this.received.length})`)), timeoutMs);
        if (this.socket.destroyed) return reject(new Error(`connection closed with ${this.received.length} bytes buffered`));
        this.waiters.push({
          bytes: count,
          resolve: () => (clearTimeout(timer), resolve()),
          reject: (error) => (clearTimeout(timer), reject(error)),
        });
      });
    }
    const out = this.received.subarray(0, count);
    this.received = this.received.subarray(count);
    return out;
  }

  /** Bytes received and not yet read. */
  get buffered(): number {
    return this.received.length;
  }

  /** Half-closes: sends FIN, keeps reading. */
  end(): void {
    this.socket.end();
  }

  /** True if the server closed the connection within `timeoutMs`. */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([this.closed.then(() => true), timedOut]);
    clearTimeout(timer);
    return result;
  }

  /** Everything received so far, not consumed. */
  peek(): Buffer {
    return this.received;
  }

  close(): void {
    this.socket.destroy();
  }
}
