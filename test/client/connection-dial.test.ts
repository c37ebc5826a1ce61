/**
 * A dial is started only for a caller still waiting for it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Connection } from "../../client/connection.js";
import { toEndpoint } from "../../client/endpoints.js";
import { startUnansweredListener, type UnansweredListener } from "./support/unanswered-listener.js";

let listener: UnansweredListener | undefined;
afterEach(() => listener?.close());

describe("a connection dials only for callers still waiting", () => {
  it("an open() whose signal already aborted starts no dial, so closing leaves no failure unheard", async () => {
    listener = await startUnansweredListener();
    const opened: string[] = [];
    const connection = new Connection(toEndpoint(listener.endpoint), {
      connectTimeoutMs: 60_000,
      maxInFlight: 16,
      clock: () => performance.now(),
      onOpen: (c) => opened.push(c.label),
      onClose: () => {},
    });
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
