/**
 * A stand-in server for client tests that must see or shape the wire exactly: it decodes every
 * request frame, records it, and answers whatever the test's script says (a reply, nothing, or a
 * closed connection).
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { BODY_CMD, BODY_LOCK_ID, BODY_OWNER_ID, BODY_REQUEST_ID, BODY_TTL, FrameEvent, FrameReader, LONG_BODY_BYTES, bytesToHex, encodeResponse, type Response } from "../../../src/protocol/index.js";

export interface SeenRequest {
  readonly command: number;
  readonly requestId: string;
  readonly lockId: string;
  readonly ownerId: string;
  readonly ttlMs: bigint | undefined;
  /** Which accepted connection (0 = first) carried it. */
  readonly connection: number;
}

/** What to do with a request: answer it, ignore it (no reply ever), or close the connection. */
export type Action = Response | "silence" | "close";

export class ScriptedServer {
  readonly seen: SeenRequest[] = [];
  private connections = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  static async start(script: (request: SeenRequest, index: number) => Action): Promise<ScriptedServer> {
    const server = createServer();
    const self = new ScriptedServer(server);
    server.on("connection", (socket: Socket) => {
      const connection = self.connections++;
      self.sockets.add(socket);
      socket.on("close", () => self.sockets.delete(socket));
      socket.on("error", () => {});
      const reader = new FrameReader();
      socket.on("data", (chunk: Buffer) => {
        reader.push(chunk);
        for (let event = reader.next(); event === FrameEvent.Frame; event = reader.next()) {
          const body = Buffer.from(reader.frame.subarray(reader.frameStart, reader.frameStart + reader.frameLength));
          const request: SeenRequest = {
            command: body[BODY_CMD]!,
            requestId: bytesToHex(body, BODY_REQUEST_ID),
            lockId: bytesToHex(body, BODY_LOCK_ID),
            ownerId: bytesToHex(body, BODY_OWNER_ID),
            ttlMs: body.length === LONG_BODY_BYTES ? body.readBigUInt64BE(BODY_TTL) : undefined,
            connection,
          };
          self.seen.push(request);
          const action = script(request, self.seen.length - 1);
          if (action === "close") return void socket.destroy();
          if (action !== "silence") socket.write(encodeResponse(action));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return self;
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export const ok = (fencingToken: bigint, expiresAt: bigint): Response => ({ status: 0, fencingToken, expiresAt });
export const reply = (status: number, fencingToken = 0n, expiresAt = 0n): Response => ({ status, fencingToken, expiresAt });
