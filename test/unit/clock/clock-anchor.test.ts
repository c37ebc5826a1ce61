import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { leadSinceAnchorMs, type ClockAnchor } from "../../../src/clock/clock.js";
import { currentBootId, machineMonotonicMs, openClockAnchor, readClockAnchor } from "../../../src/storage/clock-anchor-file.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();
const anchor: ClockAnchor = { bootId: "boot-a", monotonicMs: 5_000, sampleMs: 1_800_000_000_000 };

describe("the lead a restart must absorb, from the last anchor", () => {
  it("is a forward step made since, less 1% of the real time since", () => {
    // 2 s of real time, the wall clock 32 s further: 30 s stepped, 20 ms of it absorbable meanwhile.
    expect(leadSinceAnchorMs(anchor, "boot-a", 7_000, anchor.sampleMs + 32_000)).toBe(30_000 - 20);
  });

  it("keeps a lease granted at the anchor's sample at least ttl / 1.01 - 1 ms long, less 1 ms for the restart", () => {
    // The anchor is the last sample handed out (the clock tells it before handing it out): the lease
    // was granted at it, whatever the clock did before (ran slow, stood still). lockd was killed, the
    // wall clock stepped 4 s ahead while it was down, and it restarted 60 ms after the grant.
    const grantedAtMs = anchor.sampleMs;
    const restartMonotonicMs = anchor.monotonicMs + 60;
    const wallMs = anchor.sampleMs + 60 + 4_000;
    const startsAtMs = wallMs + 1 - leadSinceAnchorMs(anchor, "boot-a", restartMonotonicMs, wallMs); // as the clock starts
    expect(startsAtMs - grantedAtMs).toBeLessThanOrEqual(60 * 1.01 + 2);
  });

  it("is nothing for a wall clock that kept time, or fell behind (leases then only last longer)", () => {
    expect(leadSinceAnchorMs(anchor, "boot-a", 7_000, anchor.sampleMs + 2_000)).toBe(0);
    expect(leadSinceAnchorMs(anchor, "boot-a", 7_000, anchor.sampleMs - 60_000)).toBe(0);
  });

  it("is not rounded up: a restart soon after, with a wall clock that kept time, starts in step with it", () => {
    // The anchor's sample read whole milliseconds at 0.9 ms past one; 20.2 ms later the wall clock
    // reads 21 ms more: 0.8 ms more than the monotonic clock measured, 0.598 ms more than 1% fast
    // allows, which the 1 ms the clock's start adds for whole milliseconds takes. Rounded up to
    // 1 ms, the restart would start 1 ms behind the wall clock, as after a step.
    const wallMs = anchor.sampleMs + 21;
    const leadMs = leadSinceAnchorMs(anchor, "boot-a", anchor.monotonicMs + 20.2, wallMs);
    expect(leadMs).toBeCloseTo(0.598, 3);
    expect(wallMs + 1 - leadMs).toBeGreaterThan(wallMs); // the clock's start: not behind the wall clock
  });

  it("includes what the clock had left to absorb when the anchor was taken (its sample trailed the wall clock)", () => {
    const trailing: ClockAnchor = { ...anchor, sampleMs: anchor.sampleMs - 10_000 };
    expect(leadSinceAnchorMs(trailing, "boot-a", 7_000, anchor.sampleMs + 2_000)).toBe(10_000 - 20);
  });

  it("is nothing across a reboot, where the monotonic clock starts over, or when it is behind the anchor's", () => {
    expect(leadSinceAnchorMs(anchor, "boot-b", 10, anchor.sampleMs + 32_000)).toBe(0);
    expect(leadSinceAnchorMs(anchor, "boot-a", 10, anchor.sampleMs + 32_000)).toBe(0);
  });
});

describe("the clock-anchor file", () => {
  it("is written at each note with this boot's monotonic clock read after it, the last one wins", () => {
    const dir = openDataDir(tempDir());
    const writer = openClockAnchor(dir)!;
    const before = machineMonotonicMs();
    writer.note(1_234_567);
    let read = readClockAnchor(dir)!;
    expect(read).toMatchObject({ bootId: currentBootId(), sampleMs: 1_234_567 });
    expect(read.monotonicMs).toBeGreaterThanOrEqual(before);
    writer.note(1_234_999);
    read = readClockAnchor(dir)!;
    expect(read.sampleMs).toBe(1_234_999);
    writer.close();
    writer.note(2_000_000); // after the close: nothing
    expect(readClockAnchor(dir)!.sampleMs).toBe(1_234_999);
  });

  it("leaves the last run's anchor in place until the first note, and replaces a longer file whole", () => {
    const dir = openDataDir(tempDir());
    const last = { bootId: "boot-a", monotonicMs: 2, sampleMs: 3 };
    writeFileSync(join(dir.root, "clock-anchor"), `${JSON.stringify(last)}\n`);
    const writer = openClockAnchor(dir)!;
    expect(readClockAnchor(dir)).toEqual(last);
    writeFileSync(join(dir.root, "clock-anchor"), `${JSON.stringify(last)}\n${"x".repeat(500)}`);
    writer.note(7);
    writer.close();
    expect(readClockAnchor(dir)!.sampleMs).toBe(7);
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
