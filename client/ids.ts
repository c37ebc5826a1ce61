/**
 * The ids a caller can hand the SDK, turned into the 16 raw bytes the wire carries. A lock is named by
 * a string (hashed as protocol.md says, so every language's client agrees) or given as a raw u128:
 * a bigint, a 16-byte Uint8Array, or a LockId (LockId.fromHex for hex text, since a plain string is a name).
 * Owner ids have no names: a bigint, hex text or 16 bytes.
 */
import { ID_BYTES, bytesToHex, bytesToU128, hexToBytes, lockIdFromName, randomId, u128ToBytes } from "../src/protocol/index.js";
import { shown } from "./arguments.js";
import { InvalidArgumentError } from "./errors.js";

/** In a `u` regular expression a surrogate pair is one code point: only a lone surrogate matches. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** A lock id as 16 bytes, with the name it came from when there was one. Immutable. */
export class LockId {
  private constructor(
    readonly bytes: Buffer,
    /** The lock name, or the id's hex when the lock was given as a raw id. */
    readonly label: string,
  ) {}

  static fromName(name: string): LockId {
    if (name.length === 0) throw new InvalidArgumentError("a lock name must not be empty");
    // UTF-8 cannot encode a lone surrogate, and Node's encoder would write U+FFFD in its place: two
    // different names would then silently name the same lock.
    const lone = LONE_SURROGATE.exec(name);
    if (lone !== null) {
      const unit = name.charCodeAt(lone.index).toString(16);
      throw new InvalidArgumentError(`a lock name must be well-formed Unicode: ${JSON.stringify(name)} has a lone surrogate (U+${unit}) at index ${lone.index}`);
    }
    return new LockId(lockIdFromName(name), name);
  }

  static fromHex(hex: string): LockId {
    return LockId.fromBytes(parseHex(hex, "lock id"));
  }

  static fromBigInt(value: bigint): LockId {
    return LockId.fromBytes(fromBigInt(value, "lock id"));
  }

  static fromBytes(bytes: Uint8Array): LockId {
    const copy = fromBytes(bytes, "lock id");
    return new LockId(copy, copy.toString("hex"));
  }

  get hex(): string {
    return bytesToHex(this.bytes);
  }

  toBigInt(): bigint {
    return bytesToU128(this.bytes);
  }

  toString(): string {
    return this.label;
  }
}

/** A lock: its name, or a raw id. */
export type LockRef = string | bigint | Uint8Array | LockId;

/** An owner id: a bigint, hex text (1-32 digits, optional 0x) or 16 bytes. */
export type OwnerRef = bigint | string | Uint8Array;

export function toLockId(lock: LockRef): LockId {
  if (lock instanceof LockId) return lock;
  if (typeof lock === "string") return LockId.fromName(lock);
  if (typeof lock === "bigint") return LockId.fromBigInt(lock);
  if (lock instanceof Uint8Array) return LockId.fromBytes(lock);
  throw new InvalidArgumentError(`not a lock name or id: ${shown(lock)}`);
}

export function toOwnerBytes(owner: OwnerRef): Buffer {
  if (typeof owner === "string") return parseHex(owner, "owner id");
  if (typeof owner === "bigint") return fromBigInt(owner, "owner id");
  if (owner instanceof Uint8Array) return fromBytes(owner, "owner id");
  throw new InvalidArgumentError(`not an owner id: ${shown(owner)}`);
}

/** A random 128-bit owner id, never zero. */
export function randomOwner(): Buffer {
  return randomId();
}

function parseHex(hex: string, what: string): Buffer {
  try {
    return hexToBytes(hex);
  } catch (error) {
    throw new InvalidArgumentError(`${what} must be 1-32 hex digits, got ${JSON.stringify(hex)}`, { cause: error });
  }
}

function fromBigInt(value: bigint, what: string): Buffer {
  try {
    return u128ToBytes(value);
  } catch (error) {
    throw new InvalidArgumentError(`${what} must be a u128 (0 <= id < 2^128), got ${value}`, { cause: error });
  }
}

function fromBytes(bytes: Uint8Array, what: string): Buffer {
  if (bytes.length !== ID_BYTES) throw new InvalidArgumentError(`${what} must be ${ID_BYTES} bytes, got ${bytes.length}`);
  return Buffer.from(bytes); // a copy: the caller may reuse its buffer
}
