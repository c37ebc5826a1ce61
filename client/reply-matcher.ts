/**
 * In-order reply matching for one pipelined connection: requests are registered in the order their
 * frames are written, and each response settles the oldest unanswered one. A request given up on
 * (timed out, aborted) keeps its place as `abandoned`, so the reply that still comes for it is
 * consumed and dropped instead of being handed to the next request. Pure: no I/O, no timers.
 */
import type { Response } from "../src/protocol/index.js";
import { Fifo } from "./fifo.js";
import { ReplyReader } from "../src/protocol/reply-reader.js";

export interface PendingReply {
  /** Set by whoever gave up on the request; its reply is then dropped. */
  abandoned: boolean;
  settle(response: Response): void;
}

export const ReceiveResult = {
  Ok: 0,
  /** A response arrived with no request waiting for it: the stream cannot be trusted any more. */
  Unsolicited: 1,
} as const;
export type ReceiveResult = (typeof ReceiveResult)[keyof typeof ReceiveResult];

export class ReplyMatcher {
  private readonly reader = new ReplyReader();
  private readonly pending = new Fifo<PendingReply>();

  /** Requests written and not yet answered, abandoned ones included. */
  get inFlight(): number {
    return this.pending.length;
  }

  /** Registers a request; call in the exact order the frames are written to the socket. */
  expect(reply: PendingReply): void {
    this.pending.push(reply);
  }

  receive(chunk: Uint8Array): ReceiveResult {
    this.reader.push(chunk);
    for (let response = this.reader.next(); response !== undefined; response = this.reader.next()) {
      const reply = this.pending.shift();
      if (reply === undefined) return ReceiveResult.Unsolicited;
      if (!reply.abandoned) reply.settle(response);
    }
    return ReceiveResult.Ok;
  }

  /** Empties the queue (the connection is gone); returns the requests still waiting, oldest first. */
  takeWaiting(): PendingReply[] {
    return this.pending.drain().filter((reply) => !reply.abandoned);
  }
}
