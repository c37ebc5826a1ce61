import { mkdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeStartFailure } from "../../../src/cli/start-failure.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();
const config = { host: "127.0.0.1", port: 5625, dataDir: "/var/lib/baton", metricsListen: null };

/** The error Node gives for `fail`, as lockd's start would see it. */
function errorOf(fail: () => void): NodeJS.ErrnoException {
  try {
    fail();
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
  throw new Error("expected a failure");
}

describe("why lockd could not start", () => {
  it("blames the data directory, not the port, for a permission error on a file", () => {
    const error = Object.assign(new Error("EACCES: permission denied, mkdir '/var/lib/baton/log'"), {
      code: "EACCES",
      syscall: "mkdir",
      path: "/var/lib/baton/log",
    });
    expect(describeStartFailure(error, config)).toBe("data directory /var/lib/baton: EACCES: permission denied, mkdir '/var/lib/baton/log'");
  });

  it("names the data directory for a real file system error", () => {
    const file = join(tempDir(), "a-file");
    mkdirSync(file);
    const error = errorOf(() => mkdirSync(file));
    expect(describeStartFailure(error, { ...config, dataDir: file })).toBe(`data directory ${file}: EEXIST: file already exists, mkdir '${file}'`);
  });

  it("blames the address for the lock port's own listen errors", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    const second = createServer();
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => second.once("error", resolve).listen(port, "127.0.0.1"));
    taken.close();
    expect(describeStartFailure(error, { ...config, port })).toBe(`cannot listen on 127.0.0.1:${port} (--listen): address already in use`);
    // Taken by lockd's own metrics server, which opens first.
    expect(describeStartFailure(error, { ...config, port, metricsListen: { host: "127.0.0.1", port } })).toBe(
      `cannot listen on 127.0.0.1:${port} (--listen): address already in use (--metrics-listen 127.0.0.1:${port} has the same port)`,
    );
    expect(describeStartFailure(error, { ...config, port, metricsListen: { host: "0.0.0.0", port } })).toBe(
      `cannot listen on 127.0.0.1:${port} (--listen): address already in use (--metrics-listen 0.0.0.0:${port} has the same port)`,
    );
    expect(describeStartFailure(error, { ...config, port, metricsListen: { host: "127.0.0.1", port: port + 1 } })).toBe(
      `cannot listen on 127.0.0.1:${port} (--listen): address already in use`,
    );
    const denied = Object.assign(new Error("listen EACCES: permission denied 127.0.0.1:80"), { code: "EACCES", syscall: "listen" });
    expect(describeStartFailure(denied, { ...config, port: 80 })).toBe("cannot listen on 127.0.0.1:80 (--listen): permission denied");
    const foreign = Object.assign(new Error("listen EADDRNOTAVAIL: address not available 2001:db8::1:5625"), { code: "EADDRNOTAVAIL", syscall: "listen" });
    expect(describeStartFailure(foreign, { ...config, host: "2001:db8::1" })).toBe(
      "cannot listen on [2001:db8::1]:5625 (--listen): listen EADDRNOTAVAIL: address not available 2001:db8::1:5625",
    );
  });

  it("passes other messages through", () => {
    expect(describeStartFailure(new Error("snapshot x is unreadable"), config)).toBe("snapshot x is unreadable");
  });
});
