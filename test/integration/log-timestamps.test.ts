/**
 * Every stderr line starts with the UTC time, so that a log file says when a clock step, a disk
 * error or a refusal happened; not into the systemd journal, which stamps lines itself.
 */
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LOCKD_BIN } from "../support/lockd-process.js";
import { STAMP } from "../support/log-lines.js";

const scratch = mkdtempSync(join(tmpdir(), "baton-log-stamps-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const STAMPED_LINE = new RegExp(`${STAMP.source}lockd: \\S`);
let runs = 0;

/** Starts lockd with stderr into a file, stops it with SIGTERM once it listens, and returns the file's lines. */
async function stderrLinesOfOneRun(args: string[], env: (stderrFile: string) => Record<string, string> = () => ({})): Promise<string[]> {
  const run = ++runs;
  const stderrFile = join(scratch, `stderr-${run}`);
  const stderrFd = openSync(stderrFile, "w");
  const child = spawn(process.execPath, [LOCKD_BIN, "--listen", "127.0.0.1:0", "--data", join(scratch, `data-${run}`), ...args], {
    stdio: ["ignore", "pipe", stderrFd],
    env: { ...process.env, JOURNAL_STREAM: "", ...env(stderrFile) },
  });
  closeSync(stderrFd);
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  let stdout = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding("utf8").on("data", (text: string) => ((stdout += text), stdout.includes("\n") && resolve()));
    void exited.then((code) => reject(new Error(`lockd exited with ${code} before listening: ${readFileSync(stderrFile, "utf8")}`)));
  });
  child.kill("SIGTERM");
  expect(await exited).toBe(0);
  // stdout's one line is for scripts, and stays as it was.
  expect(stdout).toMatch(/^lockd listening on 127\.0\.0\.1:\d+\n$/);
  const lines = readFileSync(stderrFile, "utf8").split("\n");
  expect(lines.pop()).toBe("");
  return lines;
}

function deviceAndInode(path: string): string {
  const stat = statSync(path);
  return `${stat.dev}:${stat.ino}`;
}

describe("stderr lines carry the time", () => {
  it("by default: each line starts with the UTC time to the millisecond, taken when it was written", async () => {
    const before = Date.now();
    const lines = await stderrLinesOfOneRun([]);
    const after = Date.now();
    expect(lines.length).toBeGreaterThanOrEqual(3); // recovered, limits, the stop's lines
    for (const line of lines) {
      const match = STAMPED_LINE.exec(line);
      expect(match, line).not.toBeNull();
      const stampedAt = Date.parse(match![1]!);
      expect(stampedAt).toBeGreaterThanOrEqual(before - 1);
      expect(stampedAt).toBeLessThanOrEqual(after + 1);
    }
    expect(lines.at(-1)).toMatch(/Z lockd: stopped: every answer sent, the log closed$/);
  });

  it("--log-timestamps never: lines start with lockd:", async () => {
    const lines = await stderrLinesOfOneRun(["--log-timestamps", "never"]);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line).toMatch(/^lockd: \S/);
  });

  it("into the systemd journal (JOURNAL_STREAM names stderr itself): no stamps, journald adds its own", async () => {
    const lines = await stderrLinesOfOneRun([], (stderrFile) => ({ JOURNAL_STREAM: deviceAndInode(stderrFile) }));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(line).toMatch(/^lockd: \S/);
  });

  it("JOURNAL_STREAM inherited from a parent whose stderr was the journal, naming another file: stamped", async () => {
    const elsewhere = join(scratch, "journal-stand-in");
    closeSync(openSync(elsewhere, "w"));
    const lines = await stderrLinesOfOneRun([], () => ({ JOURNAL_STREAM: deviceAndInode(elsewhere) }));
    for (const line of lines) expect(line).toMatch(STAMPED_LINE);
  });

  it("--log-timestamps always: stamped even into the journal", async () => {
    const lines = await stderrLinesOfOneRun(["--log-timestamps", "always"], (stderrFile) => ({ JOURNAL_STREAM: deviceAndInode(stderrFile) }));
    for (const line of lines) expect(line).toMatch(STAMPED_LINE);
  });

  it("a value other than auto, always or never is a usage error", () => {
    const result = spawnSync(process.execPath, [LOCKD_BIN, "--log-timestamps", "sometimes"], { encoding: "utf8", timeout: 10_000 });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/log-timestamps.*auto.*always.*never/s);
  });
});
