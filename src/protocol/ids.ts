/**
 * u128 ids: lock, owner and request ids are 16 raw bytes on the wire. This module converts between the
 * forms users hold (bigint, 32-digit hex, bytes, lock names) using Node's own Buffer big-endian reads;
 * no third-party bigint<->buffer package is involved.
 */
import { createHash, randomFillSync } from "node:crypto";
import { ID_BYTES } from "./wire.js";

const U64_MASK = (1n << 64n) - 1n;
export const MAX_U128 = (1n << 128n) - 1n;

export function u128ToBytes(value: bigint): Buffer {
  if (value < 0n || value > MAX_U128) throw new RangeError(`not a u128: ${value}`);
  const bytes = Buffer.allocUnsafe(ID_BYTES);
  bytes.writeBigUInt64BE(value >> 64n, 0);
  bytes.writeBigUInt64BE(value & U64_MASK, 8);
  return bytes;
}

export function bytesToU128(bytes: Uint8Array, at = 0): bigint {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + at, ID_BYTES);
  return (view.readBigUInt64BE(0) << 64n) | view.readBigUInt64BE(8);
}

const HEX_ID = /^(0x)?[0-9a-fA-F]{1,32}$/;

export function hexToBytes(hex: string): Buffer {
  if (!HEX_ID.test(hex)) throw new RangeError(`not a hex u128 (1-32 hex digits): ${JSON.stringify(hex)}`);
  return u128ToBytes(BigInt(hex.startsWith("0x") ? hex : `0x${hex}`));
}

export function bytesToHex(bytes: Uint8Array, at = 0): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, ID_BYTES).toString("hex");
}

/**
 * The naming convention every client shares: a lock name's id is the first 16 bytes of the SHA-256
 * of its UTF-8 encoding, so the same name means the same lock in every language.
 */
export function lockIdFromName(name: string): Buffer {
  return createHash("sha256").update(name, "utf8").digest().subarray(0, ID_BYTES);
}

/** A random id that is never all zero (all-zero request ids are invalid on the wire). */
export function randomId(): Buffer {
  const bytes = Buffer.allocUnsafe(ID_BYTES);
  do randomFillSync(bytes);
  while (isAllZero(bytes, 0));
  return bytes;
}

export function isAllZero(bytes: Uint8Array, at: number, length = ID_BYTES): boolean {
  for (let i = at; i < at + length; i++) if (bytes[i] !== 0) return false;
  return true;
}
