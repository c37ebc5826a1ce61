import { describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { useLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire, release } from "../support/frames.js";
import { INVALID_HEX, splitAnswers } from "../support/answers.js";
import { seededRandom } from "../support/seeded-random.js";
import { loadVectors } from "../support/vectors.js";

const lockd = useLockd();

function lengthPrefixed(length: number, body: Buffer = Buffer.alloc(length)): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(length, 0);
  return Buffer.concat([header, body]);
}

/** A client still gets real answers: proves the connection (or the server) is usable. */
async function expectServed(client: RawClient, lock: bigint): Promise<void> {
  client.write(Buffer.concat([acquire({ lock, owner: 1n }, 60_000n), release({ lock, owner: 1n })]));
  const [granted, released] = splitAnswers(await client.read(2 * 17));
  expect(granted!.status).toBe(Status.Ok);
  expect(released!.fencingToken).toBe(granted!.fencingToken);
}

describe("the test vectors' invalid frames get the answer the vector file gives", () => {
  const invalid = loadVectors().frames.filter((frame) => !frame.valid);

  it("on one connection, pipelined, the connection usable after each but the over-long length", async () => {
    const client = await RawClient.open(lockd.port);
    const keptOpen = invalid.filter((frame) => frame.closes_connection !== true);
    expect(keptOpen.length).toBeGreaterThan(10);
    client.write(Buffer.concat(keptOpen.map((frame) => Buffer.from(frame.hex, "hex"))));
    const answers = await client.read(keptOpen.length * 17);
    expect(keptOpen.map((frame, n) => [frame.name, answers.subarray(n * 17, (n + 1) * 17).toString("hex")])).toEqual(keptOpen.map((frame) => [frame.name, frame.answer]));
    await expectServed(client, 1n << 55n);
    client.close();
    for (const frame of invalid.filter((each) => each.closes_connection === true)) {
      const closing = await RawClient.open(lockd.port);
      closing.write(Buffer.from(frame.hex, "hex"));
      expect((await closing.read(17)).toString("hex")).toBe(frame.answer);
      expect(await closing.closedWithin(5000)).toBe(true);
    }
  });
});

describe("unknown cmd, or a length that does not fit the cmd, with length <= 1024: status 3, the frame is skipped, the connection stays usable", () => {
  it("answers 3 to random frames from many sockets at once, keeps each usable, and keeps serving other clients", async () => {
    const random = seededRandom("garbage frames");
    const sockets = 24;
    const framesPerSocket = 40;
    const clients = await Promise.all(Array.from({ length: sockets }, () => RawClient.open(lockd.port)));
    const bystander = await RawClient.open(lockd.port);
    for (const client of clients) {
      const frames: Buffer[] = [];
      for (let n = 0; n < framesPerSocket; n++) {
        const length = random.int(0, 1024);
        const body = random.bytes(length);
        // A random body of exactly 49 or 57 bytes could be a valid RELEASE/INSPECT: give it an unknown cmd.
        if ((length === 49 || length === 57) && body[0]! >= 1 && body[0]! <= 4) body[0] = 0x80 | body[0]!;
        frames.push(lengthPrefixed(length, body));
      }
      const stream = Buffer.concat(frames);
      // Written in random pieces, so frames also arrive split.
      for (let at = 0; at < stream.length; ) {
        const piece = random.int(1, 3000);
        client.write(stream.subarray(at, at + piece));
        at += piece;
      }
    }
    await expectServed(bystander, 1n << 50n);
    for (const [n, client] of clients.entries()) {
      const replies = await client.read(framesPerSocket * 17);
      expect(replies.toString("hex")).toBe(INVALID_HEX.repeat(framesPerSocket));
      await expectServed(client, (1n << 50n) + BigInt(n + 1));
      client.close();
    }
    bystander.close();
  });

  it("answers 3 to a length of 1024 (the largest length, fitting no cmd) and stays open", async () => {
    const client = await RawClient.open(lockd.port);
    client.write(lengthPrefixed(1024, Buffer.alloc(1024, 1)));
    expect((await client.read(17)).toString("hex")).toBe(INVALID_HEX);
    await expectServed(client, 1n << 51n);
    client.close();
  });

  it("answers 3 to an empty body and to every cmd with a wrong length", async () => {
    const client = await RawClient.open(lockd.port);
    const wrong = [lengthPrefixed(0), lengthPrefixed(1, Buffer.from([1])), lengthPrefixed(49, Buffer.alloc(49, 1)), lengthPrefixed(56, Buffer.alloc(56, 2)), lengthPrefixed(50, Buffer.alloc(50, 3)), lengthPrefixed(58, Buffer.alloc(58, 4))];
    client.write(Buffer.concat(wrong));
    expect((await client.read(wrong.length * 17)).toString("hex")).toBe(INVALID_HEX.repeat(wrong.length));
    await expectServed(client, 1n << 52n);
    client.close();
  });
});

describe("length > 1024: status 3, then the server closes that connection", () => {
  it("answers 3 and closes on a length of 1025, as soon as the 4-byte header arrives", async () => {
    const client = await RawClient.open(lockd.port);
    client.write(lengthPrefixed(1025).subarray(0, 4));
    expect((await client.read(17)).toString("hex")).toBe(INVALID_HEX);
    expect(await client.closedWithin(2000)).toBe(true);
    expect(client.buffered).toBe(0);
  });

  it("answers the valid frames before it, then 3, then closes; other clients are unaffected", async () => {
    const client = await RawClient.open(lockd.port);
    const other = await RawClient.open(lockd.port);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff, 0);
    client.write(Buffer.concat([acquire({ lock: 1n << 53n, owner: 1n }, 60_000n), huge, acquire({ lock: 1n << 54n, owner: 1n }, 60_000n)]));
    const [granted, refused] = splitAnswers(await client.read(2 * 17));
    expect(granted!.status).toBe(Status.Ok);
    expect(refused).toEqual({ status: Status.Invalid, fencingToken: 0n, expiresAt: 0n });
    expect(await client.closedWithin(2000)).toBe(true);
    expect(client.buffered).toBe(0);
    await expectServed(other, 1n << 54n); // the frame after the huge length was never processed
    other.close();
  });

  it("no input crashes the process: raw random bytes from many sockets get only whole 3s", async () => {
    const random = seededRandom("raw random bytes");
    const clients = await Promise.all(Array.from({ length: 16 }, () => RawClient.open(lockd.port)));
    for (const client of clients) client.write(random.bytes(random.int(1, 4096)));
    for (const client of clients) {
      await client.closedWithin(1000);
      const answers = splitAnswers(client.peek());
      for (const answer of answers) expect(answer).toEqual({ status: Status.Invalid, fencingToken: 0n, expiresAt: 0n });
      client.close();
    }
    const after = await RawClient.open(lockd.port);
    await expectServed(after, 1n << 55n);
    after.close();
  });
});
