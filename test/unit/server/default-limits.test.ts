/**
 * The default caps on remembered answers and lock records are their fixed figures where the machine
 * has the memory for them, and stay within a quarter of a smaller machine's memory each.
 */
import { describe, expect, it } from "vitest";
import { defaultMaxDedupeEntries, defaultMaxLocks, memoryForDefaults } from "../../../src/server/config.js";

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

describe("default --max-locks", () => {
  it("is 10,000,000 with about 9.5 GiB of memory or more", () => {
    expect(defaultMaxLocks(10_000_000 * 1024)).toBe(10_000_000);
    expect(defaultMaxLocks(24 * GiB)).toBe(10_000_000);
  });

  it("is one lock per KiB of a smaller machine's memory, and never below 65,536", () => {
    expect(defaultMaxLocks(2 * GiB)).toBe(2_097_152);
    expect(defaultMaxLocks(8 * GiB)).toBe(8_388_608);
    expect(defaultMaxLocks(GiB / 1024)).toBe(65_536);
  });
});

describe("the memory the defaults are sized for", () => {
  it("is a container's memory limit where it is below the machine's memory", () => {
    expect(memoryForDefaults(64 * GiB, 2 * GiB)).toBe(2 * GiB);
    expect(defaultMaxDedupeEntries(memoryForDefaults(64 * GiB, 2 * GiB))).toBe(8_388_608);
  });

  it("is the machine's memory when there is no limit, however Node reports that", () => {
    expect(memoryForDefaults(24 * GiB, undefined)).toBe(24 * GiB);
    expect(memoryForDefaults(24 * GiB, 0)).toBe(24 * GiB);
    expect(memoryForDefaults(24 * GiB, 2 ** 64 - 1)).toBe(24 * GiB);
    expect(memoryForDefaults(24 * GiB, 48 * GiB)).toBe(24 * GiB);
  });
});
