/**
 * The composition root: builds the state machine, the log and the pipeline from a config, and starts
 * listening. Storage (data directory, recovery) plugs in here.
 */
import { randomInt } from "node:crypto";
import { StateMachine } from "../core/state-machine.js";
import type { CommitLog } from "../log/commit-log.js";
import { MemoryLog } from "../log/memory-log.js";
import { CommitPipeline } from "./commit-pipeline.js";
import { systemClock, type Clock } from "./clock.js";
import type { ServerConfig } from "./config.js";
import { LockServer } from "./lock-server.js";
import type { Logger } from "./logger.js";

export interface Lockd {
  readonly host: string;
  readonly port: number;
  readonly pipeline: CommitPipeline;
  close(): Promise<void>;
}

export interface LockdDependencies {
  readonly logger: Logger;
  readonly clock?: Clock;
}

export async function startLockd(config: ServerConfig, deps: LockdDependencies): Promise<Lockd> {
  const clock = deps.clock ?? systemClock;
  const stateMachine = new StateMachine({
    dedupeWindowMs: config.dedupeWindowMs,
    expiredRetentionMs: config.expiredRetentionMs,
    hashSeed: randomInt(0x7fffffff),
  });
  const log: CommitLog = new MemoryLog();
  const pipeline = new CommitPipeline({
    stateMachine,
    log,
    limits: { maxLocks: config.maxLocks, maxDedupeEntries: config.maxDedupeEntries },
    clock,
    logger: deps.logger,
    term: 1,
    nextIndex: 1,
  });
  const server = await LockServer.listen(config, pipeline, deps.logger);
  const address = server.address();
  return {
    host: address.address,
    port: address.port,
    pipeline,
    async close() {
      await server.close();
      await log.close();
    },
  };
}
