/**
 * Read-only traffic (INSPECTs, retries of a remembered request) does not grow the log: each command
 * only moves the clock, so the log keeps one only when no entry carries its time yet. A client
 * flooding INSPECTs used to write ~200 MB/s of log, more than compaction could fold, until the disk
 * filled and lockd answered 6 to everyone.
 */
import { describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { useLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire, inspect } from "../support/frames.js";
import { splitAnswers } from "../support/answers.js";
import { scrapeMetrics } from "../support/metrics.js";

const lockd = useLockd({ args: ["--metrics-listen", "127.0.0.1:0"] });

describe("a flood of read-only commands", () => {
  it("is answered in full and in order, and leaves the log index where the last change put it, give or take a few clock ticks", async () => {
    const client = await RawClient.open(lockd.port);
    const grant = acquire({ lock: 0x5eedn, owner: 0xan, request: 0xfeed_0001n }, 600_000n);
    client.write(grant);
    const granted = await client.read(17);
    expect(granted[0]).toBe(Status.Ok);
    const loggedBefore = (await scrapeMetrics(lockd)).get("baton_log_index")!;

    const PAIRS = 10_000;
    const frames: Buffer[] = [];
    for (let n = 0; n < PAIRS; n++) frames.push(inspect({ lock: 0x5eedn, owner: 0xbn, request: 0xbeef_0000n + BigInt(n) }), grant);
    client.write(Buffer.concat(frames));
    const answers = await client.read(PAIRS * 2 * 17, 60_000);
    for (let n = 0; n < PAIRS; n++) {
      const seenByOther = splitAnswers(answers.subarray(2 * n * 17, (2 * n + 1) * 17))[0]!;
      expect(seenByOther.status, `INSPECT ${n}`).toBe(Status.Held);
      expect(answers.subarray((2 * n + 1) * 17, (2 * n + 2) * 17).equals(granted), `retry ${n}`).toBe(true);
    }
    client.close();

    // One entry at most per clock tick of the flood (each read is stamped once); 20,000 before.
    const logged = (await scrapeMetrics(lockd)).get("baton_log_index")! - loggedBefore;
    expect(logged).toBeLessThan(1_000);
  });
});
