/**
 * The TCP shell around the pipeline: accepts connections within the limit, sweeps out connections
 * stuck on half a frame or idle too long, and shuts down gracefully (stop accepting, answer what was
 * read, flush, close).
 */
import { createServer, Server, type AddressInfo, type Socket } from "node:net";
import type { CommitPipeline } from "./commit-pipeline.js";
import type { ServerConfig } from "./config.js";
import { Connection } from "./connection.js";
import { InflightBudget } from "./inflight-budget.js";
import type { CopyListener, ListenerHandle } from "../storage/compaction-launcher.js";
import type { AcceptCopies } from "./listener-copies.js";
import type { Logger } from "../logging/logger.js";

const SWEEP_EVERY_MS = 250;
const CLOSE_GRACE_MS = 2_000;
/** The most one read takes from a socket (libuv's own suggestion for a read buffer). */
const READ_BUFFER_BYTES = 64 * 1024;
/** The kernel's queue of connections not yet accepted. */
const ACCEPT_BACKLOG = 4096;
/**
 * Turns in a row that each accepted a connection, after which connections are taken to be queued
 * and the listening socket's further descriptors are fetched (acceptMoreWhenQueued).
 */
const QUEUED_AFTER_TURNS = 8;
/** How every descriptor of the listening socket accepts: the Connection starts reading, into the shared buffer. */
const ACCEPT_OPTIONS = { allowHalfOpen: true, noDelay: true, pauseOnConnect: true } as const;

/** Connections lockd closed itself since it started, by why; each a counter. */
export interface ClosedConnections {
  /** Refused on arrival: --max-connections were open. */
  overLimit: number;
  /** Held half a frame for --frame-timeout. */
  frameTimeout: number;
  /** Silent with nothing in flight for --idle-timeout. */
  idleTimeout: number;
  /** Took none of their queued answers for --reply-timeout. */
  replyTimeout: number;
}

export class LockServer {
  private readonly server: Server;
  /** Further descriptors of the listening socket, each accepting too (acceptThroughCopies). */
  private readonly copies: Server[] = [];
  private closing = false;
  /** Set by acceptMoreWhenQueued; taken (set to null) when connections are first found queued. */
  private whenQueued: (() => void) | null = null;
  /** A connection was accepted in this turn of the event loop (closeAcceptTurn runs at its end). */
  private acceptTurnOpen = false;
  /** Turns in a row that each accepted a connection, up to the last one that ended (0: it accepted none). */
  private acceptTurnsInARow = 0;
  private readonly connections = new Set<Connection>();
  private readonly sweepTimer: NodeJS.Timeout;
  /** Coarse monotonic time for timeouts, refreshed by the sweep instead of read per packet. */
  private coarseNowMs = performance.now();
  readonly closed: ClosedConnections = { overLimit: 0, frameTimeout: 0, idleTimeout: 0, replyTimeout: 0 };
  /** `closed` as of the last log line about it: each sweep logs what grew since. */
  private readonly logged: ClosedConnections = { ...this.closed };
  /** Every connection reads into this: a chunk is consumed (or copied) before the next read. */
  private readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  /** Requests in flight on all connections together, and the connections waiting for room. */
  readonly inflight: InflightBudget;
  /**
   * Set by `serve`. lockd listens before it logs what a start changes, so that a port it cannot have
   * stops the start with nothing changed, and serves only once those changes are durable. A
   * connection accepted before then is closed unread, like one over the limit: held until serving,
   * it would have its requests run even after its client reset it (the reset is seen only once the
   * bytes before it are read), which a client relies on not to happen.
   */
  private serving = false;

  private constructor(
    private readonly config: ServerConfig,
    private readonly pipeline: CommitPipeline,
    private readonly logger: Logger,
    private readonly connectionLimitText: string,
  ) {
    this.inflight = new InflightBudget(config.maxInflightTotal);
    this.server = createServer(ACCEPT_OPTIONS, this.accept);
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_EVERY_MS);
    this.sweepTimer.unref();
  }

  /**
   * Listens on the configured address; connections are closed unread until `serve`. The refusals of
   * connections over `config.maxConnections` are logged as "`connectionLimitText` reached": by
   * default the flag, or what lowered its value (lockd.ts).
   */
  static listen(
    config: ServerConfig,
    pipeline: CommitPipeline,
    logger: Logger,
    connectionLimitText = `--max-connections ${config.maxConnections}`,
  ): Promise<LockServer> {
    const lockServer = new LockServer(config, pipeline, logger, connectionLimitText);
    return new Promise((resolve, reject) => {
      lockServer.server.once("error", reject);
      lockServer.server.listen({ host: config.host, port: config.port, backlog: ACCEPT_BACKLOG }, () => {
        lockServer.server.off("error", reject);
        lockServer.server.on("error", (error) => logger.error(`listener: ${error.message}`));
        resolve(lockServer);
      });
    });
  }

  private readonly accept = (socket: Socket): void => {
    if (this.whenQueued !== null && !this.acceptTurnOpen) {
      this.acceptTurnOpen = true;
      setImmediate(this.closeAcceptTurn);
    }
    if (!this.serving) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.config.maxConnections) {
      this.closed.overLimit++;
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, this.readBuffer, this.pipeline, this.config, this.inflight, () => this.coarseNowMs);
    this.connections.add(connection);
    connection.onClose(() => this.connections.delete(connection));
  };

  // Node accepts one connection per descriptor per turn, and the listening descriptor stays ready
  // while connections are queued: queued connections show as a connection accepted in every turn.
  // Each turn that accepted ends with closeAcceptTurn; the judging runs at the end of the next turn,
  // just before that turn's own closeAcceptTurn if it accepted too.
  private readonly closeAcceptTurn = (): void => {
    this.acceptTurnOpen = false;
    if (this.acceptTurnsInARow === 0) this.acceptTurnsInARow = 1;
    setImmediate(this.judgeNextTurn);
  };

  private readonly judgeNextTurn = (): void => {
    this.acceptTurnsInARow = this.acceptTurnOpen ? this.acceptTurnsInARow + 1 : 0;
    if (this.acceptTurnsInARow < QUEUED_AFTER_TURNS || this.whenQueued === null) return;
    const fetchCopies = this.whenQueued;
    this.whenQueued = null;
    fetchCopies();
  };

  /**
   * Once connections are found queued (a connection accepted in each of QUEUED_AFTER_TURNS turns in a
   * row), fetches the listening socket's further descriptors with acceptThroughCopies, once, and
   * reports what came of it. Not sooner: while the other process holds the socket, a lockd killed
   * with -9 would leave the port taking connections until that process has seen it go. Fetched only
   * when needed, that moment comes under a flood of connections, if ever, not at every start.
   */
  acceptMoreWhenQueued(perTurn: number, copy: CopyListener, report: (outcome: AcceptCopies | Error) => void): void {
    if (perTurn <= 1) return;
    this.whenQueued = () => {
      this.acceptThroughCopies(perTurn, copy).then(report, report);
    };
  }

  /**
   * Accepts up to `perTurn` connections per turn of the event loop instead of one. Node's event loop
   * (libuv, since 1.45) accepts one connection per descriptor each time it polls, and a turn under
   * full load can run thousands of commands: connections arriving faster than turns end, or a client
   * opening and resetting them in a loop, would fill the kernel's queue and keep new clients waiting
   * for seconds. Each further descriptor of the same socket accepts one more per turn; `copy` gets
   * them (from another process: Node has no dup()). Rejects if `copy` does, unless the server began
   * to close meanwhile.
   */
  async acceptThroughCopies(perTurn: number, copy: CopyListener): Promise<AcceptCopies> {
    const handle = (this.server as unknown as { _handle?: ListenerHandle | null })._handle;
    if (this.closing) return { kind: "closing" };
    if (handle === null || handle === undefined) return { kind: "no-handle" };
    const asked = Math.max(0, perTurn - 1 - this.copies.length);
    let handles: ListenerHandle[] = [];
    try {
      if (asked > 0) handles = await copy(handle, asked);
    } catch (error) {
      if (this.closing) return { kind: "closing" };
      throw error;
    }
    // Checked once: nothing below waits, so the server cannot begin to close while the copies are taken in.
    if (this.closing) {
      for (const each of handles) each.close();
      return { kind: "closing" };
    }
    for (const each of handles) {
      const server = new Server(ACCEPT_OPTIONS, this.accept);
      server.on("error", (error) => this.logger.error(`listener: ${error.message}`));
      try {
        // The same backlog as the first: listen() on a listening socket sets its queue's length again.
        server.listen(each, ACCEPT_BACKLOG);
      } catch (error) {
        this.logger.error(`listener: a further descriptor of the listening socket could not be used: ${(error as Error).message}`);
        each.close();
        continue;
      }
      this.copies.push(server);
    }
    return { kind: "accepting", descriptors: 1 + this.copies.length, asked: perTurn };
  }

  /** Serves every connection accepted from now on. */
  serve(): void {
    this.serving = true;
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Descriptors of the listening socket that accept: the first, and the copies acceptThroughCopies added. */
  get acceptingDescriptors(): number {
    return 1 + this.copies.length;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Stops accepting, answers every request already read, then closes every connection. */
  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.closing = true;
    this.whenQueued = null;
    const closed = Promise.all([this.server, ...this.copies].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const connection of this.connections) connection.stopReading();
    await this.pipeline.whenIdle();
    for (const connection of this.connections) connection.stopReading();
    // A client that never closes its side must not hold the shutdown up.
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref());
    await Promise.race([closed, deadline]);
    for (const connection of this.connections) connection.destroy();
    await closed;
  }

  private sweep(): void {
    const nowMs = performance.now();
    const heldUpMs = nowMs - this.coarseNowMs - SWEEP_EVERY_MS;
    this.coarseNowMs = nowMs;
    if (heldUpMs > SWEEP_EVERY_MS) {
      // The loop itself was held up (a sync on it that the disk stalled): what peers sent meanwhile
      // is still unread in the kernel, and timers run before the loop reads again. Judged now, a
      // connection whose frame arrived during the stall would be closed for being slow. The next
      // sweep, after a round of reads, judges them.
      return;
    }
    const { frameTimeoutMs, idleTimeoutMs, replyTimeoutMs } = this.config;
    for (const connection of this.connections) {
      if (connection.endedAtMs > 0) {
        // Our side is closed and the peer has not closed its own: it gets a grace period, not forever.
        if (this.coarseNowMs - connection.endedAtMs > CLOSE_GRACE_MS + SWEEP_EVERY_MS) connection.destroy();
      } else if (frameTimeoutMs > 0 && connection.partialSinceMs > 0 && this.coarseNowMs - connection.partialSinceMs > frameTimeoutMs) {
        this.closed.frameTimeout++;
        connection.destroy();
      } else if (idleTimeoutMs > 0 && connection.idle && this.coarseNowMs - connection.lastActivityMs > idleTimeoutMs + SWEEP_EVERY_MS) {
        // lastActivityMs is coarse (up to one sweep old): waiting one sweep longer never closes early.
        this.closed.idleTimeout++;
        connection.destroy();
      } else if (replyTimeoutMs > 0 && connection.unreadSinceMs > 0 && this.coarseNowMs - connection.unreadSinceMs > replyTimeoutMs + SWEEP_EVERY_MS) {
        // A client that stopped reading would otherwise hold its connection, and the answers queued
        // for it, for as long as it stays connected. Its answers are remembered by request id: a
        // retry on a new connection gets them.
        this.closed.replyTimeout++;
        connection.destroy();
      }
    }
    this.logClosed();
  }

  /**
   * One line per reason that grew since the last sweep. Idle connections closing is routine and only
   * counted; the others point at a client that is broken, hostile or overwhelmed.
   */
  private logClosed(): void {
    const { closed, logged, config } = this;
    if (closed.overLimit > logged.overLimit) {
      this.logger.warn(`refused ${connections(closed.overLimit - logged.overLimit)}: ${this.connectionLimitText} reached`);
    }
    if (closed.frameTimeout > logged.frameTimeout) {
      this.logger.warn(`closed ${connections(closed.frameTimeout - logged.frameTimeout)} holding half a frame for --frame-timeout ${config.frameTimeoutMs} ms`);
    }
    if (closed.replyTimeout > logged.replyTimeout) {
      this.logger.warn(`closed ${connections(closed.replyTimeout - logged.replyTimeout)} that took none of their answers for --reply-timeout ${config.replyTimeoutMs} ms`);
    }
    Object.assign(logged, closed);
  }
}

function connections(count: number): string {
  return count === 1 ? "1 connection" : `${count} connections`;
}
