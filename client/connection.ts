/**
 * One TCP connection to one endpoint, pipelined: frames are written as requests come, replies are
 * matched to them in order (ReplyMatcher). It dials lazily and again after a break; the caller's retry
 * loop paces reconnects. A request that times out keeps its slot (its late reply is dropped); if
 * nothing at all arrived since it was written, the connection is presumed dead and destroyed, so
 * a half-open socket (peer crashed, cable pulled) cannot swallow every retry.
 */
import { connect, type Socket } from "node:net";
import type { Response } from "../src/protocol/index.js";
import { onAbort } from "./abort-listeners.js";
import { timerDelay } from "./backoff.js";
import { ClientClosedError, ConnectionError, ProtocolError, RequestAbortedError, RequestTimeoutError, type BatonError } from "./errors.js";
import type { MonotonicClock } from "./clock.js";
import { endpointLabel, type Endpoint } from "./endpoints.js";
import { Fifo } from "./fifo.js";
import { ReceiveResult, ReplyMatcher, type PendingReply } from "./reply-matcher.js";

export interface ConnectionOptions {
  readonly connectTimeoutMs: number;
  /** Requests written and unanswered at most; more wait in a local queue (the server stops reading beyond its own limit anyway). */
  readonly maxInFlight: number;
  readonly clock: MonotonicClock;
  readonly onOpen: (connection: Connection) => void;
  readonly onClose: (connection: Connection, error: Error | undefined) => void;
}

interface Pending extends PendingReply {
  frame: Buffer;
  /** Monotonic time the frame was handed to the socket; -1 while it waits for room in the pipeline. */
  sentAtMs: number;
  fail(error: BatonError): void;
}

const KEEPALIVE_DELAY_MS = 10_000;

/**
 * A dial unanswered this long has most likely lost its SYN (a network path down, a server's full
 * accept queue), which the kernel sends again only a second or more later: a caller that comes
 * after it starts a fresh dial beside it, so a path that healed or a server that is back is reached
 * at once. The first dial to connect is kept. Callers come at the pace of their retries' backoff, so
 * dials start at most this often, and at most MAX_DIALS run at once (each one's SYN is sent again by
 * the kernel, to a server whose queue may be full).
 */
const REDIAL_AFTER_MS = 300;
const MAX_DIALS = 3;

interface SharedDial {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: BatonError): void;
}

export class Connection {
  readonly label: string;
  private socket: Socket | undefined;
  private matcher = new ReplyMatcher();
  private readonly waiting = new Fifo<Pending>();
  /** What every caller waiting to be connected waits on: settled by the first dial to connect, or once every dial has failed. */
  private dialing: SharedDial | undefined;
  /** Dials in progress, each with the function that gives it up. */
  private readonly dials = new Map<Socket, (error: BatonError) => void>();
  private lastDialStartMs = -Infinity;
  private lastReceiveMs = -Infinity;
  private corked = false;
  private closed = false;
  /** Sockets given up for silence (reset by us), so their close reports why. */
  private readonly presumedDead = new WeakSet<Socket>();

  constructor(
    readonly endpoint: Endpoint,
    private readonly options: ConnectionOptions,
  ) {
    this.label = endpointLabel(endpoint);
  }

  get isOpen(): boolean {
    return this.socket !== undefined;
  }

  /**
   * Resolves once connected (dialing if needed; concurrent callers share the dials; see
   * REDIAL_AFTER_MS for when a caller starts another beside a dial in progress). A caller that
   * gives `waitMs` stops waiting after that long, with a ConnectionError; the dial itself goes on,
   * for the others, up to the connect timeout.
   */
  open(signal?: AbortSignal, waitMs?: number): Promise<void> {
    if (this.closed) return Promise.reject(new ClientClosedError());
    if (this.socket !== undefined) return Promise.resolve();
    // Checked before a dial starts: one started for a caller already gone would have nobody to hear
    // its failure (an unhandled rejection, when close() cancels it).
    if (signal?.aborted) return Promise.reject(new RequestAbortedError(signal.reason));
    this.dialing ??= sharedDial();
    const dialing = this.dialing.promise;
    const stale = this.dials.size < MAX_DIALS && this.options.clock() - this.lastDialStartMs >= REDIAL_AFTER_MS;
    if (this.dials.size === 0 || stale) this.dial();
    // Each caller waits at most the connect timeout from its own call: the shared outcome fails only
    // once every dial has, and dials started for later callers would otherwise keep it pending (and a
    // request from moving on to another endpoint) for as long as calls keep coming.
    const connectTimeoutMs = this.options.connectTimeoutMs;
    const timeout =
      waitMs !== undefined && waitMs < connectTimeoutMs
        ? { ms: waitMs, error: () => new ConnectionError(this.label, `not connected within ${waitMs} ms`) }
        : { ms: connectTimeoutMs, error: () => this.connectTimedOut() };
    return waitFor(dialing, signal, timeout);
  }

  /**
   * Sends one frame and resolves with its reply. Rejects with RequestTimeoutError after `timeoutMs`,
   * RequestAbortedError when `signal` fires, ConnectionError when the connection breaks first.
   */
  request(frame: Buffer, timeoutMs: number, signal?: AbortSignal): Promise<Response> {
    return new Promise<Response>((resolve, reject) => {
      if (this.closed) return reject(new ClientClosedError());
      if (this.socket === undefined) return reject(new ConnectionError(this.label, "not connected"));
      if (signal?.aborted) return reject(new RequestAbortedError(signal.reason));
      let done = false;
      const finish = () => {
        done = true;
        clearTimeout(timer);
        stopWaitingForAbort?.();
      };
      const pending: Pending = {
        frame,
        sentAtMs: -1,
        abandoned: false,
        settle: (response) => {
          if (done) return;
          finish();
          resolve(response);
        },
        fail: (error) => {
          if (done) return;
          finish();
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        // Timers run before the event loop polls its sockets: after the process was busy (a long
        // task, a GC pause), a reply may already be in the kernel. It is read first; only a request
        // still unanswered then times out, and only then can its connection be presumed dead.
        setImmediate(() => {
          if (done) return;
          pending.abandoned = true;
          pending.fail(new RequestTimeoutError(this.label, timeoutMs));
          this.suspectDead(pending);
        });
      }, timerDelay(timeoutMs));
      const stopWaitingForAbort =
        signal &&
        onAbort(signal, () => {
          pending.abandoned = true;
          pending.fail(new RequestAbortedError(signal.reason));
        });
      if (this.matcher.inFlight < this.options.maxInFlight && this.waiting.length === 0) this.write(pending);
      else this.waiting.push(pending);
    });
  }

  /**
   * Closes for good: every request waiting on it fails with ClientClosedError. With requests still
   * unanswered the connection is reset, not closed: a FIN would leave the kernel delivering what it
   * had not sent yet, a request given up that could run later (protocol.md §1).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const giveUp of [...this.dials.values()]) giveUp(new ClientClosedError());
    if (this.matcher.inFlight > 0) this.socket?.resetAndDestroy();
    else this.socket?.destroy();
  }

  private connectTimedOut(): ConnectionError {
    return new ConnectionError(this.label, `connect timed out after ${this.options.connectTimeoutMs} ms`);
  }

  /** Starts one more dial; the first of them to connect settles `dialing`, and the others are given up. */
  private dial(): void {
    this.lastDialStartMs = this.options.clock();
    const socket = connect({ host: this.endpoint.host, port: this.endpoint.port, noDelay: true });
    const giveUp = (error: BatonError): void => {
      clearTimeout(timer);
      this.dials.delete(socket);
      socket.destroy();
      // The last dial failed and none connected: every caller hears why.
      if (this.dials.size === 0 && this.socket === undefined) {
        const dialing = this.dialing;
        this.dialing = undefined;
        dialing?.reject(error);
      }
    };
    const timer = setTimeout(
      () => giveUp(this.connectTimedOut()),
      timerDelay(this.options.connectTimeoutMs),
    );
    this.dials.set(socket, giveUp);
    socket.once("error", (error) => giveUp(new ConnectionError(this.label, `connect failed: ${connectFailure(error)}`, { cause: error })));
    socket.once("connect", () => {
      clearTimeout(timer);
      this.dials.delete(socket);
      socket.removeAllListeners("error");
      if (this.socket !== undefined || this.closed) {
        socket.destroy(); // another dial connected first
        return;
      }
      this.adopt(socket);
      for (const other of [...this.dials.values()]) other(new ConnectionError(this.label, "another dial connected first"));
      const dialing = this.dialing;
      this.dialing = undefined;
      dialing?.resolve();
    });
  }

  private adopt(socket: Socket): void {
    socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    this.socket = socket;
    this.matcher = new ReplyMatcher();
    let lastError: Error | undefined;
    socket.on("data", (chunk: Buffer) => {
      this.lastReceiveMs = this.options.clock();
      if (this.matcher.receive(chunk) === ReceiveResult.Unsolicited) {
        socket.destroy(new ProtocolError(`${this.label} sent a reply to no request`));
        return;
      }
      this.writeWaiting();
    });
    socket.on("error", (error) => (lastError = error));
    socket.on("close", () => this.onSocketClose(socket, lastError));
    this.options.onOpen(this);
  }

  private onSocketClose(socket: Socket, closeError: Error | undefined): void {
    if (this.socket !== socket) return;
    const error = this.presumedDead.has(socket) ? new Error("no reply within the request timeout; connection presumed dead") : closeError;
    this.socket = undefined;
    this.corked = false;
    const failure = () =>
      this.closed ? new ClientClosedError() : new ConnectionError(this.label, error ? `connection lost: ${error.message}` : "connection closed by the server", { cause: error });
    for (const pending of this.matcher.takeWaiting() as Pending[]) pending.fail(failure());
    for (const pending of this.waiting.drain()) pending.fail(failure());
    this.options.onClose(this, error);
  }

  private write(pending: Pending): void {
    const socket = this.socket!;
    pending.sentAtMs = this.options.clock();
    this.matcher.expect(pending);
    // Frames written in one tick leave in one segment.
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    socket.write(pending.frame);
  }

  private writeWaiting(): void {
    while (this.waiting.length > 0 && this.matcher.inFlight < this.options.maxInFlight && this.socket !== undefined) {
      const pending = this.waiting.shift()!;
      if (!pending.abandoned) this.write(pending);
    }
  }

  /**
   * A request timed out: if the socket has been silent ever since it was written, give the socket up.
   * Reset, not closed: a close leaves what the kernel has not delivered yet to be sent whenever the
   * network lets it through, after the request's retries; a lease's RELEASE arriving that late could
   * end a newer lease of the same owner.
   */
  private suspectDead(pending: Pending): void {
    if (pending.sentAtMs < 0 || this.socket === undefined) return;
    if (this.lastReceiveMs < pending.sentAtMs) {
      const socket = this.socket;
      this.presumedDead.add(socket);
      socket.resetAndDestroy();
      // Given up now, not when its close event comes: a request made meanwhile dials afresh
      // instead of failing on the dying socket (and moving on to another endpoint).
      this.onSocketClose(socket, undefined);
    }
  }
}

/** `promise`, unless `signal` aborts or `timeout.ms` passes first (then its error). */
function waitFor<T>(promise: Promise<T>, signal: AbortSignal | undefined, timeout: { ms: number; error: () => BatonError }): Promise<T> {
  if (signal?.aborted) return Promise.reject(new RequestAbortedError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const stop = () => {
      clearTimeout(timer);
      stopWaitingForAbort?.();
    };
    const timer = setTimeout(() => {
      stop();
      reject(timeout.error());
    }, timerDelay(timeout.ms));
    const stopWaitingForAbort =
      signal &&
      onAbort(signal, () => {
        stop();
        reject(new RequestAbortedError(signal.reason));
      });
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error);
      },
    );
  });
}

function sharedDial(): SharedDial {
  let resolve!: () => void;
  let reject!: (error: BatonError) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Every caller may have stopped waiting (its own timeout) by the time the last dial fails.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * What a failed dial most likely means, for the message: a refusal is nothing listening there; a
 * table of descriptors that is full is this process's (or this machine's) limit, not the server
 * failing, and Node's " - Local (undefined:undefined)" after it says nothing.
 */
function connectFailure(error: NodeJS.ErrnoException): string {
  const message = error.message.replace(/ - Local \([^)]*\)$/, "");
  switch (error.code) {
    case "ECONNREFUSED":
      return `${message} (nothing listens there: is lockd running, and is this its --listen address?)`;
    case "EMFILE":
      return `this process ran out of file descriptors (EMFILE: its open-file limit, ulimit -n, is reached; the server was not reached): raise the limit or open fewer connections`;
    case "ENFILE":
      return `this machine ran out of file descriptors (ENFILE: the system's open-file table is full; the server was not reached)`;
    default:
      return message;
  }
}
