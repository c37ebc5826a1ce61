import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();

describe("opening a data directory", () => {
  it("makes it and every missing parent, and opens it again as it is", () => {
    const root = join(tempDir(), "a", "b", "data");
    const dir = openDataDir(root);
    expect(readdirSync(root).sort()).toEqual(["log", "snapshots"]);
    expect(openDataDir(root)).toEqual(dir);
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
