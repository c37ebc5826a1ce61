import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { syncDirectory } from "../../../src/storage/log-file.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();

vi.mock("../../../src/storage/log-file.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../../src/storage/log-file.js")>();
  return { ...original, syncDirectory: vi.fn(original.syncDirectory) };
});

describe("opening a data directory", () => {
  it("makes it and every missing parent, syncs each directory made and the one holding it, and opens it again as it is", () => {
    const base = tempDir();
    const root = join(base, "a", "b", "data");
    vi.mocked(syncDirectory).mockClear();
    const dir = openDataDir(root);
    expect(readdirSync(root).sort()).toEqual(["log", "snapshots"]);
    const synced = vi.mocked(syncDirectory).mock.calls.map(([path]) => path);
    const made = [join(base, "a"), join(base, "a", "b"), root, join(root, "log"), join(root, "snapshots")];
    expect([...synced].sort()).toEqual([base, ...made].sort());

    vi.mocked(syncDirectory).mockClear();
    expect(openDataDir(root)).toEqual(dir);
    expect(vi.mocked(syncDirectory)).not.toHaveBeenCalled();
  });

  it("names what is in the way: a file where a directory goes, or a dangling symbolic link, and makes nothing beside it", () => {
    const root = tempDir();
    const withFile = join(root, "with-file");
    mkdirSync(withFile);
    writeFileSync(join(withFile, "log"), "");
    expect(() => openDataDir(withFile)).toThrow(`EEXIST: file already exists, mkdir '${join(withFile, "log")}'`);
    expect(readdirSync(withFile)).toEqual(["log"]);

    const dangling = join(root, "dangling");
    symlinkSync(join(root, "nowhere"), dangling);
    expect(() => openDataDir(dangling)).toThrow(`EEXIST: file already exists, mkdir '${dangling}'`);

    const file = join(root, "a-file");
    writeFileSync(file, "");
    expect(() => openDataDir(file)).toThrow(`ENOTDIR: not a directory, mkdir '${join(file, "log")}'`);
  });
});
