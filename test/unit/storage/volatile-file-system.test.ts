/**
 * A data directory on a file system that a reboot empties (tmpfs, ramfs) is told apart by statfs(2),
 * so lockd can warn that its state, and its fencing counter, would not outlive the machine's boot.
 */
import { describe, expect, it } from "vitest";
import { volatileFileSystem } from "../../../src/storage/data-dir.js";

const statfsOf = (type: number) => () => ({ type });

describe("volatileFileSystem", () => {
  it("names tmpfs and ramfs by their statfs magic numbers", () => {
    expect(volatileFileSystem("/data", statfsOf(0x01021994))).toBe("tmpfs");
    expect(volatileFileSystem("/data", statfsOf(0x858458f6))).toBe("ramfs");
  });

  it("says nothing of file systems on disks (ext4, xfs, btrfs)", () => {
    for (const type of [0xef53, 0x58465342, 0x9123683e]) expect(volatileFileSystem("/data", statfsOf(type))).toBe(null);
  });

  it("says nothing when statfs fails", () => {
    const failing = () => {
      throw new Error("ENOSYS");
    };
    expect(volatileFileSystem("/data", failing)).toBe(null);
  });
});
