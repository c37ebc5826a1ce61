import { describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { useLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire, release, renew } from "../support/frames.js";
import { sleep, splitAnswers } from "../support/answers.js";
import { randomFromSeed, seededRandom, type SeededRandom } from "../support/seeded-random.js";

const CLIENTS = 32;
const LOCKS = [0xc0de01n, 0xc0de02n, 0xc0de03n];
/**
 * The clients contend until this many leases were granted among them, so the overlap check always
 * has as many to compare, however fast or slow the machine runs them. (A fixed number of rounds
 * made the count depend on timing: most rounds find the lock held, and on a loaded machine 32
 * clients once finished 40 rounds each with 30 leases granted.) The cap on rounds only bounds a
 * server that stopped granting, which the count then reports.
 */
const TARGET_LEASES = 3 * CLIENTS;
const MAX_ROUNDS_PER_CLIENT = 5000;

const lockd = useLockd();

/** One successful lease in server time: from its grant to its release or its (last renewed) expiry. */
interface Lease {
  readonly lock: bigint;
  readonly token: bigint;
  readonly owner: bigint;
  readonly startMs: bigint;
  endMs: bigint;
}

async function ask(client: RawClient, frame: Buffer) {
  client.write(frame);
  return splitAnswers(await client.read(17))[0]!;
}

async function contend(owner: bigint, random: SeededRandom, leases: Lease[]): Promise<void> {
  const client = await RawClient.open(lockd.port);
  for (let round = 0; round < MAX_ROUNDS_PER_CLIENT && leases.length < TARGET_LEASES; round++) {
    const lock = random.pick(LOCKS);
    const ttlMs = BigInt(random.int(5, 80));
    const granted = await ask(client, acquire({ lock, owner }, ttlMs));
    if (granted.status === Status.Held) {
      await sleep(random.int(0, 8));
      continue;
    }
    expect(granted.status).toBe(Status.Ok);
    // expires_at = now + ttl, so the grant time in server time is expires_at - ttl.
    const lease: Lease = { lock, token: granted.fencingToken, owner, startMs: granted.expiresAt - ttlMs, endMs: granted.expiresAt };
    leases.push(lease);
    await sleep(random.int(0, 15));
    if (random.next() < 0.4) {
      const renewed = await ask(client, renew({ lock, owner }, BigInt(random.int(5, 60))));
      if (renewed.status === Status.Ok) {
        expect(renewed.fencingToken).toBe(lease.token);
        lease.endMs = renewed.expiresAt;
      } else if (renewed.status === Status.Expired) {
        expect(renewed).toEqual({ status: Status.Expired, fencingToken: lease.token, expiresAt: lease.endMs });
      } else {
        expect(renewed.status).toBe(Status.NotHeld); // ran out, and someone acquired since
      }
      await sleep(random.int(0, 15));
    }
    if (random.next() < 0.75) {
      const released = await ask(client, release({ lock, owner }, random.next() < 0.5));
      if (released.status === Status.Ok) {
        expect(released.fencingToken).toBe(lease.token);
        expect(released.expiresAt).toBeLessThan(lease.endMs);
        lease.endMs = released.expiresAt; // RELEASE answers expires_at = now
      } else {
        // The lease ran out first: 5 with its own token and expiry (nobody acquired since), or 2.
        expect([Status.Expired, Status.NotHeld]).toContain(released.status);
        if (released.status === Status.Expired) expect(released.fencingToken).toBe(lease.token);
      }
    }
  }
  client.close();
}

describe("32 concurrent clients contending on a few locks: no two holders ever overlap in server time", () => {
  it("grants leases that never overlap per lock, with tokens strictly increasing in grant order", async () => {
    const random = seededRandom("contention");
    const leases: Lease[] = [];
    // Each client draws from its own generator, derived from the run's seed, so schedules are replayable.
    const clientRandoms = Array.from({ length: CLIENTS }, (_, n) => randomFromSeed(`${random.seed}/client ${n}`));
    await Promise.all(clientRandoms.map((r, n) => contend(BigInt(n + 1), r, leases)));

    expect(leases.length).toBeGreaterThanOrEqual(TARGET_LEASES);
    const tokens = leases.map((l) => l.token);
    expect(new Set(tokens).size).toBe(tokens.length); // one global counter: never reused
    for (const lock of LOCKS) {
      const ofLock = leases.filter((l) => l.lock === lock).sort((a, b) => (a.token < b.token ? -1 : 1));
      for (let n = 1; n < ofLock.length; n++) {
        const before = ofLock[n - 1]!;
        const after = ofLock[n]!;
        if (after.startMs < before.endMs) {
          throw new Error(
            `seed ${random.seed}: lock ${lock.toString(16)}: token ${after.token} (owner ${after.owner}) granted at ${after.startMs}, ` +
              `before token ${before.token} (owner ${before.owner}) ended at ${before.endMs}`,
          );
        }
        expect(after.startMs).toBeGreaterThanOrEqual(before.startMs);
      }
    }
  });
});
