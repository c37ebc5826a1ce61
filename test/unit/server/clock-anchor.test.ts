import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { leadSinceAnchorMs, SLEW_RATE, type ClockAnchor } from "../../../src/server/clock.js";
import { silentLogger } from "../../../src/server/logger.js";
import { currentBootId, keepClockAnchor, machineMonotonicMs, readClockAnchor } from "../../../src/storage/clock-anchor-file.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();
const anchor: ClockAnchor = { bootId: "boot-a", monotonicMs: 5_000, sampleMs: 1_800_000_000_000, slow: false };

describe("the lead a restart must absorb, from the last anchor", () => {
  it("is the whole forward step made since: none of the real time since counts at 1% fast", () => {
    // 2 s of real time, the wall clock 32 s further: 30 s stepped, all of it left to absorb, less the
    // 1 ms a restart may add (the anchor's sample is up to 1 ms behind real time).
    expect(leadSinceAnchorMs(anchor, "boot-a", 7_000, anchor.sampleMs + 32_000)).toBe(30_000 - 1);
  });

  it("keeps a lease granted just before a kill at least ttl / 1.01 - 1 ms long in real time", () => {
    // lockd ran in step for 990 ms after the anchor, granted a lease at its last reading, and was
    // killed; the wall clock stepped 4 s ahead while it was down, and it restarted 10 ms later.
    const grantedAtMs = anchor.sampleMs + 990;
    const restartMonotonicMs = anchor.monotonicMs + 1_000;
    const wallMs = anchor.sampleMs + 1_000 + 4_000;
    const startsAtMs = wallMs - leadSinceAnchorMs(anchor, "boot-a", restartMonotonicMs, wallMs);
    // Logical time may run at most 1% faster than the real time between (10 ms), plus 1 ms, and 1 ms
    // more for the restart.
    expect(startsAtMs - grantedAtMs).toBeLessThanOrEqual(10 * 1.01 + 2);
  });

  it("is nothing for a wall clock that kept time, or fell behind (leases then only last longer)", () => {
    expect(leadSinceAnchorMs(anchor, "boot-a", 7_000, anchor.sampleMs + 2_000)).toBe(0);
    expect(leadSinceAnchorMs(anchor, "boot-a", 7_000, anchor.sampleMs - 60_000)).toBe(0);
    // The anchor's sample read whole milliseconds at 0.9 ms past one; 100.2 ms later the wall clock
    // reads 101 ms more: no step, though 0.8 ms more than the monotonic clock measured.
    expect(leadSinceAnchorMs(anchor, "boot-a", anchor.monotonicMs + 100.2, anchor.sampleMs + 101)).toBe(0);
  });

  it("counts the time since at 1% slow after an anchor taken while the clock ran slow (behind a wall clock stepped back)", () => {
    const slow: ClockAnchor = { ...anchor, slow: true };
    expect(leadSinceAnchorMs(slow, "boot-a", 7_000, anchor.sampleMs + 2_000)).toBeCloseTo(20 - 1, 6);
    // As above, with the clock running slow from the anchor to the kill: the lease granted at its
    // last reading still lasts at least ttl / 1.01 - 1 ms.
    const grantedAtMs = anchor.sampleMs + 990 * (1 - SLEW_RATE);
    const wallMs = anchor.sampleMs + 1_000 + 4_000;
    const startsAtMs = wallMs - leadSinceAnchorMs(slow, "boot-a", anchor.monotonicMs + 1_000, wallMs);
    expect(startsAtMs - grantedAtMs).toBeLessThanOrEqual(10 * 1.01 + 2);
  });

  it("includes what the clock had left to absorb when the anchor was taken (its sample trailed the wall clock)", () => {
    const trailing: ClockAnchor = { ...anchor, sampleMs: anchor.sampleMs - 10_000 };
    expect(leadSinceAnchorMs(trailing, "boot-a", 7_000, anchor.sampleMs + 2_000)).toBe(10_000 - 1);
  });

  it("is nothing across a reboot, where the monotonic clock starts over, or when it is behind the anchor's", () => {
    expect(leadSinceAnchorMs(anchor, "boot-b", 10, anchor.sampleMs + 32_000)).toBe(0);
    expect(leadSinceAnchorMs(anchor, "boot-a", 10, anchor.sampleMs + 32_000)).toBe(0);
  });
});

describe("the clock-anchor file", () => {
  it("is written at once with this boot's monotonic clock and the sample given", () => {
    const dir = openDataDir(tempDir());
    const kept = keepClockAnchor(dir, () => ({ sampleMs: 1_234_567, slow: false }), silentLogger);
    const read = readClockAnchor(dir)!;
    expect(read.bootId).toBe(currentBootId());
    expect(read.sampleMs).toBe(1_234_567);
    expect(read.slow).toBe(false);
    // The clock starting to run slow is written at once, not at the next second.
    kept.noteSlowing(1_234_999);
    kept.stop();
    expect(readClockAnchor(dir)).toMatchObject({ sampleMs: 1_234_999, slow: true });
    expect(machineMonotonicMs() - read.monotonicMs).toBeGreaterThanOrEqual(0);
    expect(readFileSync(join(dir.root, "clock-anchor"), "utf8").endsWith("\n")).toBe(true);
  });

  it("reads an anchor that does not say whether the clock ran slow as not slow", () => {
    const dir = openDataDir(tempDir());
    writeFileSync(join(dir.root, "clock-anchor"), '{"bootId":"boot-a","monotonicMs":2,"sampleMs":3}\n');
    expect(readClockAnchor(dir)).toEqual({ bootId: "boot-a", monotonicMs: 2, sampleMs: 3, slow: false });
  });

  it("is taken as absent when it holds something else", () => {
    const dir = openDataDir(tempDir());
    expect(readClockAnchor(dir)).toBeNull();
    for (const junk of ["", "{", '{"bootId":1,"monotonicMs":2,"sampleMs":3}', '{"bootId":"x","monotonicMs":"2","sampleMs":3}']) {
      writeFileSync(join(dir.root, "clock-anchor"), junk);
      expect(readClockAnchor(dir), junk).toBeNull();
    }
  });
});
