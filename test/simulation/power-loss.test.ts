/**
 * Deterministic simulation of lockd's durable core under power loss and kill -9. One seed drives the
 * clients, the clock (which also jumps backwards), when the disk finishes its syncs, when the process
 * is killed (its unsynced writes stay in the page cache, read by the next boot), when power fails and
 * how much of the unsynced data survives, and whether a boot's compactions finish (when they do not,
 * as in a crash loop, a later start writes the snapshot itself). After every restart the checker verifies what the replies
 * promised:
 *   - every acknowledged request, retried with its request id, gets the byte-identical answer;
 *   - every token issued after a restart is greater than every acknowledged one;
 *   - every acknowledged, unreleased, unexpired lease is still held, by its owner, with its token,
 *     until at least its acknowledged expiry.
 * Replay a failure with BATON_SEED=<seed>.
 */
import { describe, expect, it } from "vitest";
import type { StateMachineConfig } from "../../src/core/state-machine.js";
import { Command, decodeResponse, Status } from "../../src/protocol/index.js";
import { silentLogger } from "../../src/logging/logger.js";
import { compact } from "../../src/storage/compaction.js";
import type { Compactor } from "../../src/storage/compactor.js";
import { openDurableStorage } from "../../src/storage/durable-storage.js";
import { openDataDir } from "../../src/storage/data-dir.js";
import { SegmentLog } from "../../src/storage/segment-log.js";
import { acquire, inspect, release, renew } from "../support/frames.js";
import { PipelineHarness } from "../support/pipeline-harness.js";
import { endsOnlyWhenStopped } from "../support/stuck-compaction.js";
import { seededRandom, type SeededRandom } from "../support/seeded-random.js";
import { useTempDirs } from "../support/temp-dir.js";
import { PowerLossFiles } from "./power-loss-files.js";

const CONFIG: StateMachineConfig = { dedupeWindowMs: 10_000_000, expiredRetentionMs: 5_000, hashSeed: 11 };
const LOCKS = 6;
const OWNERS = 4;
const tempDir = useTempDirs();

interface Sent {
  readonly frame: Buffer;
  readonly command: number;
  readonly lock: bigint;
  readonly owner: bigint;
  answer?: string;
}

function boot(
  root: string,
  files: PowerLossFiles,
  startMs: number,
  inlineSyncMaxEntries: number,
  compactionsFinish: boolean,
): { log: SegmentLog; compactor: Compactor; harness: PipelineHarness } {
  const { recovered, log, compactor } = openDurableStorage(openDataDir(root), {
    config: CONFIG,
    logger: silentLogger,
    files,
    fsync: "always",
    segmentBytes: 2048,
    snapshotEveryBytes: 4096,
    // A compaction that never finishes is one killed with its lockd every time (a crash loop): the
    // sealed log piles up until a start writes the snapshot itself.
    runCompaction: compactionsFinish ? async (job) => compact(job) : (_job, signal) => endsOnlyWhenStopped(signal),
    inlineSyncMaxEntries,
  });
  const harness = new PipelineHarness(recovered.stateMachine, log, { nextIndex: recovered.lastIndex + 1, startMs });
  return { log, compactor, harness };
}

function randomCommand(random: SeededRandom, requestSeq: () => bigint): Sent {
  const lock = BigInt(random.int(0, LOCKS - 1));
  const owner = BigInt(random.int(1, OWNERS));
  const ids = { lock, owner, request: requestSeq() };
  const ttl = BigInt(random.pick([50, 400, 3000, 20_000]));
  const roll = random.next();
  if (roll < 0.4) return { frame: acquire(ids, ttl), command: Command.Acquire, lock, owner };
  if (roll < 0.6) return { frame: renew(ids, ttl), command: Command.Renew, lock, owner };
  if (roll < 0.85) return { frame: release(ids), command: Command.Release, lock, owner };
  return { frame: inspect(ids), command: Command.Inspect, lock, owner };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("simulation: a restart after a failed sync, on the same boot", () => {
  it("makes the writes whose writeback failed durable before serving, so a later power loss leaves no hole before what it acknowledged", async () => {
    const root = tempDir();
    const files = new PowerLossFiles();
    // Syncs on the thread pool: the test decides when each completes, or fails.
    let node = boot(root, files, 1_000_000, 0, true);
    let request = 1n;
    const ids = (lock: bigint) => ({ lock, owner: 1n, request: request++ });
    expect((await answerOf(node, files, acquire(ids(1n), 60_000n))).status).toBe(Status.Ok);

    // The next write's fdatasync fails: answered 6, the pages stay cached but will never be written.
    node.harness.submit(acquire(ids(2n), 60_000n), acquire(ids(3n), 60_000n));
    await turn();
    files.failSyncs();
    await turn();
    expect(node.harness.sink.answers.slice(1).map((answer) => answer.status)).toEqual([Status.Unavailable, Status.Unavailable]);

    // kill -9 and a restart on the same boot: recovery reads those pages and replays them.
    files.processCrash();
    node = boot(root, files, 1_000_100, 0, true);
    const granted = await answerOf(node, files, acquire(ids(4n), 60_000n));
    expect(granted.status).toBe(Status.Ok);

    // Power fails: what never reached the disk is gone. The start must neither refuse (a hole in
    // the log before acknowledged records) nor lose the grant made after the restart.
    files.powerLoss(seededRandom("failed writeback then power loss"));
    node = boot(root, files, 1_000_200, 0, true);
    const held = await answerOf(node, files, inspect({ lock: 4n, owner: 1n, request: request++ }));
    expect(held).toEqual({ status: Status.Ok, fencingToken: granted.fencingToken, expiresAt: granted.expiresAt });
  });
});

/** Submits `frame`, lets the disk finish its sync, and returns the answer. */
async function answerOf(node: ReturnType<typeof boot>, files: PowerLossFiles, frame: Buffer): Promise<ReturnType<typeof decodeResponse>> {
  node.harness.submit(frame);
  await turn();
  files.completeSyncs();
  await node.harness.pipeline.whenIdle();
  return node.harness.sink.answers.at(-1)!;
}

describe("simulation: acknowledged state survives power loss at any moment", () => {
  it("keeps every promise the replies made, across many seeded power failures", async () => {
    const random = seededRandom("power-loss simulation");
    const root = tempDir();
    const files = new PowerLossFiles();
    let clockMs = 1_000_000;
    let nextRequest = 1n;
    const requestSeq = () => nextRequest++;
    const acknowledged: Sent[] = [];
    let maxToken = 0n;
    // Boots sync every lone batch inline (durable before append returns, lockd's default), only small
    // ones, or every batch on the thread pool.
    const inlineSync = () => random.pick([Infinity, 4, 0]);
    const compactionsFinish = () => random.next() < 0.6;
    let node = boot(root, files, clockMs, inlineSync(), compactionsFinish());
    let powerFailures = 0;
    let crashes = 0;
    let submitted = 0;
    /** Requests that were unanswered when power failed: each may or may not have taken effect. */
    const inFlightAtLoss: Sent[] = [];

    for (let step = 0; step < 1500; step++) {
      const action = random.next();
      // The wall clock mostly moves forward, sometimes stands still or jumps back.
      clockMs += random.next() < 0.1 ? -random.int(0, 2000) : random.int(0, 40);
      node.harness.nowMs = clockMs;
      if (action < 0.5) {
        const batch = Array.from({ length: random.int(1, 6) }, () => randomCommand(random, requestSeq));
        // Answers come back in submission order; key each by its position among this boot's requests.
        const before = submitted;
        submitted += batch.length;
        node.harness.submit(...batch.map((sent) => sent.frame));
        // Answers arrive later, in order; remember which sent request each answer slot belongs to.
        batch.forEach((sent, n) => pending.set(before + n, sent));
      } else if (action < 0.8) {
        await turn(); // the pipeline seals and writes its batch
      } else if (action < 0.97) {
        files.completeSyncs(); // the disk finishes: replies go out
      } else {
        const fault = random.next();
        if (fault < 0.4) {
          await losePower();
        } else if (fault < 0.7) {
          await crash();
        } else {
          // Power fails while the next batch's fdatasync runs on the event loop (with inline syncs).
          files.failPowerInNextSyncNow = true;
        }
      }
      if (files.powerFailedInSync) await losePower();
      collectAnswers();
    }
    files.failPowerInNextSyncNow = false; // the power stays on for the last check
    files.completeSyncs();
    await turn();
    files.completeSyncs();
    collectAnswers();
    await checkPromises();
    expect(powerFailures).toBeGreaterThan(3);
    expect(crashes).toBeGreaterThan(3);
    expect(acknowledged.length).toBeGreaterThan(500);
    await node.log.close();

    // ---- helpers over the simulation's state ----
    async function losePower(): Promise<void> {
      // Unanswered requests stay unacknowledged; unsynced bytes are (mostly) lost.
      files.powerLoss(random);
      await restart();
      powerFailures++;
    }

    /** kill -9: unsynced bytes stay in the page cache, and the next boot reads them. */
    async function crash(): Promise<void> {
      files.processCrash();
      await restart();
      crashes++;
    }

    async function restart(): Promise<void> {
      await node.log.abandon();
      // Nothing of the old incarnation may run beside the next one (lockd's data-directory lock
      // guarantees that): let its snapshot clean-up, which unlinks on the thread pool, finish first.
      node.compactor.stop();
      await node.compactor.idle();
      inFlightAtLoss.push(...pending.values());
      pending.clear();
      node = boot(root, files, clockMs, inlineSync(), compactionsFinish());
      submitted = 0;
      await checkPromises();
    }

    function collectAnswers(): void {
      const answers = node.harness.sink.answers;
      for (const [slot, sent] of pending) {
        const answer = answers[slot];
        if (answer === undefined) continue;
        pending.delete(slot);
        if (answer.status === Status.Unavailable || sent.command === Command.Inspect) continue;
        sent.answer = hex(answer);
        acknowledged.push(sent);
        if (answer.fencingToken > maxToken && answer.status === Status.Ok) maxToken = answer.fencingToken;
      }
    }

    async function checkPromises(): Promise<void> {
      const run = async (frame: Buffer) => {
        node.harness.nowMs = clockMs;
        const answers = node.harness.sink.answers;
        const expected = ++submitted;
        node.harness.submit(frame);
        while (answers.length < expected) {
          await turn();
          files.completeSyncs();
        }
        return answers[expected - 1]!;
      };
      // Holders first (retries below may change the state).
      for (let lock = 0n; lock < BigInt(LOCKS); lock++) {
        const holder = ackedHolder(lock);
        if (holder === null) continue;
        const seen = await run(inspect({ lock, owner: holder.owner, request: requestSeq() }));
        const logicalNow = BigInt(node.harness.stateMachine.logicalNowMs);
        if (holder.expiresAt <= logicalNow) continue; // legitimately expired
        // The holder's own unanswered RENEW or RELEASE may have reached the disk before the power failed.
        const unanswered = inFlightAtLoss.filter((sent) => sent.lock === lock && sent.owner === holder.owner);
        if (unanswered.some((sent) => sent.command === Command.Release)) {
          // Its release landed: the lock was free since, and anyone may hold it now, the same owner
          // included through an unanswered ACQUIRE of its own (then with a newer token).
          if (seen.status !== Status.Ok) continue;
          const reacquired = seen.fencingToken > holder.token && unanswered.some((sent) => sent.command === Command.Acquire);
          if (reacquired) continue;
        }
        expect(seen.status, `seed ${random.seed}: lock ${lock} lost its acknowledged holder`).toBe(Status.Ok);
        expect(seen.fencingToken, `seed ${random.seed}: lock ${lock} holder's token`).toBe(holder.token);
        if (!unanswered.some((sent) => sent.command === Command.Renew)) {
          expect(seen.expiresAt, `seed ${random.seed}: lock ${lock} acknowledged expiry`).toBe(holder.expiresAt);
        }
      }
      for (const sent of acknowledged.slice(-60)) {
        expect(hex(await run(sent.frame)), `seed ${random.seed}: retry changed its answer`).toBe(sent.answer);
      }
      const fresh = await run(acquire({ lock: 1000n + nextRequest, owner: 1n, request: requestSeq() }, 1000n));
      expect(fresh.status).toBe(Status.Ok);
      expect(fresh.fencingToken > maxToken, `seed ${random.seed}: token went backwards`).toBe(true);
      maxToken = fresh.fencingToken;
    }

    function ackedHolder(lock: bigint): { owner: bigint; token: bigint; expiresAt: bigint } | null {
      let holder: { owner: bigint; token: bigint; expiresAt: bigint } | null = null;
      for (const sent of acknowledged) {
        if (sent.lock !== lock) continue;
        const answer = decodeResponse(Buffer.from(sent.answer!, "hex"));
        if (answer.status !== Status.Ok) continue;
        if (sent.command === Command.Acquire && (holder === null || answer.fencingToken > holder.token)) {
          holder = { owner: sent.owner, token: answer.fencingToken, expiresAt: answer.expiresAt };
        } else if (holder !== null && answer.fencingToken === holder.token) {
          if (sent.command === Command.Release) holder = null;
          else holder.expiresAt = answer.expiresAt; // the latest renewal counts (it may shorten the lease)
        }
      }
      return holder;
    }
  });
});

const pending = new Map<number, Sent>();

function hex(answer: { status: number; fencingToken: bigint; expiresAt: bigint }): string {
  const bytes = Buffer.alloc(17);
  bytes[0] = answer.status;
  bytes.writeBigUInt64BE(answer.fencingToken, 1);
  bytes.writeBigUInt64BE(answer.expiresAt, 9);
  return bytes.toString("hex");
}
