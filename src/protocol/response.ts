/**
 * Responses: always exactly 17 bytes, `u8 status | u64 fencing_token | u64 expires_at`.
 */
import { RESPONSE_BYTES, RESPONSE_EXPIRES_AT, RESPONSE_STATUS, RESPONSE_TOKEN, type Status } from "./wire.js";
import { writeU64 } from "./u64.js";

export interface Response {
  /** 0-6 are defined; 7-255 are reserved and surface as-is so a client can report them. */
  readonly status: Status | number;
  readonly fencingToken: bigint;
  readonly expiresAt: bigint;
}

export function decodeResponse(bytes: Uint8Array, at = 0): Response {
  if (bytes.length - at < RESPONSE_BYTES) throw new RangeError("a response is 17 bytes");
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, RESPONSE_BYTES);
  return {
    status: view[RESPONSE_STATUS]!,
    fencingToken: view.readBigUInt64BE(RESPONSE_TOKEN),
    expiresAt: view.readBigUInt64BE(RESPONSE_EXPIRES_AT),
  };
}

export function encodeResponse(response: Response): Buffer {
  const bytes = Buffer.allocUnsafe(RESPONSE_BYTES);
  bytes[RESPONSE_STATUS] = response.status;
  bytes.writeBigUInt64BE(response.fencingToken, RESPONSE_TOKEN);
  bytes.writeBigUInt64BE(response.expiresAt, RESPONSE_EXPIRES_AT);
  return bytes;
}

/** Hot-path writer: numbers instead of bigints (both fields are below 2^53 on the server). */
export function writeResponse(target: Uint8Array, at: number, status: number, token: number, expiresAtMs: number): void {
  target[at + RESPONSE_STATUS] = status;
  writeU64(target, at + RESPONSE_TOKEN, token);
  writeU64(target, at + RESPONSE_EXPIRES_AT, expiresAtMs);
}
