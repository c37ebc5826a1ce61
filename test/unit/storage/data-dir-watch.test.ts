import { mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { watchDataDir, type DataDirWatch } from "../../../src/storage/data-dir-watch.js";
import { useTempDirs } from "../../support/temp-dir.js";

const tempDir = useTempDirs();
const watches: DataDirWatch[] = [];
afterEach(() => {
  for (const watch of watches.splice(0)) watch.stop();
});

const CHECK_MS = 5;

/** Watches a fresh data directory; `reports` collects what onGone was told. */
function watched(): { root: string; reports: string[]; gone: Promise<string> } {
  const root = join(tempDir(), "data");
  const dir = openDataDir(root);
  const reports: string[] = [];
  let resolveGone: (what: string) => void = () => {};
  const gone = new Promise<string>((resolve) => (resolveGone = resolve));
  watches.push(
    watchDataDir(
      dir,
      (what) => {
        reports.push(what);
        resolveGone(what);
      },
      CHECK_MS,
    ),
  );
  return { root, reports, gone };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("the data directory watch", () => {
  it("says nothing while the directory stays where it is", async () => {
    const { reports } = watched();
    await sleep(CHECK_MS * 20);
    expect(reports).toEqual([]);
  });

  it("reports the directory deleted (rm -rf), once", async () => {
    const { root, reports, gone } = watched();
    rmSync(root, { recursive: true });
    expect(await gone).toBe(`${root} was deleted`);
    await sleep(CHECK_MS * 10);
    expect(reports).toHaveLength(1);
  });

  it("reports its contents deleted (rm -rf DIR/*): the log directory is watched too", async () => {
    const { root, gone } = watched();
    rmSync(join(root, "log"), { recursive: true });
    rmSync(join(root, "snapshots"), { recursive: true });
    expect(await gone).toBe(`${join(root, "log")} was deleted`);
  });

  it("reports the directory moved away", async () => {
    const { root, gone } = watched();
    renameSync(root, `${root}.old`);
    expect(await gone).toBe(`${root} is gone (ENOENT)`);
  });

  it("reports the directory moved away and another made in its place", async () => {
    const { root, gone } = watched();
    renameSync(root, `${root}.old`);
    mkdirSync(join(root, "log"), { recursive: true });
    expect(await gone).toBe(`${root} was replaced by another directory (moved away, or deleted and made again)`);
  });
});
