import { describe, expect, it } from "vitest";
import { lockIdFromName } from "../../src/protocol/index.js";
import { BatonError, LockId } from "../../client/index.js";
import { toLockId, toOwnerBytes } from "../../client/ids.js";

describe("a lock is named by a string or given as a raw u128", () => {
  it("hashes a name as protocol.md says: the first 16 bytes of SHA-256 of its UTF-8", () => {
    expect(toLockId("reports").bytes).toEqual(lockIdFromName("reports"));
    expect(toLockId("räksmörgås").hex).toBe(lockIdFromName("räksmörgås").toString("hex"));
  });

  it("refuses a name with a lone surrogate, which UTF-8 cannot encode, and takes surrogate pairs", () => {
    // Node's UTF-8 encoder writes U+FFFD for each of these: all three would name the same lock.
    for (const name of ["a\uD800", "a\uDBFF", "\uDC00a"]) {
      expect(() => toLockId(name)).toThrow(/lone surrogate/);
    }
    expect(lockIdFromName("a\uD800")).toEqual(lockIdFromName("a\uDBFF"));
    // A pair is one code point, U+1F512, encoded as its four UTF-8 bytes.
    expect(toLockId("lock-\uD83D\uDD12").bytes).toEqual(lockIdFromName("lock-🔒"));
    expect(toLockId("lock-🔒").hex).not.toBe(lockIdFromName("lock-\uFFFD").toString("hex"));
  });

  it("takes the same raw id as a bigint, hex text or 16 bytes", () => {
    const value = 0x0123456789abcdef_fedcba9876543210n;
    const bytes = Buffer.from("0123456789abcdeffedcba9876543210", "hex");
    expect(toLockId(value).bytes).toEqual(bytes);
    expect(LockId.fromHex("0x0123456789abcdeffedcba9876543210").bytes).toEqual(bytes);
    expect(toLockId(new Uint8Array(bytes)).bytes).toEqual(bytes);
    expect(toLockId(value).toBigInt()).toBe(value);
  });

  it("reads owner ids from a bigint, hex text or 16 bytes", () => {
    expect(toOwnerBytes(0x5eedn)).toEqual(toOwnerBytes("5eed"));
    expect(toOwnerBytes(new Uint8Array(16).fill(1))).toEqual(Buffer.alloc(16, 1));
  });

  it("refuses malformed ids with BATON_INVALID_ARGUMENT", () => {
    for (const misuse of [() => toLockId(""), () => toLockId(-1n), () => toLockId(new Uint8Array(15)), () => toOwnerBytes("not hex"), () => toOwnerBytes(2n ** 128n)]) {
      expect(misuse).toThrow(BatonError);
      try {
        misuse();
      } catch (error) {
        expect((error as BatonError).code).toBe("BATON_INVALID_ARGUMENT");
      }
    }
  });
});
