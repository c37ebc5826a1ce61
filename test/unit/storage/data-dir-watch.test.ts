import { mkdirSync, renameSync, rmSync, statSync, type Stats } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openDataDir } from "../../../src/storage/data-dir.js";
import { watchDataDir, type DataDirLoss, type DataDirWatch } from "../../../src/storage/data-dir-watch.js";
import { useTempDirs } from "../../support/temp-dir.js";
import { sleep } from "../../support/answers.js";

const tempDir = useTempDirs();
const watches: DataDirWatch[] = [];
afterEach(() => {
  for (const watch of watches.splice(0)) watch.stop();
});

const CHECK_MS = 5;

/** Watches a fresh data directory; `reports` collects what onLost was told. */
function watched(stat: (path: string) => Stats = statSync): { root: string; reports: DataDirLoss[]; lost: Promise<DataDirLoss> } {
  const root = join(tempDir(), "data");
  const dir = openDataDir(root);
  const reports: DataDirLoss[] = [];
  let resolveLost: (loss: DataDirLoss) => void = () => {};
  const lost = new Promise<DataDirLoss>((resolve) => (resolveLost = resolve));
  watches.push(
    watchDataDir(
      dir,
      (loss) => {
        reports.push(loss);
        resolveLost(loss);
      },
      CHECK_MS,
      stat,
    ),
  );
  return { root, reports, lost };
}

/** A path lookup that fails with `code` for `path` once `failing.on` is set, as after a chmod. */
function failingFor(path: () => string, code: string, failing: { on: boolean }): (path: string) => Stats {
  return (looked) => {
    if (failing.on && looked === path()) throw Object.assign(new Error(`${code}: ${looked}`), { code });
    return statSync(looked);
  };
}

describe("the data directory watch", () => {
  it("says nothing while the directory stays where it is", async () => {
    const { reports } = watched();
    await sleep(CHECK_MS * 20);
    expect(reports).toEqual([]);
  });

  it("reports the directory deleted (rm -rf), once", async () => {
    const { root, reports, lost } = watched();
    rmSync(root, { recursive: true });
    expect(await lost).toEqual({ kind: "gone", what: `${root} was deleted` });
    await sleep(CHECK_MS * 10);
    expect(reports).toHaveLength(1);
  });

  it("reports its contents deleted (rm -rf DIR/*): the log directory is watched too", async () => {
    const { root, lost } = watched();
    rmSync(join(root, "log"), { recursive: true });
    rmSync(join(root, "snapshots"), { recursive: true });
    expect(await lost).toEqual({ kind: "gone", what: `${join(root, "log")} was deleted` });
  });

  it("reports the directory moved away", async () => {
    const { root, lost } = watched();
    renameSync(root, `${root}.old`);
    expect(await lost).toEqual({ kind: "gone", what: `${root} is gone (ENOENT)` });
  });

  it("reports the directory moved away and another made in its place", async () => {
    const { root, lost } = watched();
    renameSync(root, `${root}.old`);
    mkdirSync(join(root, "log"), { recursive: true });
    expect(await lost).toEqual({ kind: "gone", what: `${root} was replaced by another directory (moved away, or deleted and made again)` });
  });

  it("reports a path it can no longer look at (permissions taken away) as unreachable, not gone: the data may be intact", async () => {
    const failing = { on: false };
    let logDir = "";
    const { root, reports, lost } = watched(failingFor(() => logDir, "EACCES", failing));
    logDir = join(root, "log");
    await sleep(CHECK_MS * 4);
    expect(reports).toEqual([]);
    failing.on = true;
    expect(await lost).toEqual({ kind: "unreachable", what: `${logDir} can no longer be looked at (EACCES)` });
  });

  for (const code of ["ENOTDIR", "ESTALE"]) {
    it(`reports a path that fails with ${code} (through a file; gone on the NFS server) as gone`, async () => {
      const failing = { on: false };
      let logDir = "";
      const { root, lost } = watched(failingFor(() => logDir, code, failing));
      logDir = join(root, "log");
      failing.on = true;
      expect(await lost).toEqual({ kind: "gone", what: `${logDir} is gone (${code})` });
    });
  }
});
