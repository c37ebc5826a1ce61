/**
 * One client connection: splits its byte stream into frames, hands valid ones to the pipeline, and
 * writes the answers back in request order, one socket write per durable batch.
 *
 * Reads arrive in a buffer shared by every connection (see shared-read-buffer.ts): each chunk is
 * split and executed during the call that delivers it, and nothing keeps a view of it afterwards.
 *
 * Backpressure: the connection stops reading when it has `maxInflightPerConnection` requests unanswered,
 * or `maxQueuedReplyBytes` of replies the client has not read, or when the requests in flight on all
 * connections together have spent the server's budget (inflight-budget.ts); the unread part of the
 * current chunk is copied into the frame reader and waits there until answers drain.
 *
 * A client that does not read gets its answers queued as bytes, not as writes: while a write waits
 * in the socket, later answers are copied into one backlog buffer, written whole when the socket has
 * taken everything before it. Each queued write would keep its whole reply buffer (up to
 * maxInflightPerConnection answers) and Node's bookkeeping alive for 17 bytes of answer, so a client
 * reading one answer at a time could make the server hold far more than maxQueuedReplyBytes.
 */
import type { Socket } from "node:net";
import { FrameEvent, FrameReader } from "../protocol/frame-reader.js";
import { isWellFormedRequestBody } from "../protocol/request.js";
import { RESPONSE_BYTES, Status } from "../protocol/wire.js";
import { writeResponse } from "../protocol/response.js";
import { readIntoSharedBuffer } from "./shared-read-buffer.js";
import { BUDGET_TURN_REQUESTS, type BudgetWaiter, type InflightBudget } from "./inflight-budget.js";
import type { CommitPipeline, ReplySink } from "./commit-pipeline.js";
import type { ServerConfig } from "./config.js";

const INITIAL_REPLY_BYTES = 64 * RESPONSE_BYTES;

export class Connection implements ReplySink, BudgetWaiter {
  openReplies: Buffer = Buffer.allocUnsafe(INITIAL_REPLY_BYTES);
  inOpenBatch = false;
  private openLength = 0;
  private openCount = 0;
  /** Answers of sealed batches not yet durable, oldest first: `length` bytes of `replies`. */
  private readonly sealed: { readonly replies: Buffer; readonly length: number; readonly count: number }[] = [];
  /** A reply buffer the socket is done with, for the next batch. */
  private spareReplies: Buffer | null = null;
  /** Answers waiting for the socket to take what it holds: `backlogLength` bytes of `backlog`. */
  private backlog: Buffer | null = null;
  private backlogLength = 0;
  /** Answers reserved and not yet handed to the socket. */
  private inflight = 0;
  private readonly reader: FrameReader;
  private readingPaused = false;
  /** Reading stopped because the server's budget of requests in flight is spent: queued for it. */
  private waitingForBudget = false;
  /** Every complete frame received so far has been processed. */
  private framesDrained = true;
  /** An oversized length arrived, or the server is shutting down: answer what was read, then close. */
  private closing = false;
  private peerEnded = false;
  /**
   * Since when the server has been waiting for the rest of an incomplete frame (0 = it is not:
   * no partial frame, or reading is held back by the server itself).
   */
  partialSinceMs = 0;
  /**
   * How long the server had already waited for the incomplete frame when it held reading back: the
   * frame clock stops while the server holds the bytes, and goes on from here when it reads again,
   * rather than starting over (which would let a client trickling a byte at a time into a busy
   * server, held back at every byte, keep a partial frame forever).
   */
  private partialWaitedMs = 0;
  /** Requests read since this connection last queued for the budget (see BUDGET_TURN_REQUESTS). */
  private readThisTurn = 0;
  /** Coarse time of the last bytes read or answers written: the idle timeout's clock. */
  lastActivityMs = 0;
  /**
   * Coarse time our side was closed (0 = open): the peer has a grace period to close its side, and
   * what it still sends meanwhile is read and dropped.
   */
  endedAtMs = 0;
  /**
   * Since when answers have been queued in the server with none of them taken by the socket (0 =
   * none queued, or the last write completed): the unread-reply timeout's clock, coarse like it.
   */
  unreadSinceMs = 0;

  private readonly socket: Socket;
  /**
   * Called once the answers of a batch are with the kernel. Frames held back (backpressure) are run
   * only then: a write to a connection the client has reset fails, and its held frames are dropped.
   * (One function per connection, not one per write.)
   */
  private readonly onRepliesWritten = (error?: Error | null): void => {
    if (error != null) return;
    this.lastActivityMs = this.coarseNow();
    if (this.socket.writableLength === 0) {
      this.unreadSinceMs = 0;
      this.flushBacklog();
    } else {
      this.unreadSinceMs = this.lastActivityMs;
    }
    this.maybeResume();
  };

  /**
   * `accepted` comes from a server listening with `pauseOnConnect`; it is replaced by a socket that
   * reads into `readBuffer`, which other connections share.
   */
  constructor(
    accepted: Socket,
    readBuffer: Buffer,
    private readonly pipeline: CommitPipeline,
    private readonly config: ServerConfig,
    private readonly budget: InflightBudget,
    private readonly coarseNow: () => number,
  ) {
    this.lastActivityMs = coarseNow();
    this.reader = new FrameReader(config.maxFrameLength);
    const socket = readIntoSharedBuffer(accepted, readBuffer, (chunk) => this.onData(chunk));
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("end", () => this.onPeerEnd());
    socket.on("drain", () => {
      this.lastActivityMs = this.coarseNow();
      this.maybeResume();
    });
    socket.on("error", () => socket.destroy());
  }

  /**
   * Nothing in flight, no frame read and waiting for the server's budget, and no answer waiting for
   * the client to read it, so the idle timeout may close the connection once it has been silent long
   * enough without losing an answer. Bytes of a frame not yet complete are not in flight: with
   * --frame-timeout off, a connection that stops half way through a frame is still closed for being
   * idle.
   */
  get idle(): boolean {
    return this.inflight === 0 && !this.waitingForBudget && this.queuedReplyBytes === 0 && !this.closing;
  }

  /** Stops reading for good (shutdown): what was read is still answered. */
  stopReading(): void {
    // Already ended from our side, and reading only to see the peer close: pausing it again would
    // leave the peer's FIN unread, and the connection open until the shutdown's grace period ends.
    if (this.endedAtMs > 0) return;
    this.closing = true;
    this.pauseReading(false);
    this.finishIfDone();
  }

  destroy(): void {
    this.socket.destroy();
  }

  onClose(listener: () => void): void {
    this.socket.on("close", listener);
  }

  reserveReply(): number {
    const at = this.openLength;
    if (at + RESPONSE_BYTES > this.openReplies.length) {
      const grown = Buffer.allocUnsafe(this.openReplies.length * 2);
      this.openReplies.copy(grown, 0, 0, at);
      this.openReplies = grown;
    }
    this.openLength = at + RESPONSE_BYTES;
    this.openCount++;
    this.inflight++;
    this.budget.take();
    return at;
  }

  sealReplies(): void {
    this.sealed.push({ replies: this.openReplies, length: this.openLength, count: this.openCount });
    // The sealed bytes now belong to the socket write to come: answer into another buffer.
    this.openReplies = this.spareReplies ?? Buffer.allocUnsafe(Math.max(INITIAL_REPLY_BYTES, this.openReplies.length));
    this.spareReplies = null;
    this.openLength = 0;
    this.openCount = 0;
  }

  releaseReplies(failed: boolean): void {
    const { replies, length, count } = this.sealed.shift()!;
    if (failed) {
      for (let at = 0; at < length; at += RESPONSE_BYTES) writeResponse(replies, at, Status.Unavailable, 0, 0);
    }
    this.inflight -= count;
    this.budget.give(count);
    this.lastActivityMs = this.coarseNow();
    if (!this.socket.destroyed) {
      if (this.queuedReplyBytes === 0) {
        // Taken whole by the kernel during the call: the buffer is free again. (A write that waits in
        // the socket keeps its buffer until it is sent.)
        if (this.writeReplies(replies.subarray(0, length))) this.spareReplies = replies;
      } else {
        this.appendToBacklog(replies, length);
        this.spareReplies = replies;
      }
    }
    this.finishIfDone();
  }

  /** Answers queued in the server that the client has not read: in the socket, and in the backlog. */
  get queuedReplyBytes(): number {
    return this.socket.writableLength + this.backlogLength;
  }

  private appendToBacklog(replies: Buffer, length: number): void {
    const needed = this.backlogLength + length;
    if (this.backlog === null || needed > this.backlog.length) {
      // Reading stops past maxQueuedReplyBytes, so the backlog stays within that and one batch's
      // answers more; doubling beyond what is needed would only hold memory.
      const ceiling = this.config.maxQueuedReplyBytes + this.config.maxInflightPerConnection * RESPONSE_BYTES;
      const grown = Buffer.allocUnsafe(Math.max(needed, Math.min(2 * (this.backlog?.length ?? INITIAL_REPLY_BYTES), ceiling)));
      if (this.backlog !== null) this.backlog.copy(grown, 0, 0, this.backlogLength);
      this.backlog = grown;
    }
    replies.copy(this.backlog, this.backlogLength, 0, length);
    this.backlogLength = needed;
  }

  /** Hands the backlog to the socket as one write: after everything before it, or when closing. */
  private flushBacklog(): void {
    if (this.backlogLength === 0 || this.socket.destroyed) return;
    const bytes = this.backlog!.subarray(0, this.backlogLength);
    // The socket owns these bytes until it has sent them: the next backlog gets a buffer of its own.
    this.backlog = null;
    this.backlogLength = 0;
    this.writeReplies(bytes);
  }

  /**
   * Writes answers to the socket; true when the kernel took every byte during the call. Otherwise the
   * unread-reply clock starts, unless it runs already. The backlog is flushed from the write's
   * callback (onRepliesWritten), the only place that sees the socket empty again after it.
   */
  private writeReplies(bytes: Buffer): boolean {
    this.socket.write(bytes, this.onRepliesWritten);
    if (this.socket.writableLength === 0) return true;
    if (this.unreadSinceMs === 0) this.unreadSinceMs = this.coarseNow();
    return false;
  }

  private onData(chunk: Buffer): void {
    if (this.endedAtMs > 0) return; // our FIN is sent: read only to see the peer close
    this.lastActivityMs = this.coarseNow();
    // Only a chunk that starts on a frame boundary can be looked ahead into.
    // One clock sample per read, for the look-ahead and the commands alike.
    const stampMs = this.pipeline.stamp();
    if (this.reader.pendingBytes === 0) this.pipeline.prefetch(chunk, stampMs);
    this.reader.push(chunk);
    this.processFrames(stampMs);
    // Held back (backpressure): the next read, on any connection, reuses the chunk's memory.
    if (this.reader.holdsChunk) this.reader.keepUnread();
  }

  private processFrames(stampMs: number): void {
    const pipeline = this.pipeline;
    const reader = this.reader;
    const maxInflight = this.config.maxInflightPerConnection;
    this.framesDrained = false;
    let completed = false;
    for (;;) {
      if (this.inflight >= maxInflight || this.queuedReplyBytes > this.config.maxQueuedReplyBytes) {
        this.pauseReading(completed);
        return;
      }
      if (this.budget.spent || (this.readThisTurn >= BUDGET_TURN_REQUESTS && this.budget.contended)) {
        this.pauseReading(completed);
        this.queueForBudget();
        return;
      }
      const event = reader.next();
      if (event === FrameEvent.Frame) {
        completed = true;
        this.readThisTurn++;
        const { frame, frameStart, frameLength } = reader;
        if (isWellFormedRequestBody(frame, frameStart, frameLength)) {
          pipeline.submit(this, frame, frameStart, frameLength, stampMs);
        } else {
          pipeline.answerWithoutState(this, Status.Invalid);
        }
      } else if (event === FrameEvent.NeedMore) {
        break;
      } else {
        // A length over the limit: the stream cannot be resynchronised. Answer 3, then close.
        pipeline.answerWithoutState(this, Status.Invalid);
        this.closing = true;
        this.pauseReading(completed);
        return;
      }
    }
    this.framesDrained = true;
    // The frame clock runs from the read that brought the incomplete frame's first byte, less the time
    // the server held it back (partialWaitedMs): if a frame completed here, the one left incomplete
    // began here. A fresh reading, not the coarse clock: that one can be a whole sweep behind, which
    // would make a partial frame look older than it is and drop it before --frame-timeout.
    if (reader.pendingBytes === 0) this.partialSinceMs = 0;
    else if (completed) this.partialSinceMs = performance.now();
    else if (this.partialSinceMs === 0) this.partialSinceMs = performance.now() - this.partialWaitedMs;
    this.partialWaitedMs = 0;
    this.finishIfDone();
  }

  /** `completedFrame`: a frame completed since the frame clock was last set, so its wait is over. */
  private pauseReading(completedFrame: boolean): void {
    // The server holds the rest back, so it is not waiting for the client: the frame clock stops.
    if (completedFrame) this.partialWaitedMs = 0;
    else if (this.partialSinceMs > 0) this.partialWaitedMs = performance.now() - this.partialSinceMs;
    this.partialSinceMs = 0;
    if (this.readingPaused) return;
    this.readingPaused = true;
    this.socket.pause();
  }

  private maybeResume(): void {
    // A connection the client reset, or that failed, is gone: the frames held back on it are
    // dropped, not run. Its client gave them up and may have sent others since, elsewhere.
    if (!this.readingPaused || this.closing || this.socket.destroyed) return;
    if (this.inflight >= this.config.maxInflightPerConnection) return;
    if (this.queuedReplyBytes > this.config.maxQueuedReplyBytes) return;
    if (this.budget.spent) {
      this.queueForBudget();
      return;
    }
    this.readingPaused = false;
    this.processFrames(this.pipeline.stamp()); // the rest of the chunk that was held back
    if (!this.readingPaused && !this.peerEnded) this.socket.resume();
  }

  resumeFromBudget(): void {
    this.waitingForBudget = false;
    this.maybeResume();
  }

  private queueForBudget(): void {
    if (this.waitingForBudget) return;
    this.waitingForBudget = true;
    this.readThisTurn = 0;
    this.budget.wait(this);
  }

  private onPeerEnd(): void {
    // A half-close still gets answers to everything sent before it.
    this.peerEnded = true;
    this.finishIfDone();
  }

  private finishIfDone(): void {
    if (this.inflight !== 0 || this.socket.destroyed) return;
    // Closing from either side: every answer must be written before the FIN.
    if (this.closing || (this.peerEnded && this.framesDrained)) this.flushBacklog();
    if (this.closing) this.endAndDiscard();
    else if (this.peerEnded && this.framesDrained) {
      // Every answer is with the kernel, which sends it before the FIN of a close: closing at once
      // spares a shutdown call and an event per connection, which adds up when thousands leave at once.
      if (this.socket.writableLength === 0) this.socket.destroy();
      else this.socket.end();
    }
  }

  /**
   * Closing from our side: FIN after the last answer, then read and drop whatever the peer still
   * sends. A socket left unread would stay open for as long as the peer keeps it: the peer's FIN or
   * RST is only seen by reading, and a full receive buffer is never read again. The server's sweep
   * destroys the connection if the peer has not closed within a grace period.
   */
  private endAndDiscard(): void {
    if (this.endedAtMs > 0) return;
    this.endedAtMs = this.coarseNow();
    this.socket.end();
    this.readingPaused = false;
    this.socket.resume();
  }
}
