/**
 * `--metrics-listen`: the text exposition of one reading, line by line, and the HTTP server's
 * answers: one request per connection, and what is not a scrape.
 */
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { metricsText, startMetricsServer, type MetricsReading, type MetricsServer } from "../../../src/server/metrics.js";

const READING: MetricsReading = {
  version: "1.2.3",
  requests: 10,
  logIndex: 8,
  batches: 3,
  commitMsTotal: 1.5,
  commitBuckets: [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
  connections: 4,
  maxConnections: 100,
  requestsInFlight: 6,
  maxInflightTotal: 4096,
  lockRecords: 5,
  maxLocks: 1000,
  rememberedAnswers: 7,
  maxDedupeEntries: 5000,
  nextFencingToken: 42,
  connectionsClosed: { overLimit: 1, frameTimeout: 2, idleTimeout: 3, replyTimeout: 4 },
  acceptingDescriptors: 9,
};

describe("metricsText", () => {
  it("gives every family a HELP and a TYPE line and the reading's values, in the text format", () => {
    const lines = metricsText(READING).split("\n");
    const samples = lines.filter((line) => line !== "" && !line.startsWith("#"));
    expect(samples).toEqual([
      'baton_build_info{version="1.2.3"} 1',
      "baton_requests_total 10",
      "baton_log_index 8",
      'baton_commit_seconds_bucket{le="0.0001"} 0',
      'baton_commit_seconds_bucket{le="0.00025"} 1',
      'baton_commit_seconds_bucket{le="0.0005"} 2',
      'baton_commit_seconds_bucket{le="0.001"} 3',
      'baton_commit_seconds_bucket{le="0.0025"} 3',
      'baton_commit_seconds_bucket{le="0.005"} 3',
      'baton_commit_seconds_bucket{le="0.01"} 3',
      'baton_commit_seconds_bucket{le="0.025"} 3',
      'baton_commit_seconds_bucket{le="0.05"} 3',
      'baton_commit_seconds_bucket{le="0.1"} 3',
      'baton_commit_seconds_bucket{le="0.25"} 3',
      'baton_commit_seconds_bucket{le="1"} 3',
      'baton_commit_seconds_bucket{le="+Inf"} 3',
      "baton_commit_seconds_sum 0.0015",
      "baton_commit_seconds_count 3",
      "baton_connections 4",
      "baton_connections_limit 100",
      'baton_connections_closed_total{reason="max_connections"} 1',
      'baton_connections_closed_total{reason="frame_timeout"} 2',
      'baton_connections_closed_total{reason="idle_timeout"} 3',
      'baton_connections_closed_total{reason="reply_timeout"} 4',
      "baton_accepting_descriptors 9",
      "baton_requests_in_flight 6",
      "baton_requests_in_flight_limit 4096",
      "baton_lock_records 5",
      "baton_lock_records_limit 1000",
      "baton_remembered_answers 7",
      "baton_remembered_answers_limit 5000",
      "baton_next_fencing_token 42",
    ]);
    const families = lines.filter((line) => line.startsWith("# TYPE ")).map((line) => line.split(" ")[2]);
    const helped = lines.filter((line) => line.startsWith("# HELP ")).map((line) => line.split(" ")[2]);
    expect(helped).toEqual(families);
    expect(families).toHaveLength(15);
    expect(metricsText(READING).endsWith("\n")).toBe(true);
  });
});

describe("the metrics server", () => {
  let server: MetricsServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  function ask(method: string, path: string): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: server!.address.port, method, path, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (text: string) => (body += text));
        res.on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"]), body }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  it("answers GET /metrics with a fresh reading each time, HEAD without a body, 404 elsewhere, 405 to other methods", async () => {
    let requests = 10;
    server = await startMetricsServer("127.0.0.1", 0, () => ({ ...READING, requests }));
    const first = await ask("GET", "/metrics");
    expect(first.status).toBe(200);
    expect(first.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(first.body).toContain("\nbaton_requests_total 10\n");
    requests = 11;
    expect((await ask("GET", "/metrics?x=1")).body).toContain("\nbaton_requests_total 11\n");
    expect(await ask("HEAD", "/metrics")).toMatchObject({ status: 200, body: "" });
    expect((await ask("GET", "/")).status).toBe(404);
    expect((await ask("POST", "/metrics")).status).toBe(405);
  });

  it("closes connections that send nothing, half a request, or a header at a time, after its timeout", async () => {
    server = await startMetricsServer("127.0.0.1", 0, () => READING, 300);
    const port = server.address.port;
    const trickles: NodeJS.Timeout[] = [];
    /** How long until the server closed the connection `feed` started; Infinity if not within 10 s. */
    const closedWithin = (feed: (socket: Socket) => void) =>
      new Promise<number>((resolve) => {
        const started = Date.now();
        const socket = connect(port, "127.0.0.1", () => feed(socket));
        const giveUp = setTimeout(() => {
          socket.destroy();
          resolve(Infinity);
        }, 10_000);
        socket.on("error", () => {});
        // Read, as a real client does: a socket nobody reads from can miss the server's close (its
        // end of stream waits for a reader), which looked like the server holding it open.
        socket.resume();
        socket.on("close", () => {
          clearTimeout(giveUp);
          resolve(Date.now() - started);
        });
      });
    const closes = await Promise.all([
      closedWithin(() => {}),
      closedWithin((socket) => socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n")),
      closedWithin((socket) => {
        socket.write("GET /metrics HTTP/1.1\r\n");
        trickles.push(setInterval(() => socket.write("X-Slow: 1\r\n"), 50));
      }),
    ]);
    for (const trickle of trickles) clearInterval(trickle);
    // Node's own default would hold each of them for 30 s or more.
    expect(closes.map((ms) => ms < 5_000)).toEqual([true, true, true]);
    // And a real scrape still gets through afterwards.
    expect((await ask("GET", "/metrics")).status).toBe(200);
  });

  /** Everything the server sends on one connection that writes `bytes`, until it closes. */
  function exchange(bytes: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(server!.address.port, "127.0.0.1", () => socket.write(bytes));
      let received = "";
      socket.setEncoding("latin1").on("data", (text: string) => (received += text));
      socket.on("error", reject);
      socket.on("end", () => {
        socket.destroy();
        resolve(received);
      });
    });
  }

  it("answers one request per connection and closes it: pipelined requests after the first are dropped unread", async () => {
    let scrapes = 0;
    server = await startMetricsServer("127.0.0.1", 0, () => ({ ...READING, requests: ++scrapes }));
    const received = await exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2_000));
    expect(received.match(/^HTTP\/1\.1 /gm)).toHaveLength(1);
    expect(received).toMatch(/^HTTP\/1\.1 200 OK\r\n(.*\r\n)*connection: close\r\n\r\n# HELP/);
    expect(scrapes).toBe(1);
    // The next scrape is a connection of its own, and a client that keeps connections alive reconnects.
    expect((await ask("GET", "/metrics")).body).toContain("\nbaton_requests_total 2\n");
  });

  it("answers a HEAD with the GET's length and no body, 400 to what is not a request line, 431 to a head over 16 KiB", async () => {
    server = await startMetricsServer("127.0.0.1", 0, () => READING);
    const get = await exchange("\r\nGET /metrics HTTP/1.0\r\n\r\n");
    const body = get.slice(get.indexOf("\r\n\r\n") + 4);
    expect(get).toContain(`\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`);
    const head = await exchange("HEAD /metrics HTTP/1.1\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toContain(`\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`);
    expect(head.endsWith("\r\n\r\n")).toBe(true);
    expect(await exchange("garbage\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(await exchange("GET /metrics HTTP/2.0\r\n\r\n")).toMatch(/^HTTP\/1\.1 505 /);
    // Empty lines before the request line, bare LFs, and the absolute form are all one scrape.
    expect(await exchange("\r\n\r\n\nGET /metrics HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 200 OK\r\ndate: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} [\d:]{8} GMT\r\n/);
    expect(await exchange("GET /metrics HTTP/1.1\nHost: x\n\n")).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(await exchange("GET http://127.0.0.1:9625/metrics HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(await exchange("GET http://127.0.0.1:9625 HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 404 /);
    expect(await exchange(`GET /metrics HTTP/1.1\r\nX-Big: ${"a".repeat(16 * 1024)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /);
    expect(await exchange(`GET /metrics HTTP/1.1\r\nX-Big: ${"a".repeat(15 * 1024)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    // Empty lines before it count on their own: a stream of them is cut short, a few are not.
    expect(await exchange("\r\n".repeat(9 * 1024))).toMatch(/^HTTP\/1\.1 431 /);
    expect(await exchange(`${"\r\n".repeat(512)}GET /metrics HTTP/1.1\r\nX-Big: ${"a".repeat(15 * 1024)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it("answers 400 at once, saying which port this is, to bytes no HTTP request starts with, such as a lock request", async () => {
    server = await startMetricsServer("127.0.0.1", 0, () => READING, 600_000);
    // A lock request frame (length 53, then the rest): without the early answer, this waits for the
    // 10-minute timeout and the test times out.
    const frame = Buffer.alloc(57);
    frame.writeUInt32BE(53, 0);
    frame[4] = 1;
    const answer = await exchange(frame.toString("latin1"));
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toContain("\r\n\r\nnot an HTTP request: this is lockd's metrics address (--metrics-listen)");
    // A CR whose LF comes in a later read is not taken for such a byte.
    const split = await new Promise<string>((resolve, reject) => {
      const socket = connect(server!.address.port, "127.0.0.1", () => {
        socket.setNoDelay(true).write("\r");
        setTimeout(() => socket.write("\nGET /metrics HTTP/1.1\r\n\r\n"), 50);
      });
      let received = "";
      socket.setEncoding("latin1").on("data", (text: string) => (received += text));
      socket.on("error", reject);
      socket.on("end", () => resolve(received));
    });
    expect(split).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it("cuts off a client that goes on sending after its answer, instead of reading it at full speed until the timeout", async () => {
    server = await startMetricsServer("127.0.0.1", 0, () => READING, 600_000);
    // Without the cut-off this connection would stay open for the 10-minute timeout: the test would time out.
    await new Promise<void>((resolve) => {
      // Half-open: it ignores the answer's end and goes on sending, as a hostile client does.
      const socket = connect({ port: server!.address.port, host: "127.0.0.1", allowHalfOpen: true }, () => {
        socket.write("GET /metrics HTTP/1.1\r\n\r\n");
        const junk = Buffer.alloc(64 * 1024, "x");
        const send = () => {
          while (!socket.destroyed && socket.write(junk));
        };
        socket.on("drain", send);
        send();
      });
      socket.resume();
      socket.on("error", () => {});
      socket.on("close", () => resolve());
    });
    expect((await ask("GET", "/metrics")).status).toBe(200);
  });

  it("rejects an address it cannot listen on", async () => {
    server = await startMetricsServer("127.0.0.1", 0, () => READING);
    await expect(startMetricsServer("127.0.0.1", server.address.port, () => READING)).rejects.toThrow(/EADDRINUSE/);
  });
});
