/**
 * A minimal HTTP/1.1 server for lockd's metrics port: one request per connection, answered with
 * `connection: close`, everything after the request's head read and dropped unparsed.
 *
 * Node's own server parses every request in a read and runs the handler for each before it returns
 * to the event loop, so one connection pipelining thousands of GETs held lockd's lock port for
 * hundreds of milliseconds, whatever the handler did with them. Here a connection costs one search
 * for the end of its head and at most one answer; a scraper opens a connection per scrape anyway
 * when told to close, which at one scrape every few seconds costs nothing.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";

export interface HttpAnswer {
  readonly status: 200 | 400 | 404 | 405 | 431;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /** HEAD: the headers of the answer to GET, content-length included, and no body. */
  readonly headOnly?: boolean;
}

export interface HttpServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export interface OneShotHttpOptions {
  /** Connections held at once; more are closed as they arrive. */
  readonly maxConnections: number;
  /** How long a connection may take to send its request's head, and then to close after the answer. */
  readonly timeoutMs: number;
}

/** Longest request head (request line and headers) read; a longer one is answered 431. */
const MAX_HEAD_BYTES = 16 * 1024;
const HEAD_END = "\r\n\r\n";
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/;
const REASONS: Readonly<Record<HttpAnswer["status"], string>> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
};

export function startOneShotHttpServer(
  host: string,
  port: number,
  answerTo: (method: string, target: string) => HttpAnswer,
  options: OneShotHttpOptions,
): Promise<HttpServer> {
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.on("error", () => {});
    let deadline = setTimeout(() => socket.destroy(), options.timeoutMs);
    socket.once("close", () => {
      clearTimeout(deadline);
      open.delete(socket);
    });
    let head = "";
    const onData = (chunk: Buffer): void => {
      // Only as much of the chunk as a head may still need: a flood in one read is not copied whole.
      const searchedFrom = Math.max(0, head.length - HEAD_END.length + 1);
      head += chunk.toString("latin1", 0, Math.min(chunk.length, MAX_HEAD_BYTES + HEAD_END.length - head.length));
      const end = head.indexOf(HEAD_END, searchedFrom);
      if (end < 0 && head.length <= MAX_HEAD_BYTES) return;
      const answer = end < 0 || end > MAX_HEAD_BYTES ? plain(431, "request head too large\n") : answerHead(head.slice(0, end), answerTo);
      // Whatever follows is read and dropped, so the client's close still arrives.
      socket.off("data", onData).on("data", () => {});
      socket.end(render(answer));
      clearTimeout(deadline);
      deadline = setTimeout(() => socket.destroy(), options.timeoutMs);
    };
    socket.on("data", onData);
  });
  server.maxConnections = options.maxConnections;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve({
        address: server.address() as AddressInfo,
        close: () =>
          new Promise<void>((resolveClose) => {
            server.close(() => resolveClose());
            for (const socket of open) socket.destroy();
          }),
      });
    });
  });
}

function answerHead(head: string, answerTo: (method: string, target: string) => HttpAnswer): HttpAnswer {
  // A client may send empty lines before the request line (RFC 9112, 2.2).
  const requestLine = head.replace(/^(\r\n)+/, "").split("\r\n", 1)[0]!;
  const parsed = REQUEST_LINE.exec(requestLine);
  if (parsed === null) return plain(400, "bad request line\n");
  return answerTo(parsed[1]!, parsed[2]!);
}

function plain(status: HttpAnswer["status"], body: string): HttpAnswer {
  return { status, headers: { "content-type": "text/plain" }, body };
}

function render(answer: HttpAnswer): string {
  let text = `HTTP/1.1 ${answer.status} ${REASONS[answer.status]}\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) text += `${name}: ${value}\r\n`;
  text += `content-length: ${Buffer.byteLength(answer.body)}\r\nconnection: close\r\n\r\n`;
  return answer.headOnly === true ? text : text + answer.body;
}
