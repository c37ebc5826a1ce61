import { describe, expect, it } from "vitest";
import { FrameEvent, FrameReader } from "../../../src/protocol/frame-reader.js";
import { acquire, inspect, release } from "../../support/frames.js";

function readAll(reader: FrameReader, chunks: Buffer[]): { frames: string[]; oversized: boolean } {
  const frames: string[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (;;) {
      const event = reader.next();
      if (event === FrameEvent.Frame) {
        frames.push(Buffer.from(reader.frame.subarray(reader.frameStart, reader.frameStart + reader.frameLength)).toString("hex"));
      } else if (event === FrameEvent.Oversized) {
        return { frames, oversized: true };
      } else break;
    }
  }
  return { frames, oversized: false };
}

describe("frames are a u32 big-endian length followed by that many body bytes", () => {
  const stream = Buffer.concat([
    acquire({ lock: 1n, owner: 2n }, 1000n), // 4 + 57
    release({ lock: 1n, owner: 2n }), // 4 + 49
    release({ lock: 1n, owner: 2n }, true), // 4 + 57
    inspect({ lock: 3n, owner: 4n }), // 4 + 49
    Buffer.from([0, 0, 0, 0]), // an empty body is a frame too (and is invalid later)
    Buffer.from([0, 0, 0, 1, 9]),
  ]);
  const expected = readAll(new FrameReader(), [stream]).frames;

  it("reads every frame of one chunk", () => {
    expect(expected.map((hex) => hex.length / 2)).toEqual([57, 49, 57, 49, 0, 1]);
  });

  it("yields the same frames when the stream is split at every byte boundary", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const reader = new FrameReader();
      expect(readAll(reader, [stream.subarray(0, cut), stream.subarray(cut)]).frames).toEqual(expected);
      expect(reader.pendingBytes).toBe(0);
    }
  });

  it("yields the same frames when fed one byte at a time", () => {
    const chunks = [...stream].map((byte) => Buffer.from([byte]));
    expect(readAll(new FrameReader(), chunks).frames).toEqual(expected);
  });

  it("keeps a partial frame pending until the rest arrives", () => {
    const reader = new FrameReader();
    const frame = acquire({ lock: 1n, owner: 2n }, 5n);
    expect(readAll(reader, [frame.subarray(0, 30)]).frames).toEqual([]);
    expect(reader.pendingBytes).toBe(30);
  });
});

describe("a length over 1024 cannot be resynchronised", () => {
  it("serves a length of exactly 1024", () => {
    const frame = Buffer.alloc(4 + 1024);
    frame.writeUInt32BE(1024, 0);
    const { frames, oversized } = readAll(new FrameReader(), [frame]);
    expect(oversized).toBe(false);
    expect(frames).toHaveLength(1);
  });

  it("reports 1025 as soon as the 4-byte header arrives", () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1025, 0);
    for (let cut = 1; cut <= 4; cut++) {
      const result = readAll(new FrameReader(), [header.subarray(0, cut), header.subarray(cut)]);
      expect(result.oversized).toBe(true);
    }
  });
});

describe("a lower limit (--max-frame-length): from the longest request body, 57, to 1024", () => {
  function framed(length: number): Buffer {
    const frame = Buffer.alloc(4 + length);
    frame.writeUInt32BE(length, 0);
    return frame;
  }

  it("serves a length at the limit and reports one past it, whole or split anywhere", () => {
    const stream = Buffer.concat([acquire({ lock: 1n, owner: 2n }, 1000n), framed(57), framed(58)]);
    for (let cut = 0; cut <= stream.length; cut++) {
      const { frames, oversized } = readAll(new FrameReader(57), [stream.subarray(0, cut), stream.subarray(cut)]);
      expect(frames).toHaveLength(2);
      expect(oversized).toBe(true);
    }
  });

  it("keeps the protocol's limit by default, and refuses limits outside 57..1024", () => {
    expect(readAll(new FrameReader(), [framed(1024)]).frames).toHaveLength(1);
    expect(readAll(new FrameReader(1024), [framed(1025)]).oversized).toBe(true);
    for (const limit of [56, 1025, 57.5, Number.NaN]) expect(() => new FrameReader(limit)).toThrow(RangeError);
  });
});

describe("keepUnread: frames left in a chunk survive the chunk's memory being reused", () => {
  const stream = Buffer.concat([acquire({ lock: 1n, owner: 2n }, 1000n), release({ lock: 1n, owner: 2n }), inspect({ lock: 3n, owner: 4n }, true)]);
  const expected = readAll(new FrameReader(), [stream]).frames;

  it("yields the same frames after the chunk is overwritten, whatever was taken before", () => {
    for (let taken = 0; taken < expected.length; taken++) {
      for (const tail of [0, 20]) {
        // The chunk may end in part of another frame, which must carry over too.
        const chunk = Buffer.concat([stream, stream.subarray(0, tail)]);
        const reader = new FrameReader();
        reader.push(chunk);
        const frames: string[] = [];
        for (let n = 0; n < taken; n++) {
          expect(reader.next()).toBe(FrameEvent.Frame);
          frames.push(Buffer.from(reader.frame.subarray(reader.frameStart, reader.frameStart + reader.frameLength)).toString("hex"));
        }
        expect(reader.holdsChunk).toBe(true);
        reader.keepUnread();
        chunk.fill(0xee);
        expect(reader.holdsChunk).toBe(true);
        while (reader.next() === FrameEvent.Frame) {
          frames.push(Buffer.from(reader.frame.subarray(reader.frameStart, reader.frameStart + reader.frameLength)).toString("hex"));
        }
        expect(frames, `${taken} taken, ${tail} bytes of the next frame`).toEqual(expected);
        expect(reader.pendingBytes).toBe(tail);
        // The carried start of the next frame was copied too: the rest of the stream completes it.
        expect(readAll(reader, [stream.subarray(tail)]).frames).toEqual(expected);
      }
    }
  });

  it("holds no chunk once every byte is taken out or carried", () => {
    const reader = new FrameReader();
    expect(readAll(reader, [stream.subarray(0, stream.length - 5)]).frames).toHaveLength(expected.length - 1);
    expect(reader.holdsChunk).toBe(false);
    expect(reader.pendingBytes).toBeGreaterThan(0);
  });
});
