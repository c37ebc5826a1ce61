/**
 * A streaming splitter of length-prefixed request frames: feed it chunks as they arrive, take out
 * complete frames. Frames that lie whole inside a chunk are handed out as views of that chunk (no
 * copy); only a frame split across chunks is assembled in a small carry buffer. A caller whose chunk
 * memory is about to be reused while frames are still unread in it calls `keepUnread`. Pure: no I/O.
 */
import { readU32 } from "./u64.js";
import { LENGTH_PREFIX_BYTES, LONG_BODY_BYTES, MAX_FRAME_LENGTH, SHORT_BODY_BYTES } from "./wire.js";

export const FrameEvent = {
  /** Feed another chunk: the rest of this one (if any) is a partial frame kept in the carry buffer. */
  NeedMore: 0,
  /** A frame is ready in `frame` at `frameStart`, `frameLength` bytes of body (prefix excluded). */
  Frame: 1,
  /** The length field exceeds the reader's limit: the stream cannot be resynchronised. */
  Oversized: 2,
} as const;
export type FrameEvent = (typeof FrameEvent)[keyof typeof FrameEvent];

export class FrameReader {
  /** Output of the last `next()` that returned Frame. Valid until the following call. */
  frame: Uint8Array = new Uint8Array(0);
  frameStart = 0;
  frameLength = 0;

  private readonly carry: Uint8Array;
  private carried = 0;
  private chunk: Uint8Array = new Uint8Array(0);
  private offset = 0;

  /**
   * `maxLength` is the largest length field served: from the longest request body (57) to the
   * protocol's limit (1024). A larger length is Oversized.
   */
  constructor(private readonly maxLength: number = MAX_FRAME_LENGTH) {
    if (!Number.isInteger(maxLength) || maxLength < LONG_BODY_BYTES || maxLength > MAX_FRAME_LENGTH) {
      throw new RangeError(`frame length limit must be ${LONG_BODY_BYTES}..${MAX_FRAME_LENGTH}, got ${maxLength}`);
    }
    this.carry = new Uint8Array(LENGTH_PREFIX_BYTES + maxLength);
  }

  /** Bytes of an incomplete frame held back, waiting for the rest. */
  get pendingBytes(): number {
    return this.carried + (this.chunk.length - this.offset);
  }

  /** Part of the current chunk is still unread, and still read from the chunk's own memory. */
  get holdsChunk(): boolean {
    return this.offset < this.chunk.length;
  }

  /** Copies the current chunk's unread bytes, so the caller may reuse the chunk's memory. */
  keepUnread(): void {
    this.chunk = new Uint8Array(this.chunk.subarray(this.offset));
    this.offset = 0;
  }

  /** Starts reading a new chunk. Any frame left unread in the previous chunk must have been taken. */
  push(chunk: Uint8Array): void {
    this.chunk = chunk;
    this.offset = 0;
  }

  next(): FrameEvent {
    if (this.carried > 0) return this.nextFromCarry();
    const chunk = this.chunk;
    const available = chunk.length - this.offset;
    if (available < LENGTH_PREFIX_BYTES) return this.keepRemainder();
    const start = this.offset;
    const length = readU32(chunk, start);
    if (length > this.maxLength) return FrameEvent.Oversized;
    if (available < LENGTH_PREFIX_BYTES + length) return this.keepRemainder();
    this.frame = chunk;
    this.frameStart = start + LENGTH_PREFIX_BYTES;
    this.frameLength = length;
    this.offset = start + LENGTH_PREFIX_BYTES + length;
    return FrameEvent.Frame;
  }

  private keepRemainder(): FrameEvent {
    const rest = this.chunk.length - this.offset;
    if (rest > 0) {
      this.carry.set(this.chunk.subarray(this.offset), this.carried);
      this.carried += rest;
      this.offset = this.chunk.length;
    }
    return FrameEvent.NeedMore;
  }

  /** A frame began in an earlier chunk: top the carry buffer up from the current chunk. */
  private nextFromCarry(): FrameEvent {
    const carry = this.carry;
    if (this.carried < LENGTH_PREFIX_BYTES && !this.fill(LENGTH_PREFIX_BYTES)) return FrameEvent.NeedMore;
    const length = readU32(carry, 0);
    if (length > this.maxLength) return FrameEvent.Oversized;
    if (!this.fill(LENGTH_PREFIX_BYTES + length)) return FrameEvent.NeedMore;
    this.frame = carry;
    this.frameStart = LENGTH_PREFIX_BYTES;
    this.frameLength = length;
    this.carried = 0;
    return FrameEvent.Frame;
  }

  /** Moves bytes from the chunk into the carry buffer until it holds `target` bytes. */
  private fill(target: number): boolean {
    const wanted = target - this.carried;
    const available = this.chunk.length - this.offset;
    const take = wanted < available ? wanted : available;
    if (take > 0) {
      this.carry.set(this.chunk.subarray(this.offset, this.offset + take), this.carried);
      this.carried += take;
      this.offset += take;
    }
    return this.carried === target;
  }
}

/**
 * Where the bodies of the whole request frames at the start of `chunk` begin, written to `starts`
 * (at most `starts.length` of them); returns how many. Stops at the first frame that is incomplete
 * or shorter than any request body. A look-ahead only: FrameReader remains the one that decides
 * what the frames are.
 */
export function wholeFrameStarts(chunk: Uint8Array, starts: Int32Array): number {
  let count = 0;
  let at = 0;
  while (count < starts.length && at + LENGTH_PREFIX_BYTES + SHORT_BODY_BYTES <= chunk.length) {
    const length = readU32(chunk, at);
    if (length < SHORT_BODY_BYTES || at + LENGTH_PREFIX_BYTES + length > chunk.length) break;
    starts[count++] = at + LENGTH_PREFIX_BYTES;
    at += LENGTH_PREFIX_BYTES + length;
  }
  return count;
}
