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
  readonly status: 200 | 400 | 404 | 405 | 431 | 505;
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
  /** Said in the 400 answer to bytes that cannot start an HTTP request. */
  readonly notHttpHint?: string;
}

/** Longest request head (request line and headers) read; a longer one is answered 431. */
const MAX_HEAD_BYTES = 16 * 1024;
/** What is read and dropped after the answer, so the client's close arrives; past it, a reset. */
const MAX_DRAINED_BYTES = 64 * 1024;
/** The blank line that ends a head; bare LFs are taken for CRLFs, as RFC 9112 allows. */
const HEAD_END = /\r?\n\r?\n/g;
const LEADING_EMPTY_LINES = /^(\r?\n)*/;
/** A first byte no request line can start with (a method is a token; a CR may be half a CRLF). */
const NOT_A_REQUEST_START = /^[^!#$%&'*+.^_`|~0-9A-Za-z\r-]/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/(\d)\.(\d)$/;
const REASONS: Readonly<Record<HttpAnswer["status"], string>> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  505: "HTTP Version Not Supported",
};

export function startOneShotHttpServer(
  host: string,
  port: number,
  answerTo: (method: string, target: string) => HttpAnswer,
  options: OneShotHttpOptions,
): Promise<HttpServer> {
  const notHttpBody = options.notHttpHint === undefined ? "not an HTTP request\n" : `not an HTTP request: ${options.notHttpHint}\n`;
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
    let leadingDropped = 0;
    const onData = (chunk: Buffer): void => {
      // Only as much of the chunk as a head may still need, with empty lines before it: a flood in
      // one read is not copied whole.
      const scanFrom = Math.max(0, head.length - 3);
      head += chunk.toString("latin1", 0, Math.min(chunk.length, 2 * MAX_HEAD_BYTES + 4));
      // A client may send empty lines before the request line (RFC 9112, 2.2): dropped, but counted.
      const leading = LEADING_EMPTY_LINES.exec(head)![0].length;
      if (leading > 0) {
        head = head.slice(leading);
        leadingDropped += leading;
      }
      if (head.length > MAX_HEAD_BYTES + 4) head = head.slice(0, MAX_HEAD_BYTES + 4);
      // Not HTTP at all (a lock client pointed at this port: its frames start with a zero byte):
      // answered at once, where waiting for the end of a head would leave it hanging until the timeout.
      if (NOT_A_REQUEST_START.test(head)) {
        answerAndDrain(textAnswer(400, notHttpBody));
        return;
      }
      // Searched from where the last read left off, so a head trickled in byte by byte costs no more
      // than one sent whole.
      HEAD_END.lastIndex = leading > 0 ? 0 : scanFrom;
      const end = HEAD_END.exec(head);
      if (end === null && head.length <= MAX_HEAD_BYTES && leadingDropped <= MAX_HEAD_BYTES) return;
      const tooLong = end === null || end.index > MAX_HEAD_BYTES;
      answerAndDrain(tooLong ? textAnswer(431, "request head too large\n") : answerHead(head.slice(0, end.index), answerTo));
    };
    const answerAndDrain = (answer: HttpAnswer): void => {
      // Whatever follows is read and dropped, so the client's close still arrives; a client that
      // goes on sending (past the read that held the head) is cut off rather than read at full speed.
      let drained = 0;
      socket.off("data", onData).on("data", (more: Buffer) => {
        drained += more.length;
        if (drained > MAX_DRAINED_BYTES) socket.destroy();
      });
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
  const parsed = REQUEST_LINE.exec(head.split(/\r?\n/, 1)[0]!);
  if (parsed === null) return textAnswer(400, "bad request line\n");
  if (parsed[3] !== "1") return textAnswer(505, "HTTP/1.x only\n");
  // The absolute form (http://host:port/path) names the same resource as the path alone.
  return answerTo(parsed[1]!, parsed[2]!.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/, "") || "/");
}

/** A plain-text answer, with any headers besides its content type. */
export function textAnswer(status: HttpAnswer["status"], body: string, headers: Readonly<Record<string, string>> = {}): HttpAnswer {
  return { status, headers: { ...headers, "content-type": "text/plain" }, body };
}

function render(answer: HttpAnswer): string {
  let text = `HTTP/1.1 ${answer.status} ${REASONS[answer.status]}\r\ndate: ${new Date().toUTCString()}\r\n`;
  for (const [name, value] of Object.entries(answer.headers)) text += `${name}: ${value}\r\n`;
  text += `content-length: ${Buffer.byteLength(answer.body)}\r\nconnection: close\r\n\r\n`;
  return answer.headOnly === true ? text : text + answer.body;
}
