import { describe, expect, it } from "vitest";
import { RESERVED_DESCRIPTORS, acceptsPerTurnWithinFileLimit, connectionsWithinFileLimit, parseOpenFileLimit } from "../../../src/server/open-file-limit.js";

const limitsText = (openFiles: string) =>
  [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max cpu time              unlimited            unlimited            seconds   ",
    `Max open files            ${openFiles.padEnd(20)} 1048576              files     `,
    "Max locked memory         8388608              8388608              bytes     ",
  ].join("\n");

describe("the open-file limit bounds the connections served", () => {
  it("reads the soft limit from /proc/<pid>/limits", () => {
    expect(parseOpenFileLimit(limitsText("1024"))).toBe(1024);
    expect(parseOpenFileLimit(limitsText("unlimited"))).toBeNull();
    expect(parseOpenFileLimit("Max cpu time unlimited unlimited seconds")).toBeNull();
  });

  it("keeps the configured maximum when it fits, and lowers it to what fits when not", () => {
    expect(connectionsWithinFileLimit(10_000, 20_000)).toBe(10_000);
    expect(connectionsWithinFileLimit(10_000, null)).toBe(10_000);
    expect(connectionsWithinFileLimit(10_000, 1024)).toBe(1024 - RESERVED_DESCRIPTORS);
    expect(connectionsWithinFileLimit(10_000, 10_000 + RESERVED_DESCRIPTORS)).toBe(10_000);
    expect(connectionsWithinFileLimit(10_000, 10_000 + RESERVED_DESCRIPTORS - 1)).toBe(9_999);
    expect(connectionsWithinFileLimit(5, 10)).toBe(1); // never below one
  });

  it("gives the listening socket's further descriptors only what the connections leave (--accepts-per-turn)", () => {
    expect(acceptsPerTurnWithinFileLimit(64, 10_000, null)).toBe(64);
    expect(acceptsPerTurnWithinFileLimit(64, 10_000, 10_000 + RESERVED_DESCRIPTORS + 63)).toBe(64);
    expect(acceptsPerTurnWithinFileLimit(64, 10_000, 10_000 + RESERVED_DESCRIPTORS + 10)).toBe(11);
    // Connections lowered to what fits leave nothing: one per turn, as Node alone.
    const limit = 1024;
    expect(acceptsPerTurnWithinFileLimit(64, connectionsWithinFileLimit(10_000, limit), limit)).toBe(1);
    expect(acceptsPerTurnWithinFileLimit(64, 100, limit)).toBe(64);
  });

  it("reads this process's own limit on Linux", async () => {
    const { readOpenFileLimit } = await import("../../../src/server/open-file-limit.js");
    const { readFileSync } = await import("node:fs");
    const expected = parseOpenFileLimit(readFileSync("/proc/self/limits", "utf8"));
    expect(expected).not.toBeNull();
    expect(readOpenFileLimit()).toBe(expected);
  });
});
