import { describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { useLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire, inspect, release } from "../support/frames.js";
import { sleep, splitAnswers } from "../support/answers.js";

const lockd = useLockd();

let nextLock = 1n << 40n;

/**
 * 1000 requests whose answers prove their order: ACQUIRE of a fresh lock, INSPECT of it (must see the
 * token just granted), then RELEASE of it in the long form, cycling.
 */
function orderedStream(count: number): { stream: Buffer; check: (replies: Buffer) => void } {
  const frames: Buffer[] = [];
  const owner = 0x77n;
  for (let n = 0; n < count; n++) {
    const lock = nextLock + BigInt(Math.floor(n / 3));
    if (n % 3 === 0) frames.push(acquire({ lock, owner }, 60_000n));
    else if (n % 3 === 1) frames.push(inspect({ lock, owner }));
    else frames.push(release({ lock, owner }, true));
  }
  nextLock += BigInt(count);
  return {
    stream: Buffer.concat(frames),
    check(replies) {
      const answers = splitAnswers(replies);
      expect(answers).toHaveLength(count);
      let token = 0n;
      for (const [n, answer] of answers.entries()) {
        expect(answer.status, `answer ${n}`).toBe(Status.Ok);
        if (n % 3 === 0) {
          expect(answer.fencingToken, `answer ${n}: tokens grow in request order`).toBeGreaterThan(token);
          token = answer.fencingToken;
        } else {
          expect(answer.fencingToken, `answer ${n}`).toBe(token);
        }
      }
    },
  };
}

describe("responses on a connection come back in request order, one per request frame; clients may pipeline", () => {
  it("answers 1000 requests written in one write, in order", async () => {
    const client = await RawClient.open(lockd.port);
    const { stream, check } = orderedStream(1000);
    client.write(stream);
    check(await client.read(1000 * 17));
    await sleep(20);
    expect(client.buffered).toBe(0);
    client.close();
  });

  it("answers the same 1000 requests written 1 byte at a time", async () => {
    const client = await RawClient.open(lockd.port);
    const { stream, check } = orderedStream(1000);
    for (let at = 0; at < stream.length; at++) {
      // Wait for each write to reach the kernel, so the bytes leave one by one rather than coalesced.
      await new Promise<void>((resolve, reject) => client.socket.write(stream.subarray(at, at + 1), (error) => (error ? reject(error) : resolve())));
    }
    check(await client.read(1000 * 17));
    client.close();
  });
});

describe("frames split across packets are reassembled: a stream split at every byte boundary", () => {
  it("answers ACQUIRE (57), RELEASE (49) and INSPECT (57) frames cut at every offset", async () => {
    const client = await RawClient.open(lockd.port);
    const owner = 0x5151n;
    for (let cut = 1; ; cut++) {
      const lock = nextLock++;
      const stream = Buffer.concat([acquire({ lock, owner }, 60_000n), release({ lock, owner }), inspect({ lock, owner }, true)]);
      if (cut >= stream.length) break;
      client.write(stream.subarray(0, cut));
      await sleep(2);
      client.write(stream.subarray(cut));
      const [granted, released, inspected] = splitAnswers(await client.read(3 * 17));
      expect(granted!.status, `cut at ${cut}`).toBe(Status.Ok);
      expect(released, `cut at ${cut}`).toEqual({ status: Status.Ok, fencingToken: granted!.fencingToken, expiresAt: released!.expiresAt });
      expect(inspected!.status, `cut at ${cut}`).toBe(Status.NotHeld);
    }
    client.close();
  });
});
