import { describe, expect, it } from "vitest";
import { ENTRY_BYTES } from "../../../src/log/record.js";
import { ANNOUNCED_RECOVERY_BYTES, REPLAY_PROGRESS_EVERY_MS, RecoveryProgress } from "../../../src/storage/recovery-progress.js";
import { capturingLogger } from "../../support/capturing-logger.js";

describe("a long recovery says what it reads and how far it got; a short one says nothing", () => {
  it("stays silent below the announced size, whatever it holds", () => {
    const logger = capturingLogger();
    const justBelow = Math.floor((ANNOUNCED_RECOVERY_BYTES - 1 - 1000) / ENTRY_BYTES);
    expect(RecoveryProgress.start(logger, "/data", 1000, justBelow, { now: () => 0 })).toBeNull();
    expect(RecoveryProgress.start(logger, "/data", 0, 0, { now: () => 0 })).toBeNull();
    expect(logger.lines).toEqual([]);
  });

  it("announces a large snapshot, its load, and the replay every few seconds, not more often", () => {
    const logger = capturingLogger();
    let nowMs = 1000;
    const report = RecoveryProgress.start(logger, "/data", ANNOUNCED_RECOVERY_BYTES, 5_000_000, { now: () => nowMs })!;
    expect(report).not.toBeNull();
    nowMs += 3500;
    report.snapshotLoaded(40_000_000, 4_000_000);
    nowMs += REPLAY_PROGRESS_EVERY_MS - 1;
    report.replayed(1_000_000, 4_000_000); // too soon after the last line
    nowMs += 1;
    report.replayed(1_500_000, 4_000_000);
    nowMs += 100;
    report.replayed(1_600_000, 4_000_000);
    expect(logger.lines).toEqual([
      "recovering /data: a snapshot of 256 MiB, then up to 5000000 log entries to replay",
      "recovery: snapshot at index 40000000 loaded in 3.5 s; replaying 4000000 log entries",
      "recovery: 1500000 of 4000000 log entries replayed (37%) after 5.5 s",
    ]);
  });

  it("announces a long log with no snapshot by its entries alone", () => {
    const logger = capturingLogger();
    const entries = Math.ceil(ANNOUNCED_RECOVERY_BYTES / ENTRY_BYTES);
    expect(RecoveryProgress.start(logger, "/data", 0, entries, { now: () => 0 })).not.toBeNull();
    expect(logger.lines).toEqual([`recovering /data: up to ${entries} log entries to replay`]);
  });
});
