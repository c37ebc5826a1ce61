/**
 * A dial is started only for a caller still waiting for it, and one that got no answer for a while
 * does not hold the callers after it.
 */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Connection } from "../../client/connection.js";
import { toEndpoint } from "../../client/endpoints.js";
import { startUnansweredListener, type UnansweredListener } from "./support/unanswered-listener.js";

let listener: UnansweredListener | undefined;
afterEach(() => listener?.close());

/** A connection to `endpoint` on the real clock; `opened` collects each connect. */
function connectionTo(endpoint: string, connectTimeoutMs: number, opened: string[] = []): Connection {
  return new Connection(toEndpoint(endpoint), {
    connectTimeoutMs,
    maxInFlight: 16,
    clock: () => performance.now(),
    onOpen: (c) => opened.push(c.label),
    onClose: () => {},
  });
}

describe("a connection dials only for callers still waiting", () => {
  it("an open() whose signal already aborted starts no dial, so closing leaves no failure unheard", async () => {
    listener = await startUnansweredListener();
    const opened: string[] = [];
    const connection = connectionTo(listener.endpoint, 60_000, opened);
    const unheard: unknown[] = [];
    const onUnhandled = (reason: unknown) => unheard.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const aborted = new AbortController();
      aborted.abort(new Error("the lease ended"));
      await expect(connection.open(aborted.signal, 1000)).rejects.toMatchObject({ code: "BATON_ABORTED" });
      connection.close();
      for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
      expect(unheard).toEqual([]);
      expect(opened).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe("a dial whose SYN was lost does not hold the retries after it", () => {
  it("a caller after it starts a fresh dial, which reaches the server that is back at once; the first to connect is kept", async () => {
    const unanswered = await startUnansweredListener();
    listener = unanswered;
    const port = Number(unanswered.endpoint.split(":")[1]);
    const opened: string[] = [];
    const connection = connectionTo(unanswered.endpoint, 60_000, opened);
    let server: Server | undefined;
    try {
      const startedMs = performance.now();
      // The kernel drops this dial's SYN (the queue is full), and sends it again only after a second.
      await expect(connection.open(undefined, 100)).rejects.toMatchObject({ code: "BATON_CONNECTION" });
      // The path heals: the port accepts again, well before that second is up.
      unanswered.close();
      server = createServer(() => {});
      for (let tries = 0; ; tries++) {
        try {
          await new Promise<void>((resolve, reject) => server!.once("error", reject).listen(port, "127.0.0.1", () => resolve()));
          break;
        } catch (error) {
          if (tries > 50) throw error;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedMs + 350 - performance.now())));
      // Waiting on the first dial alone, this would fail: its SYN goes again only a second after it started.
      await connection.open(undefined, 500);
      expect(opened).toHaveLength(1);
      // Past the first dial's second SYN: had it connected, it was given up, not taken as the connection.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedMs + 1500 - performance.now())));
      expect(opened).toHaveLength(1);
      expect(connection.isOpen).toBe(true);
    } finally {
      connection.close();
      server?.close();
    }
  });

  it("each caller still fails after the connect timeout from its own call, however many dials later callers start", async () => {
    listener = await startUnansweredListener();
    const connection = connectionTo(listener.endpoint, 1000);
    try {
      let outcome: string | undefined;
      void connection.open().then(
        () => (outcome = "connected"),
        (error: Error) => (outcome = error.message),
      );
      // Callers keep coming, each after the dials in progress went unanswered for a while: every one
      // may start a fresh dial, which must not keep the first caller waiting (nor from moving on).
      for (let caller = 0; outcome === undefined && caller < 12; caller++) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        connection.open(undefined, 100).catch(() => {});
      }
      expect(outcome).toMatch(/connect timed out after 1000 ms$/);
    } finally {
      connection.close();
    }
  });
});
