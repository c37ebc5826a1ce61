/**
 * Splits the reply stream of one connection into 17-byte responses. Replies carry no length and no
 * request id: the n-th response answers the n-th request written, so a reader only has to cut at
 * RESPONSE_BYTES and carry a split reply over to the next chunk. Pure: no I/O.
 */
import { RESPONSE_BYTES } from "./wire.js";
import { decodeResponse, type Response } from "./response.js";

export class ReplyReader {
  private readonly carry = Buffer.alloc(RESPONSE_BYTES);
  private carried = 0;
  private chunk: Uint8Array = new Uint8Array(0);
  private offset = 0;

  /** Bytes of a partial reply held back. */
  get pendingBytes(): number {
    return this.carried + (this.chunk.length - this.offset);
  }

  /** Starts reading a new chunk; the previous one must have been read out (next() returned undefined). */
  push(chunk: Uint8Array): void {
    this.chunk = chunk;
    this.offset = 0;
  }

  /** The next whole response, or undefined when the rest of the chunk is a partial reply (kept). */
  next(): Response | undefined {
    if (this.carried > 0) {
      const take = Math.min(RESPONSE_BYTES - this.carried, this.chunk.length - this.offset);
      this.carry.set(this.chunk.subarray(this.offset, this.offset + take), this.carried);
      this.carried += take;
      this.offset += take;
      if (this.carried < RESPONSE_BYTES) return undefined;
      this.carried = 0;
      return decodeResponse(this.carry, 0);
    }
    const available = this.chunk.length - this.offset;
    if (available >= RESPONSE_BYTES) {
      const response = decodeResponse(this.chunk, this.offset);
      this.offset += RESPONSE_BYTES;
      return response;
    }
    if (available > 0) {
      this.carry.set(this.chunk.subarray(this.offset), 0);
      this.carried = available;
      this.offset = this.chunk.length;
    }
    return undefined;
  }
}
