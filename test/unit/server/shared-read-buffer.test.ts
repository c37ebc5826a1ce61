/**
 * Accepted sockets moved onto a shared read buffer (shared-read-buffer.ts) must still behave as
 * sockets: reads land in the given buffer, pause and resume work, a half-close is seen and the
 * connection can still answer, and the server counts the connection (so `close()` completes).
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { readIntoSharedBuffer, readThroughStream } from "../../../src/server/shared-read-buffer.js";

interface Accepted {
  readonly socket: Socket;
  readonly chunks: Buffer[];
  /** Each chunk as it was during the call that delivered it. */
  readonly copies: Buffer[];
}

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/**
 * A server that moves every connection onto `buffer` (or, with `ordinary`, reads it the ordinary
 * way), and a client connected to it.
 */
async function pair(
  buffer: Buffer,
  how: "moved" | "ordinary" | "constructor refuses" = "moved",
): Promise<{ server: Server; client: Socket; accepted: Accepted; original: Promise<Socket> }> {
  let resolveOriginal: (socket: Socket) => void = () => {};
  const original = new Promise<Socket>((resolve) => (resolveOriginal = resolve));
  let resolveAccepted: (accepted: Accepted) => void = () => {};
  const acceptedPromise = new Promise<Accepted>((resolve) => (resolveAccepted = resolve));
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    const chunks: Buffer[] = [];
    const copies: Buffer[] = [];
    const onChunk = (chunk: Buffer): void => {
      chunks.push(chunk);
      copies.push(Buffer.from(chunk));
    };
    resolveOriginal(socket);
    const refuse = (): Socket => {
      throw new TypeError("handle not accepted");
    };
    const moved =
      how === "ordinary"
        ? readThroughStream(socket, onChunk)
        : how === "moved"
          ? readIntoSharedBuffer(socket, buffer, onChunk)
          : readIntoSharedBuffer(socket, buffer, onChunk, refuse);
    resolveAccepted({ socket: moved, chunks, copies });
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const client = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  await once(client, "connect");
  return { server, client, accepted: await acceptedPromise, original };
}

async function until(condition: () => boolean): Promise<void> {
  for (let n = 0; n < 500 && !condition(); n++) await new Promise((resolve) => setTimeout(resolve, 2));
  expect(condition()).toBe(true);
}

describe("an accepted socket reading into a shared buffer", () => {
  it("delivers every byte, in order, as views of the one buffer", async () => {
    const buffer = Buffer.alloc(1024);
    const { client, accepted } = await pair(buffer);
    const sent = Buffer.from(Array.from({ length: 5000 }, (_, n) => n % 251));
    client.write(sent);
    await until(() => accepted.copies.reduce((sum, chunk) => sum + chunk.length, 0) === sent.length);
    expect(Buffer.concat(accepted.copies).equals(sent)).toBe(true);
    // At most one buffer's worth per read, and always the same memory.
    expect(accepted.chunks.length).toBeGreaterThanOrEqual(5);
    for (const chunk of accepted.chunks) {
      expect(chunk.buffer).toBe(buffer.buffer);
      expect(chunk.byteOffset).toBe(buffer.byteOffset);
    }
    client.destroy();
  });

  it("reads nothing while paused, and everything sent meanwhile once resumed", async () => {
    const { client, accepted } = await pair(Buffer.alloc(4096));
    client.write(Buffer.from("first"));
    await until(() => accepted.copies.length === 1);
    accepted.socket.pause();
    client.write(Buffer.from("second"));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(accepted.copies).toHaveLength(1);
    accepted.socket.resume();
    await until(() => accepted.copies.length === 2);
    expect(accepted.copies.map((chunk) => chunk.toString())).toEqual(["first", "second"]);
    client.destroy();
  });

  it("sees the client's half-close and can still answer it", async () => {
    const { client, accepted } = await pair(Buffer.alloc(4096));
    const ended = once(accepted.socket, "end");
    client.end(Buffer.from("last words"));
    await ended;
    expect(Buffer.concat(accepted.copies).toString()).toBe("last words");
    const reply = once(client, "data");
    accepted.socket.end(Buffer.from("answer"));
    expect(String((await reply)[0])).toBe("answer");
    await once(client, "end");
    client.destroy();
  });

  it("stays counted by its server: close() completes once the moved socket closes", async () => {
    const { server, client, accepted } = await pair(Buffer.alloc(4096));
    let closed = false;
    server.close(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false); // the connection is still open
    accepted.socket.destroy();
    await until(() => closed);
    client.destroy();
  });

  it("falls back to 'data' events for a socket without a native handle to move", () => {
    const detached = connect({ port: 1, host: "127.0.0.1" });
    detached.on("error", () => {});
    detached.destroy();
    const chunks: Buffer[] = [];
    expect(readIntoSharedBuffer(detached, Buffer.alloc(16), (chunk) => chunks.push(chunk))).toBe(detached);
    detached.emit("data", Buffer.from("via data"));
    expect(chunks.map((chunk) => chunk.toString())).toEqual(["via data"]);
  });

  it("the ordinary way, starts reading a socket accepted paused, and delivers chunks of its own", async () => {
    const buffer = Buffer.alloc(4096);
    const { client, accepted } = await pair(buffer, "ordinary");
    client.write(Buffer.from("ordinary"));
    await until(() => accepted.copies.length === 1);
    expect(accepted.copies[0]!.toString()).toBe("ordinary");
    expect(accepted.chunks[0]!.buffer).not.toBe(buffer.buffer);
    client.destroy();
    accepted.socket.destroy();
  });

  it("keeps the accepted socket, reading through 'data', when the constructor refuses the handle", async () => {
    const buffer = Buffer.alloc(4096);
    const { server, client, accepted, original } = await pair(buffer, "constructor refuses");
    expect(accepted.socket).toBe(await original);
    client.write(Buffer.from("still read"));
    await until(() => accepted.copies.length === 1);
    expect(accepted.copies[0]!.toString()).toBe("still read");
    expect(accepted.chunks[0]!.buffer).not.toBe(buffer.buffer);
    const reply = once(client, "data");
    accepted.socket.write(Buffer.from("answer"));
    expect(String((await reply)[0])).toBe("answer");
    // Still counted by its server, with its handle back.
    let closed = false;
    server.close(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    accepted.socket.destroy();
    await until(() => closed);
    client.destroy();
  });
});
