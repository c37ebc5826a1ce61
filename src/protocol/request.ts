/**
 * Request frames: building them (clients, tests) and validating them (the server, before any lookup).
 */
import {
  BODY_CMD,
  BODY_LOCK_ID,
  BODY_OWNER_ID,
  BODY_REQUEST_ID,
  BODY_TTL,
  Command,
  ID_BYTES,
  LENGTH_PREFIX_BYTES,
  LONG_BODY_BYTES,
  SHORT_BODY_BYTES,
  commandTakesTtl,
} from "./wire.js";
import { isAllZero } from "./ids.js";
import { readU64Clamped, writeU32 } from "./u64.js";

export interface RequestFields {
  readonly command: Command;
  readonly requestId: Uint8Array;
  readonly lockId: Uint8Array;
  readonly ownerId: Uint8Array;
  /** Required for ACQUIRE and RENEW; ignored (sent as 0 in the long form) for RELEASE and INSPECT. */
  readonly ttlMs?: bigint;
  /** RELEASE/INSPECT only: send the 57-byte long form instead of the 49-byte one. */
  readonly longForm?: boolean;
}

/** Bytes of one whole request frame, length prefix included. */
export function frameBytes(fields: RequestFields): number {
  return LENGTH_PREFIX_BYTES + bodyBytes(fields);
}

function bodyBytes(fields: RequestFields): number {
  return commandTakesTtl(fields.command) || fields.longForm === true ? LONG_BODY_BYTES : SHORT_BODY_BYTES;
}

/** Writes one request frame at `at`; returns the offset after it. */
export function writeRequest(target: Buffer, at: number, fields: RequestFields): number {
  const length = bodyBytes(fields);
  writeU32(target, at, length);
  const body = at + LENGTH_PREFIX_BYTES;
  target[body + BODY_CMD] = fields.command;
  copyId(target, body + BODY_REQUEST_ID, fields.requestId, "requestId");
  copyId(target, body + BODY_LOCK_ID, fields.lockId, "lockId");
  copyId(target, body + BODY_OWNER_ID, fields.ownerId, "ownerId");
  if (length === LONG_BODY_BYTES) {
    const ttl = commandTakesTtl(fields.command) ? fields.ttlMs : 0n;
    if (ttl === undefined) throw new TypeError(`${fields.command === Command.Acquire ? "ACQUIRE" : "RENEW"} needs ttlMs`);
    target.writeBigUInt64BE(ttl, body + BODY_TTL);
  }
  return body + length;
}

export function encodeRequest(fields: RequestFields): Buffer {
  const frame = Buffer.allocUnsafe(frameBytes(fields));
  writeRequest(frame, 0, fields);
  return frame;
}

function copyId(target: Buffer, at: number, id: Uint8Array, name: string): void {
  if (id.length !== ID_BYTES) throw new RangeError(`${name} must be ${ID_BYTES} bytes, got ${id.length}`);
  target.set(id, at);
}

/**
 * Is this frame body a well-formed request? Checks, in order: a known command with a length that
 * fits it, a non-zero request id, and (ACQUIRE/RENEW) ttl_ms >= 1. Lock and owner ids may be
 * anything, all zeros included.
 *
 * The upper bound on ttl_ms (`--max-ttl`) is not checked here: the server checks it after the
 * remembered request ids (StateMachine.executeWords, AdmissionLimits.maxTtlMs), so that a retry of a
 * request admitted under a larger bound, before a restart that lowered it, still gets its
 * remembered answer instead of a 3 that would hide whether it took effect.
 */
export function isWellFormedRequestBody(bytes: Uint8Array, at: number, length: number): boolean {
  if (length < 1) return false;
  const cmd = bytes[at + BODY_CMD];
  if (cmd === Command.Acquire || cmd === Command.Renew) {
    if (length !== LONG_BODY_BYTES) return false;
  } else if (cmd === Command.Release || cmd === Command.Inspect) {
    if (length !== SHORT_BODY_BYTES && length !== LONG_BODY_BYTES) return false;
  } else {
    return false;
  }
  if (isAllZero(bytes, at + BODY_REQUEST_ID, ID_BYTES)) return false;
  return !commandTakesTtl(cmd) || readU64Clamped(bytes, at + BODY_TTL) !== 0;
}
