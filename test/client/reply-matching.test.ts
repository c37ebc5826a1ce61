import { describe, expect, it } from "vitest";
import { encodeResponse, type Response } from "../../src/protocol/index.js";
import { ReplyReader } from "../../src/protocol/reply-reader.js";
import { ReceiveResult, ReplyMatcher, type PendingReply } from "../../client/reply-matcher.js";

const replies: Response[] = [
  { status: 0, fencingToken: 7n, expiresAt: 1_700_000_000_123n },
  { status: 1, fencingToken: 0n, expiresAt: 1_700_000_000_456n },
  { status: 5, fencingToken: 2n ** 60n, expiresAt: 2n ** 63n },
];
const stream = Buffer.concat(replies.map(encodeResponse));

function readAll(reader: ReplyReader, chunks: Uint8Array[]): Response[] {
  const out: Response[] = [];
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let response = reader.next(); response !== undefined; response = reader.next()) out.push(response);
  }
  return out;
}

describe("replies are cut at 17 bytes whatever the chunking", () => {
  it("reads the same replies with the stream split at every pair of byte boundaries", () => {
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b++) {
        const chunks = [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)];
        expect(readAll(new ReplyReader(), chunks)).toEqual(replies);
      }
    }
  });

  it("reads the stream one byte at a time and keeps nothing over", () => {
    const reader = new ReplyReader();
    expect(readAll(reader, [...stream].map((byte) => Uint8Array.of(byte)))).toEqual(replies);
    expect(reader.pendingBytes).toBe(0);
  });
});

describe("the n-th reply answers the n-th request written", () => {
  const pending = (log: Response[], abandoned = false): PendingReply => ({ abandoned, settle: (response) => log.push(response) });

  it("settles requests in the order they were registered", () => {
    const matcher = new ReplyMatcher();
    const logs: Response[][] = [[], [], []];
    for (const log of logs) matcher.expect(pending(log));
    expect(matcher.receive(stream.subarray(0, 20))).toBe(ReceiveResult.Ok);
    expect(matcher.receive(stream.subarray(20))).toBe(ReceiveResult.Ok);
    expect(logs).toEqual([[replies[0]], [replies[1]], [replies[2]]]);
    expect(matcher.inFlight).toBe(0);
  });

  it("drops the reply of an abandoned request instead of handing it to the next one", () => {
    const matcher = new ReplyMatcher();
    const given: Response[] = [];
    const kept: Response[] = [];
    matcher.expect(pending(given, true));
    matcher.expect(pending(kept));
    matcher.receive(stream.subarray(0, 34));
    expect(given).toEqual([]);
    expect(kept).toEqual([replies[1]]);
  });

  it("reports a reply that answers no request", () => {
    const matcher = new ReplyMatcher();
    matcher.expect(pending([]));
    expect(matcher.receive(stream.subarray(0, 34))).toBe(ReceiveResult.Unsolicited);
  });

  it("hands back the requests still waiting, without the abandoned ones, when the connection goes", () => {
    const matcher = new ReplyMatcher();
    const waiting = pending([]);
    matcher.expect(pending([], true));
    matcher.expect(waiting);
    expect(matcher.takeWaiting()).toEqual([waiting]);
    expect(matcher.inFlight).toBe(0);
  });
});
