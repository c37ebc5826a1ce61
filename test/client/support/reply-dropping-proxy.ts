/**
 * A TCP proxy in front of a real lockd that loses the first reply: on the first client connection it
 * forwards the first request upstream, keeps the 17-byte answer for the test, and cuts the client off
 * instead of delivering it. Later connections are forwarded untouched. It also records the request
 * id of every frame it forwards.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { BODY_REQUEST_ID, FrameEvent, FrameReader, LENGTH_PREFIX_BYTES, RESPONSE_BYTES, bytesToHex, decodeResponse, type Response } from "../../../src/protocol/index.js";

export class ReplyDroppingProxy {
  readonly requestIds: string[] = [];
  /** The reply lockd sent to the first request, which the client never saw. */
  dropped: Response | undefined;
  private readonly sockets = new Set<Socket>();
  private connections = 0;

  private constructor(private readonly server: Server) {}

  static async start(upstreamPort: number): Promise<ReplyDroppingProxy> {
    const server = createServer();
    const self = new ReplyDroppingProxy(server);
    server.on("connection", (client: Socket) => {
      const first = self.connections++ === 0;
      const upstream = connect({ host: "127.0.0.1", port: upstreamPort });
      for (const socket of [client, upstream]) {
        self.sockets.add(socket);
        socket.on("error", () => {});
        socket.on("close", () => {
          self.sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
      }
      const reader = new FrameReader();
      client.on("data", (chunk: Buffer) => {
        reader.push(chunk);
        for (let event = reader.next(); event === FrameEvent.Frame; event = reader.next()) {
          self.requestIds.push(bytesToHex(reader.frame, reader.frameStart + BODY_REQUEST_ID));
          upstream.write(Buffer.from(reader.frame.subarray(reader.frameStart - LENGTH_PREFIX_BYTES, reader.frameStart + reader.frameLength)));
        }
      });
      let received = Buffer.alloc(0);
      upstream.on("data", (chunk: Buffer) => {
        if (!first) return void client.write(chunk);
        received = Buffer.concat([received, chunk]);
        if (received.length >= RESPONSE_BYTES && self.dropped === undefined) {
          self.dropped = decodeResponse(received, 0);
          client.destroy();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return self;
  }

  get endpoint(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
