/** Builders of request frames and readers of replies for tests. */
import { Command, encodeRequest } from "../../src/protocol/index.js";

let nextRequest = 1n;

/** A fresh, never-zero request id (deterministic across a test run). */
export function requestId(n: bigint = nextRequest++): Buffer {
  return u128(n);
}

export function u128(n: bigint): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64BE(n >> 64n, 0);
  bytes.writeBigUInt64BE(n & ((1n << 64n) - 1n), 8);
  return bytes;
}

export interface Ids {
  readonly lock: bigint;
  readonly owner: bigint;
  readonly request?: bigint;
}

export function acquire(ids: Ids, ttlMs: bigint): Buffer {
  return encodeRequest({ command: Command.Acquire, requestId: requestId(ids.request), lockId: u128(ids.lock), ownerId: u128(ids.owner), ttlMs });
}

export function renew(ids: Ids, ttlMs: bigint): Buffer {
  return encodeRequest({ command: Command.Renew, requestId: requestId(ids.request), lockId: u128(ids.lock), ownerId: u128(ids.owner), ttlMs });
}

export function release(ids: Ids, longForm = false): Buffer {
  return encodeRequest({ command: Command.Release, requestId: requestId(ids.request), lockId: u128(ids.lock), ownerId: u128(ids.owner), longForm });
}

export function inspect(ids: Ids, longForm = false): Buffer {
  return encodeRequest({ command: Command.Inspect, requestId: requestId(ids.request), lockId: u128(ids.lock), ownerId: u128(ids.owner), longForm });
}
