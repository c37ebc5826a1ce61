import { describe, expect, it } from "vitest";
import {
  BODY_CMD,
  BODY_LOCK_ID,
  BODY_OWNER_ID,
  BODY_REQUEST_ID,
  BODY_TTL,
  COMMAND_NAMES,
  LENGTH_PREFIX_BYTES,
  LONG_BODY_BYTES,
  MAX_FRAME_LENGTH,
  STATUS_NAMES,
  bytesToHex,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  hexToBytes,
  lockIdFromName,
  type Command,
  type Status,
} from "../../../src/protocol/index.js";
import { FrameEvent, FrameReader } from "../../../src/protocol/frame-reader.js";
import { isValidRequestBody, loadVectors, type FrameCase } from "../../support/vectors.js";

const vectors = loadVectors();
const maxTtlMs = Number(vectors.config.max_ttl_ms);
const allFrames: FrameCase[] = [...vectors.frames, ...vectors.sequences.flatMap((s) => s.steps.map((step) => step.request))];

describe("the vector file covers the protocol", () => {
  it("has every command, both RELEASE/INSPECT forms, and invalid frames of every kind", () => {
    const shapes = new Set(vectors.frames.filter((f) => f.valid).map((f) => `${f.fields.cmd_name}/${f.fields.length}`));
    expect([...shapes].sort()).toEqual(["ACQUIRE/57", "INSPECT/49", "INSPECT/57", "RELEASE/49", "RELEASE/57", "RENEW/57"]);
    const reasons = new Set(vectors.frames.filter((f) => !f.valid).map((f) => f.reason));
    for (const reason of ["unknown cmd", "wrong length for the cmd", "all-zero request_id", "ttl_ms 0", "ttl_ms over the max ttl", "length over 1024"]) {
      expect(reasons).toContain(reason);
    }
  });

  it("has sequence answers with statuses 0, 1, 2, 3 and 5", () => {
    const statuses = new Set(vectors.sequences.flatMap((s) => s.steps.map((step) => step.response.status)));
    expect([...statuses].sort()).toEqual([0, 1, 2, 3, 5]);
  });
});

describe("a frame is a u32 big-endian length, then the body: cmd, request_id, lock_id, owner_id, ttl_ms", () => {
  for (const frame of allFrames.filter((f) => f.fields.length <= MAX_FRAME_LENGTH)) {
    it(`decodes "${frame.name}"`, () => {
      const bytes = Buffer.from(frame.hex, "hex");
      const length = bytes.readUInt32BE(0);
      expect(length).toBe(frame.fields.length);
      expect(bytes.length).toBe(LENGTH_PREFIX_BYTES + length);
      const body = bytes.subarray(LENGTH_PREFIX_BYTES);
      if (frame.fields.cmd !== undefined) expect(body[BODY_CMD]).toBe(frame.fields.cmd);
      if (frame.fields.request_id !== undefined) expect(bytesToHex(body, BODY_REQUEST_ID)).toBe(frame.fields.request_id);
      if (frame.fields.lock_id !== undefined) expect(bytesToHex(body, BODY_LOCK_ID)).toBe(frame.fields.lock_id);
      if (frame.fields.owner_id !== undefined) expect(bytesToHex(body, BODY_OWNER_ID)).toBe(frame.fields.owner_id);
      if (frame.fields.ttl_ms !== undefined) expect(body.readBigUInt64BE(BODY_TTL).toString()).toBe(frame.fields.ttl_ms);
    });
  }
});

describe("validation: a known cmd with a length that fits it, a non-zero request id, 1 <= ttl_ms <= max ttl", () => {
  for (const frame of allFrames.filter((f) => f.fields.length <= MAX_FRAME_LENGTH)) {
    it(`"${frame.name}" is ${frame.valid ? "valid" : `invalid (${frame.reason})`}`, () => {
      const bytes = Buffer.from(frame.hex, "hex");
      expect(isValidRequestBody(bytes, LENGTH_PREFIX_BYTES, bytes.length - LENGTH_PREFIX_BYTES, maxTtlMs)).toBe(frame.valid);
    });
  }

  it("reads a frame in the middle of a buffer at its offset", () => {
    const frame = Buffer.from(vectors.frames[0]!.hex, "hex");
    const padded = Buffer.concat([Buffer.alloc(7, 0xff), frame, Buffer.alloc(5, 0xff)]);
    expect(isValidRequestBody(padded, 7 + LENGTH_PREFIX_BYTES, frame.length - LENGTH_PREFIX_BYTES, maxTtlMs)).toBe(true);
  });
});

describe("a length over 1024 is reported as soon as its 4-byte header arrives", () => {
  for (const frame of vectors.frames.filter((f) => f.closes_connection === true)) {
    it(`"${frame.name}"`, () => {
      const reader = new FrameReader();
      reader.push(Buffer.from(frame.hex, "hex"));
      expect(reader.next()).toBe(FrameEvent.Oversized);
    });
  }
});

describe("clients encode exactly the vector frames", () => {
  for (const frame of allFrames.filter((f) => f.valid)) {
    it(`encodes "${frame.name}"`, () => {
      const f = frame.fields;
      const encoded = encodeRequest({
        command: f.cmd as Command,
        requestId: hexToBytes(f.request_id!),
        lockId: hexToBytes(f.lock_id!),
        ownerId: hexToBytes(f.owner_id!),
        ...(f.cmd === 1 || f.cmd === 2 ? { ttlMs: BigInt(f.ttl_ms!) } : {}),
        longForm: f.length === LONG_BODY_BYTES,
      });
      // The encoder always sends a zero trailer in the long RELEASE/INSPECT form.
      const expected = Buffer.from(frame.hex, "hex");
      if (f.cmd === 3 || f.cmd === 4) expected.fill(0, LENGTH_PREFIX_BYTES + BODY_TTL);
      expect(encoded.toString("hex")).toBe(expected.toString("hex"));
      expect(COMMAND_NAMES[f.cmd as Command]).toBe(f.cmd_name);
    });
  }
});

describe("a response is exactly 17 bytes: u8 status | u64 fencing_token | u64 expires_at", () => {
  const answers = vectors.sequences.flatMap((s) => s.steps.map((step) => step.response));
  it("decodes and re-encodes every vector response", () => {
    for (const answer of answers) {
      const bytes = Buffer.from(answer.hex, "hex");
      expect(bytes.length).toBe(17);
      const decoded = decodeResponse(bytes);
      expect(decoded).toEqual({ status: answer.status, fencingToken: BigInt(answer.fencing_token), expiresAt: BigInt(answer.expires_at) });
      expect(STATUS_NAMES[answer.status as Status]).toBe(answer.status_name);
      expect(encodeResponse(decoded).toString("hex")).toBe(answer.hex);
    }
  });

  it("status 3 carries token 0 and expires_at 0", () => {
    for (const answer of answers.filter((a) => a.status === 3)) expect(answer.hex).toBe(`03${"0".repeat(32)}`);
  });

  it("reads u64 fields above 2^53 exactly", () => {
    const bytes = Buffer.from(`05${"ffffffffffffffff"}${"8000000000000001"}`, "hex");
    expect(decodeResponse(bytes)).toEqual({ status: 5, fencingToken: (1n << 64n) - 1n, expiresAt: (1n << 63n) + 1n });
  });
});

describe("a lock name's lock_id is the first 16 bytes of the SHA-256 of its UTF-8 encoding", () => {
  it('lockIdFromName("orders/42") is c4dd165f06c35f87f80d9c755d8703ef', () => {
    expect(lockIdFromName("orders/42").toString("hex")).toBe("c4dd165f06c35f87f80d9c755d8703ef");
  });

  for (const entry of vectors.lock_names) {
    it(`lockIdFromName(${JSON.stringify(entry.name)})`, () => {
      expect(Buffer.from(entry.name, "utf8").toString("hex")).toBe(entry.utf8_hex);
      expect(lockIdFromName(entry.name).toString("hex")).toBe(entry.lock_id);
    });
  }
});
