import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { encodeSnapshot, writeSnapshot } from "../../../src/core/snapshot-codec.js";
import { Command, encodeRequest } from "../../../src/protocol/index.js";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { openSnapshotFile, readSnapshotFile, writeSnapshotFile } from "../../../src/storage/snapshot-file.js";
import { u128 } from "../../support/frames.js";
import { Driver } from "../../support/state-machine-driver.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();
const position = { lastIndex: 500, lastTerm: 1 };

/** Enough remembered answers (49 bytes each) for a snapshot of several MiB, written in 1 MiB pieces. */
function stateOfMegabytes(): Driver {
  const driver = new Driver({ dedupeWindowMs: 3_600_000 });
  const frame = encodeRequest({ command: Command.Acquire, requestId: u128(1n), lockId: u128(1n), ownerId: u128(7n), ttlMs: 1000n });
  for (let n = 1; n <= 80_000; n++) {
    frame.writeUInt32BE(n, 4 + 1 + 12); // a new request id and a new lock each time
    frame.writeUInt32BE(n, 4 + 17 + 12);
    driver.send(frame, n);
  }
  return driver;
}

describe("snapshot files", () => {
  it("are written and read a piece at a time, and hold exactly the encoded state", () => {
    const dir = openDataDir(tempDir());
    const driver = stateOfMegabytes();
    let size = 0;
    const path = writeSnapshotFile(dir, position.lastIndex, (sink) => (size = writeSnapshot(driver.sm, position, sink)));
    expect(path).not.toBeNull();
    const whole = encodeSnapshot(driver.sm, position);
    expect(size).toBe(whole.length);
    expect(size).toBeGreaterThan(4 << 20);
    expect(readFileSync(path!).equals(whole)).toBe(true);
    expect(readdirSync(dir.snapshotDir)).toEqual([path!.split("/").at(-1)]);

    const decoded = readSnapshotFile(path!, driver.sm.config, 0);
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(encodeSnapshot(decoded.stateMachine, position).equals(whole)).toBe(true);
  });

  it("leave nothing behind when no longer wanted once written, or when writing fails", () => {
    const dir = openDataDir(tempDir());
    const driver = stateOfMegabytes();
    expect(writeSnapshotFile(dir, 1, (sink) => writeSnapshot(driver.sm, position, sink), () => false)).toBeNull();
    expect(readdirSync(dir.snapshotDir)).toEqual([]);
    // Asked after every synced MiB: a snapshot of several MiB stops at the first answer "no".
    let asked = 0;
    let piecesAfterNo = 0;
    const path = writeSnapshotFile(
      dir,
      1,
      (sink) =>
        writeSnapshot(driver.sm, position, {
          write(piece) {
            if (asked > 0) piecesAfterNo++;
            sink.write(piece);
          },
        }),
      () => ++asked < 1,
    );
    expect(path).toBeNull();
    expect(asked).toBe(1);
    expect(piecesAfterNo).toBe(0);
    expect(readdirSync(dir.snapshotDir)).toEqual([]);
    expect(() =>
      writeSnapshotFile(dir, 2, (sink) => {
        sink.write(Buffer.alloc(3 << 20));
        throw new Error("no space left on device");
      }),
    ).toThrow("no space left on device");
    expect(readdirSync(dir.snapshotDir)).toEqual([]);
  });

  it("report a file that ends before the bytes asked for", () => {
    const dir = openDataDir(tempDir());
    const path = writeSnapshotFile(dir, 3, (sink) => sink.write(Buffer.alloc(10, 1)))!;
    const source = openSnapshotFile(path);
    expect(source.size).toBe(10);
    const into = Buffer.alloc(16);
    source.read(into, 4);
    expect(() => source.read(into, 16)).toThrow(`${path} ends at 10 bytes, 20 wanted`);
    source.close();
    expect(readSnapshotFile(path, new Driver().sm.config, 0)).toEqual({ ok: false, reason: "too short (10 bytes)" });
  });
});
