/**
 * The default cap on remembered answers holds the default window at full speed where the machine has
 * the memory for it, and stays within a quarter of a smaller machine's memory.
 */
import { describe, expect, it } from "vitest";
import { defaultMaxDedupeEntries } from "../../../src/server/config.js";

const GiB = 1024 ** 3;

describe("default --max-dedupe-entries", () => {
  it("is 67,108,864 on machines with 16 GiB of memory or more", () => {
    expect(defaultMaxDedupeEntries(16 * GiB)).toBe(67_108_864);
    expect(defaultMaxDedupeEntries(24 * GiB)).toBe(67_108_864);
    expect(defaultMaxDedupeEntries(512 * GiB)).toBe(67_108_864);
  });

  it("is one entry per 256 bytes of a smaller machine's memory", () => {
    expect(defaultMaxDedupeEntries(4 * GiB)).toBe(16_777_216);
    expect(defaultMaxDedupeEntries(2 * GiB)).toBe(8_388_608);
    expect(defaultMaxDedupeEntries(3 * GiB + 255)).toBe((3 * GiB) / 256);
  });

  it("never goes below 65,536 entries", () => {
    expect(defaultMaxDedupeEntries(1024 * 1024)).toBe(65_536);
    expect(defaultMaxDedupeEntries(0)).toBe(65_536);
  });
});
