/**
 * u64 fields as JavaScript numbers on the hot path. Tokens and times stay far below 2^53
 * (a token a microsecond for 285 years), so a double holds them exactly; the writers assert it.
 */

const TWO_POW_32 = 0x1_0000_0000;

/** Exact below 2^53; callers bound-check larger values (see readU64Clamped). */
export function readU64(bytes: Uint8Array, at: number): number {
  return readU32(bytes, at) * TWO_POW_32 + readU32(bytes, at + 4);
}

/** Like readU64, but any value of 2^53 or more reads as Infinity, so range checks stay exact. */
export function readU64Clamped(bytes: Uint8Array, at: number): number {
  if (readU32(bytes, at) >= 0x20_0000) return Infinity;
  return readU64(bytes, at);
}

export function writeU64(bytes: Uint8Array, at: number, value: number): void {
  if (!(value >= 0 && value <= Number.MAX_SAFE_INTEGER && Number.isInteger(value))) {
    throw new RangeError(`u64 field out of the exact range: ${value}`);
  }
  const hi = Math.floor(value / TWO_POW_32);
  const lo = value >>> 0;
  bytes[at] = hi >>> 24;
  bytes[at + 1] = (hi >>> 16) & 0xff;
  bytes[at + 2] = (hi >>> 8) & 0xff;
  bytes[at + 3] = hi & 0xff;
  bytes[at + 4] = lo >>> 24;
  bytes[at + 5] = (lo >>> 16) & 0xff;
  bytes[at + 6] = (lo >>> 8) & 0xff;
  bytes[at + 7] = lo & 0xff;
}

/**
 * `writeU64` through a DataView, for bulk encoders: two stores instead of eight. No range check:
 * for values a caller has already validated (below 2^53, integral).
 */
export function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, Math.floor(value / TWO_POW_32));
  view.setUint32(at + 4, value >>> 0);
}

export function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

export function writeU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = (value >>> 16) & 0xff;
  bytes[at + 2] = (value >>> 8) & 0xff;
  bytes[at + 3] = value & 0xff;
}
