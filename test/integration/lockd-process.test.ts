import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { LOCKD_BIN, spawnLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire } from "../support/frames.js";
import { splitAnswers } from "../support/answers.js";
import { unstamped } from "../support/log-lines.js";

const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** A data directory for starts whose state no test looks at. */
const scratchDir = mkdtempSync(join(tmpdir(), "baton-process-"));
afterAll(() => rmSync(scratchDir, { recursive: true, force: true }));

function runLockd(args: string[]) {
  return spawnSync(process.execPath, [LOCKD_BIN, ...args], { encoding: "utf8", timeout: 10_000 });
}

describe("on ready lockd prints one line: lockd listening on HOST:PORT", () => {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    it(`prints exactly that line on stdout, and a ${signal} right after it exits 0`, async () => {
      const child = spawn(process.execPath, [LOCKD_BIN, "--listen", "127.0.0.1:0", "--data", scratchDir], { stdio: ["ignore", "pipe", "pipe"] });
      const exited = new Promise<string>((resolve) => child.once("exit", (code, killedBy) => resolve(`exit ${code}, signal ${killedBy}`)));
      let stdout = "";
      await new Promise<void>((resolve) => child.stdout.on("data", (text: Buffer) => ((stdout += text), stdout.includes("\n") && resolve())));
      child.kill(signal); // at once: the server must already handle it gracefully
      expect(await exited).toBe("exit 0, signal null");
      expect(stdout).toMatch(/^lockd listening on 127\.0\.0\.1:[1-9]\d*\n$/);
    });
  }
});

describe("a bad flag or a busy port: a clear message and a non-zero exit", () => {
  const cases: [string[], RegExp][] = [
    [["--max-ttl", "abc"], /max-ttl.*whole number/s],
    // Past 100 years, now + ttl could leave the range the server computes times in exactly.
    [["--max-ttl", "9007199254740991"], /max-ttl.*expected 1\.\.3155760000000/s],
    [["--max-ttl", "3155760000001"], /max-ttl.*expected 1\.\.3155760000000/s],
    // A negative number is a whole number out of range, not something else.
    [["--max-ttl", "-5"], /max-ttl.*expected 1\.\.3155760000000, got -5/s],
    [["--expired-retention", "-1"], /expired-retention.*expected 0\.\.\d+, got -1/s],
    [["--frame-timeout", "-0"], /frame-timeout.*expected a whole number, got "-0"/s],
    [["--inline-sync-max", "-5"], /inline-sync-max.*expected 0\.\.\d+ or unlimited, got -5/s],
    // Segments are preallocated in full: a mistyped size would fill the disk with zeros.
    [["--segment-bytes", "32000000000"], /segment-bytes.*expected 65536\.\.1073741824/s],
    [["--max-connections", "0"], /max-connections.*expected 1\.\./s],
    // The longest request body is 57 bytes, and the protocol promises a close only past 1024.
    [["--max-frame-length", "56"], /max-frame-length.*expected 57\.\.1024/s],
    [["--max-frame-length", "1025"], /max-frame-length.*expected 57\.\.1024/s],
    [["--inline-sync-max", "all"], /inline-sync-max.*whole number/s],
    // Each accept past the first is a descriptor of the listening socket; 1024 is what one poll of libuv returns.
    [["--accepts-per-turn", "0"], /accepts-per-turn.*expected 1\.\.1024, got 0/s],
    [["--accepts-per-turn", "1025"], /accepts-per-turn.*expected 1\.\.1024, got 1025/s],
    [["--listen", "nowhere"], /HOST:PORT/],
    [["--listen", "127.0.0.1:70000"], /port out of range/],
    // "::1:8709" is an IPv6 address of its own: not split at its last colon, as the clients do not either.
    [["--listen", "::1:8709"], /expected HOST:PORT, got "::1:8709" \(an IPv6 address goes in brackets: \[::1\]:5625\)/],
    [["--metrics-listen", "::1:9625"], /an IPv6 address goes in brackets/],

    [["--fsync", "sometimes"], /fsync.*always.*never/s],
    // A Node timer longer than 2^31 - 1 ms fires after 1 ms; one under 100 ms would flood stderr.
    [["--stats-every", "2147483648"], /stats-every.*expected 0 \(off\) or 100\.\.2147483647/s],
    [["--stats-every", "50"], /stats-every.*expected 0 \(off\) or 100\.\.2147483647/s],
    [["--stats-every", "-100"], /stats-every.*expected 0 \(off\) or 100\.\.2147483647, got -100/s],
    [["--stats-every", "99999999999999999999"], /stats-every.*expected 0 \(off\) or 100\.\.2147483647/s],
    [["--no-such-flag"], /unknown option/],
  ];
  for (const [args, message] of cases) {
    it(`rejects ${args.join(" ")}`, () => {
      const result = runLockd(args);
      expect(result.status).not.toBe(0);
      expect(result.status).not.toBeNull();
      expect(result.stderr).toMatch(message);
      expect(result.stdout).not.toMatch(/listening/);
    });
  }

  it("refuses an empty --data (an unset variable in `--data $DIR`) without creating anything in its working directory", () => {
    for (const [empty, said] of [["", "an empty path"], ["  ", 'only blanks ("  ")']] as const) {
      const cwd = mkdtempSync(join(scratchDir, "cwd-"));
      const result = spawnSync(process.execPath, [LOCKD_BIN, "--listen", "127.0.0.1:0", "--data", empty], { cwd, encoding: "utf8", timeout: 10_000 });
      expect(result.status).toBe(1);
      expect(result.stderr).toContain(`expected a directory, got ${said}`);
      expect(readdirSync(cwd)).toEqual([]);
    }
  });

  it("says a usage error in one line, the suggestion on it, pointing at --help", () => {
    for (const [args, line] of [
      [["--lisen", "127.0.0.1:1"], "lockd: unknown option '--lisen' (Did you mean --listen?) (lockd --help lists every option)\n"],
      [["--max-ttl", "abc"], `lockd: option '--max-ttl <ms>' argument 'abc' is invalid. expected a whole number, got "abc" (lockd --help lists every option)\n`],
    ] as const) {
      const result = runLockd([...args]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(line);
    }
  });

  it("exits non-zero on a busy port, saying so", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    const result = spawnSync(process.execPath, [LOCKD_BIN, "--listen", `127.0.0.1:${port}`, "--data", scratchDir], { encoding: "utf8", timeout: 10_000 });
    await new Promise((resolve) => blocker.close(resolve));
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`127\\.0\\.0\\.1:${port} \\(--listen\\): address already in use`));
  });

  it("--help lists every flag and exits 0", () => {
    const result = runLockd(["--help"]);
    expect(result.status).toBe(0);
    const flags = ["--listen", "--data", "--max-ttl", "--dedupe-window", "--max-dedupe-entries", "--expired-retention", "--max-locks", "--max-connections", "--max-inflight", "--max-inflight-total", "--max-queued-reply-bytes", "--max-frame-length", "--frame-timeout", "--idle-timeout", "--reply-timeout", "--fsync", "--snapshot-every", "--segment-bytes", "--inline-sync-max", "--bump-fencing-token", "--metrics-listen", "--stats-every", "--version", "--help"];
    for (const flag of flags) expect(result.stdout).toContain(flag);
  });

  it("--version prints package.json's version and exits 0", () => {
    const result = runLockd(["--version"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(`${PACKAGE_VERSION}\n`);
  });
});

describe("SIGTERM: stop accepting, answer what is in flight, flush, exit 0", () => {
  it("answers requests in flight whole and in order, closes the connections, and exits 0", async () => {
    const lockd = await spawnLockd();
    const clients = await Promise.all(Array.from({ length: 4 }, () => RawClient.open(lockd.port)));
    const perClient = 2000;
    for (const [c, client] of clients.entries()) {
      const frames: Buffer[] = [];
      for (let n = 0; n < perClient; n++) frames.push(acquire({ lock: BigInt(c * perClient + n + 1), owner: 1n }, 60_000n));
      client.write(Buffer.concat(frames));
    }
    // SIGTERM as soon as the first answer is back, while the rest are in flight.
    const first = await clients[0]!.read(17);
    const exit = lockd.stop();
    const closed = await Promise.all(clients.map((client) => client.closedWithin(10_000)));
    expect(await exit).toBe(0);
    expect(closed.every(Boolean)).toBe(true);
    let answered = 0;
    for (const [c, client] of clients.entries()) {
      const answers = splitAnswers(c === 0 ? Buffer.concat([first, client.peek()]) : client.peek()); // whole answers only
      answered += answers.length;
      for (const [n, answer] of answers.entries()) {
        expect(answer.status, `answer ${n}`).toBe(Status.Ok);
        if (n > 0) expect(answer.fencingToken).toBeGreaterThan(answers[n - 1]!.fencingToken);
      }
    }
    expect(answered).toBeGreaterThan(0);
    expect(unstamped(lockd.stderr())).toMatch(/lockd: SIGTERM: finishing requests in flight\n(.*\n)*lockd: stopped: every answer sent, the log closed\n$/);
    lockd.cleanup();
  });

  it("lets idle clients go at once: one that closes on the server's FIN does not wait out the grace period", async () => {
    const lockd = await spawnLockd();
    // Pooled clients: each had an answer and stays connected, idle. Node closes a client's side
    // when the server's FIN arrives.
    const clients = await Promise.all(Array.from({ length: 3 }, () => RawClient.open(lockd.port)));
    for (const [n, client] of clients.entries()) {
      client.write(acquire({ lock: BigInt(n + 1), owner: 1n }, 60_000n));
      expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Ok);
    }
    const startedMs = performance.now();
    expect(await lockd.stop()).toBe(0);
    // The 2 s grace is for clients that keep their side open; these closed theirs at once.
    expect(performance.now() - startedMs).toBeLessThan(1_500);
    expect((await Promise.all(clients.map((client) => client.closedWithin(1_000)))).every(Boolean)).toBe(true);
    lockd.cleanup();
  });

  it("no longer accepts connections after SIGTERM", async () => {
    const lockd = await spawnLockd();
    const port = lockd.port;
    expect(await lockd.stop()).toBe(0);
    await expect(RawClient.open(port)).rejects.toThrow();
    lockd.cleanup();
  });
});

describe("a data directory deleted under a running lockd", () => {
  it("is noticed: every request answers 6 from then on, and the log says what happened and what to do", async () => {
    const lockd = await spawnLockd();
    const client = await RawClient.open(lockd.port);
    const ask = async (lock: bigint) => {
      client.write(acquire({ lock, owner: 1n, request: lock }, 60_000n));
      return splitAnswers(await client.read(17))[0]!.status;
    };
    try {
      expect(await ask(1n)).toBe(Status.Ok);
      rmSync(lockd.dataDir, { recursive: true });
      let lock = 2n;
      // Checked once a second: a few answers may still be 0 before it is noticed.
      while ((await ask(lock)) !== Status.Unavailable) {
        expect(lock).toBeLessThan(60n);
        lock++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(await ask(1000n)).toBe(Status.Unavailable);
      expect(lockd.stderr()).toContain(`the data directory check failed (${lockd.dataDir} was deleted); refusing every request with status 6`);
      expect(lockd.stderr()).toContain("restore the directory from a backup and start it once with --bump-fencing-token");
      // A graceful stop still answers and exits 0, and says the stop was not recorded as clean.
      client.close();
      expect(await lockd.stop()).toBe(0);
      expect(lockd.stderr()).toMatch(/lockd: stopped: every answer sent\. lockd was answering 6 \(see the error above\), so this stop is not recorded as clean: .*\n$/);
    } finally {
      client.close();
      await lockd.kill();
    }
  });
});

describe("a data directory on tmpfs", () => {
  it("starts with a warning that a reboot empties it and the fencing counter starts again", async () => {
    // /dev/shm is a tmpfs on Linux machines and in containers.
    const dataDir = mkdtempSync("/dev/shm/baton-test-");
    const lockd = await spawnLockd({ dataDir });
    try {
      expect(lockd.stderr()).toContain(`lockd: warning: ${dataDir} is on tmpfs: nothing there reaches a disk, and the next boot empties it`);
      expect(lockd.stderr()).toContain("issue fencing tokens from 1 again");
      expect(await lockd.stop()).toBe(0);
    } finally {
      await lockd.kill();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("a clean stop that cannot be recorded (a full disk)", () => {
  it("still exits 0 after every answer, and says the next start recovers as after a crash", async () => {
    const lockd = await spawnLockd();
    const client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 1n, owner: 1n }, 60_000n));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Ok);
    client.close();
    // A directory where the record goes: its temporary file cannot be renamed over it.
    const record = join(lockd.dataDir, "clean-stop");
    mkdirSync(record);
    expect(await lockd.stop()).toBe(0);
    expect(lockd.stderr()).toContain(`lockd: warning: could not record the clean stop in ${record} (`);
    expect(unstamped(lockd.stderr())).toMatch(/the next start recovers as after a crash, which loses nothing acknowledged\nlockd: stopped: every answer sent, the log closed\n$/);
    expect(readdirSync(lockd.dataDir)).not.toContain("clean-stop.tmp");
    lockd.cleanup();
  });
});

describe("a closed stdout or stderr", () => {
  it("does not stop lockd: it goes on logging into the void and answering", async () => {
    const lockd = await spawnLockd({ args: ["--stats-every", "100"] });
    // Our ends of both pipes close, as when the reader of `lockd | tee` or a journald exits.
    lockd.child.stdout!.destroy();
    lockd.child.stderr!.destroy();
    // Several stats lines are written into the closed pipe meanwhile; each was an EPIPE thrown.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(lockd.child.exitCode).toBe(null);
    const client = await RawClient.open(lockd.port);
    client.write(acquire({ lock: 1n, owner: 1n }, 60_000n));
    expect(splitAnswers(await client.read(17))[0]!.status).toBe(Status.Ok);
    client.close();
    await lockd.kill();
    lockd.cleanup();
  });
});

describe("--require-state: a data directory without a log or snapshot is refused, not started empty", () => {
  it("refuses a missing and an empty directory without creating anything, and starts on one a lockd has used", async () => {
    const root = mkdtempSync(join(tmpdir(), "baton-require-"));
    try {
      const missing = join(root, "typo");
      const refusedMissing = runLockd(["--listen", "127.0.0.1:0", "--data", missing, "--require-state"]);
      expect(refusedMissing.status).toBe(1);
      expect(refusedMissing.stderr).toContain(`lockd: error: --require-state: ${missing} holds no log or snapshot`);
      expect(existsSync(missing)).toBe(false);

      const empty = join(root, "mount-point");
      mkdirSync(empty);
      expect(runLockd(["--listen", "127.0.0.1:0", "--data", empty, "--require-state"]).status).toBe(1);
      expect(readdirSync(empty)).toEqual([]);

      const first = await spawnLockd({ dataDir: empty });
      expect(await first.stop()).toBe(0);
      const second = await spawnLockd({ dataDir: empty, args: ["--require-state"] });
      expect(second.stderr()).toContain("log index 0");
      expect(await second.stop()).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("a start that cannot use its data directory or address exits 1 and says why", () => {
  it("does not spin when a directory cannot be made inside an existing one: /proc, a deleted working directory", () => {
    // Node's recursive mkdir loops forever on both (a parent exists, the child gives ENOENT).
    const underProc = runLockd(["--listen", "127.0.0.1:0", "--data", "/proc/baton-data"]);
    expect(underProc.status).toBe(1);
    expect(unstamped(underProc.stderr)).toBe("lockd: error: data directory /proc/baton-data: ENOENT: no such file or directory, mkdir '/proc/baton-data'\n");

    const root = mkdtempSync(join(tmpdir(), "baton-cwd-"));
    const gone = join(root, "gone");
    mkdirSync(gone);
    try {
      // The default data directory, ./data, in a working directory deleted before the start.
      const script = `cd "$1" && rmdir "$1" && exec "$2" "$3" --listen 127.0.0.1:0`;
      const deleted = spawnSync("sh", ["-c", script, "sh", gone, process.execPath, LOCKD_BIN], { encoding: "utf8", timeout: 10_000 });
      expect(deleted.status).toBe(1);
      expect(unstamped(deleted.stderr)).toBe("lockd: error: data directory ./data: ENOENT: no such file or directory, mkdir 'data'\n");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("names the address and the flag for a host that does not resolve or is not this machine's", () => {
    const root = mkdtempSync(join(tmpdir(), "baton-listen-"));
    try {
      const unresolvable = runLockd(["--listen", "nosuchhost.invalid:5625", "--data", root]);
      expect(unresolvable.status).toBe(1);
      expect(unresolvable.stderr).toMatch(/lockd: error: cannot listen on nosuchhost\.invalid:5625 \(--listen\): getaddrinfo [A-Z_]+ nosuchhost\.invalid\n/);
      // TEST-NET-1 (RFC 5737): an address no machine here has.
      const foreign = runLockd(["--listen", "192.0.2.1:5625", "--data", root]);
      expect(foreign.status).toBe(1);
      expect(foreign.stderr).toContain("lockd: error: cannot listen on 192.0.2.1:5625 (--listen): listen EADDRNOTAVAIL: address not available 192.0.2.1:5625\n");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
