/**
 * Builds test/vectors/protocol-v1.json: request frames with their decoded fields, the lock-name
 * convention, and scripted sequences with the exact 17-byte answers a v1 server must give.
 *
 * Frames are assembled here from hex strings and every expected answer is written out by hand, so the
 * file does not depend on the codec or the state machine it is used to test.
 *
 * Regenerate (after changing this file) with:
 *   BATON_WRITE_VECTORS=1 npx vitest run test/unit/protocol/vector-file.test.ts
 * Without the variable, that test fails if the committed file differs from what this script builds.
 */
import { createHash } from "node:crypto";

export const VECTOR_FILE_URL = new URL("./protocol-v1.json", import.meta.url);

const CMD = { ACQUIRE: 1, RENEW: 2, RELEASE: 3, INSPECT: 4 } as const;
type CmdName = keyof typeof CMD;
const STATUS_NAMES = ["ok", "held", "not_held", "invalid", "not_leader", "expired", "unavailable"] as const;

export interface FrameFields {
  /** Absent when the frame has no body byte to read it from. */
  readonly cmd?: number;
  readonly cmd_name: string;
  /** The u32 length field: bytes of body after it. */
  readonly length: number;
  readonly request_id?: string;
  readonly lock_id?: string;
  readonly owner_id?: string;
  /** Decimal u64. For the 57-byte RELEASE/INSPECT it is the ignored trailer. */
  readonly ttl_ms?: string;
}

export interface FrameCase {
  readonly name: string;
  readonly hex: string;
  readonly valid: boolean;
  /** Why an invalid frame is invalid (the server answers 3). */
  readonly reason?: string;
  /** Length over 1024: the server answers 3 and then closes the connection. */
  readonly closes_connection?: boolean;
  /** An invalid frame's answer, its 17 bytes in hex: status 3, token 0, expires_at 0. */
  readonly answer?: string;
  readonly fields: FrameFields;
}

export interface ResponseCase {
  readonly hex: string;
  readonly status: number;
  readonly status_name: string;
  readonly fencing_token: string;
  readonly expires_at: string;
}

export interface SequenceStep {
  /** The leader's clock sample for this request (logical now = max(previous now, at_ms)). */
  readonly at_ms: string;
  readonly note: string;
  readonly request: FrameCase;
  readonly response: ResponseCase;
}

export interface SequenceCase {
  readonly name: string;
  readonly steps: readonly SequenceStep[];
}

export interface VectorFile {
  readonly protocol: string;
  readonly description: readonly string[];
  readonly config: {
    readonly max_frame_length: number;
    readonly max_ttl_ms: string;
    readonly dedupe_window_ms: string;
    readonly expired_retention_ms: string;
  };
  readonly lock_names: readonly { readonly name: string; readonly utf8_hex: string; readonly lock_id: string }[];
  readonly frames: readonly FrameCase[];
  readonly sequences: readonly SequenceCase[];
}

// ---- hex assembly (independent of src/protocol) ----

const id = (n: bigint): string => n.toString(16).padStart(32, "0");
const u64 = (n: bigint): string => n.toString(16).padStart(16, "0");
const u32 = (n: number): string => n.toString(16).padStart(8, "0");
const u8 = (n: number): string => n.toString(16).padStart(2, "0");
const nameId = (name: string): string => createHash("sha256").update(name, "utf8").digest("hex").slice(0, 32);

const LOCK_ORDERS = nameId("orders/42");
const LOCK_INVENTORY = nameId("inventory/7");
const LOCK_REPORTS = nameId("reports/daily");
const OWNER_A = id(0xa1n);
const OWNER_B = id(0xb2n);
const ZERO_ID = id(0n);
const MAX_TTL_MS = 3_600_000n;

interface Request {
  readonly cmd: CmdName;
  readonly request: string;
  readonly lock: string;
  readonly owner: string;
  readonly ttl?: bigint;
  /** RELEASE/INSPECT: the 57-byte form, with this trailer (default 0). */
  readonly long?: bigint;
}

function frame(name: string, r: Request, invalid?: string): FrameCase {
  const trailer = r.ttl ?? r.long;
  const length = trailer === undefined ? 49 : 57;
  const body = u8(CMD[r.cmd]) + r.request + r.lock + r.owner + (trailer === undefined ? "" : u64(trailer));
  const fields: FrameFields = {
    cmd: CMD[r.cmd],
    cmd_name: r.cmd,
    length,
    request_id: r.request,
    lock_id: r.lock,
    owner_id: r.owner,
    ...(trailer === undefined ? {} : { ttl_ms: trailer.toString() }),
  };
  return invalid === undefined
    ? { name, hex: u32(length) + body, valid: true, fields }
    : { name, hex: u32(length) + body, valid: false, reason: invalid, answer: INVALID_ANSWER, fields };
}

/** What every invalid frame is answered: status 3, fencing_token 0, expires_at 0. */
const INVALID_ANSWER = "03" + "00".repeat(16);

/** An invalid frame given as its body bytes; cmd and length are the only fields reported. */
function rawFrame(name: string, bodyHex: string, reason: string): FrameCase {
  const length = bodyHex.length / 2;
  const fields: FrameFields =
    length === 0 ? { cmd_name: "none", length } : { cmd: parseInt(bodyHex.slice(0, 2), 16), cmd_name: cmdName(parseInt(bodyHex.slice(0, 2), 16)), length };
  return { name, hex: u32(length) + bodyHex, valid: false, reason, answer: INVALID_ANSWER, fields };
}

function cmdName(cmd: number): string {
  return Object.entries(CMD).find(([, value]) => value === cmd)?.[0] ?? "unknown";
}

function response(status: number, token = 0n, expiresAt = 0n): ResponseCase {
  return {
    hex: u8(status) + u64(token) + u64(expiresAt),
    status,
    status_name: STATUS_NAMES[status]!,
    fencing_token: token.toString(),
    expires_at: expiresAt.toString(),
  };
}

function step(atMs: number, note: string, request: Request, answer: ResponseCase, invalid?: string): SequenceStep {
  return { at_ms: String(atMs), note, request: frame(note, request, invalid), response: answer };
}

const INVALID = response(3);
const NOT_HELD = response(2);

function frames(): FrameCase[] {
  const base = { request: id(1n), lock: LOCK_ORDERS, owner: OWNER_A };
  return [
    frame("ACQUIRE", { ...base, cmd: "ACQUIRE", ttl: 30_000n }),
    frame("RENEW", { ...base, cmd: "RENEW", request: id(2n), ttl: 30_000n }),
    frame("RELEASE, 49-byte form", { ...base, cmd: "RELEASE", request: id(3n) }),
    frame("RELEASE, 57-byte form (trailer ignored)", { ...base, cmd: "RELEASE", request: id(3n), long: 0n }),
    frame("RELEASE, 57-byte form with a non-zero trailer (ignored)", { ...base, cmd: "RELEASE", request: id(3n), long: 0x1234n }),
    frame("INSPECT, 49-byte form", { ...base, cmd: "INSPECT", request: id(4n) }),
    frame("INSPECT, 57-byte form (trailer ignored)", { ...base, cmd: "INSPECT", request: id(4n), long: 0n }),
    frame("ACQUIRE with ttl_ms 1 (smallest valid)", { ...base, cmd: "ACQUIRE", request: id(5n), ttl: 1n }),
    frame("ACQUIRE with ttl_ms = max ttl (largest valid)", { ...base, cmd: "ACQUIRE", request: id(6n), ttl: MAX_TTL_MS }),
    frame("ACQUIRE with all-zero lock and owner ids (ordinary ids)", { cmd: "ACQUIRE", request: id(7n), lock: ZERO_ID, owner: ZERO_ID, ttl: 1000n }),
    frame("ACQUIRE with an all-ones request id", { ...base, cmd: "ACQUIRE", request: "f".repeat(32), ttl: 1000n }),
    rawFrame("unknown cmd 9", u8(9) + id(8n) + LOCK_ORDERS + OWNER_A + u64(1000n), "unknown cmd"),
    rawFrame("cmd 0", u8(0) + id(8n) + LOCK_ORDERS + OWNER_A, "unknown cmd"),
    rawFrame("ACQUIRE with length 49 (needs 57)", u8(1) + id(8n) + LOCK_ORDERS + OWNER_A, "wrong length for the cmd"),
    rawFrame("RENEW with length 58", u8(2) + id(8n) + LOCK_ORDERS + OWNER_A + u64(1000n) + "00", "wrong length for the cmd"),
    rawFrame("RELEASE with length 53", u8(3) + id(8n) + LOCK_ORDERS + OWNER_A + "00000000", "wrong length for the cmd"),
    rawFrame("INSPECT with length 48", u8(4) + id(8n) + LOCK_ORDERS + OWNER_A.slice(2), "wrong length for the cmd"),
    rawFrame("empty body (length 0)", "", "wrong length for any cmd"),
    rawFrame("length 1024 (largest accepted length, fits no cmd)", u8(1) + "00".repeat(1023), "wrong length for the cmd; the connection stays usable"),
    {
      name: "length 1025 (over the limit): answered 3 as soon as the 4-byte header arrives, then closed",
      hex: u32(1025),
      valid: false,
      reason: "length over 1024",
      closes_connection: true,
      answer: INVALID_ANSWER,
      fields: { cmd_name: "none", length: 1025 },
    },
    frame("ACQUIRE with an all-zero request id", { ...base, cmd: "ACQUIRE", request: ZERO_ID, ttl: 1000n }, "all-zero request_id"),
    frame("RELEASE with an all-zero request id", { ...base, cmd: "RELEASE", request: ZERO_ID }, "all-zero request_id"),
    frame("INSPECT with an all-zero request id", { ...base, cmd: "INSPECT", request: ZERO_ID }, "all-zero request_id"),
    frame("ACQUIRE with ttl_ms 0", { ...base, cmd: "ACQUIRE", request: id(9n), ttl: 0n }, "ttl_ms 0"),
    frame("RENEW with ttl_ms 0", { ...base, cmd: "RENEW", request: id(9n), ttl: 0n }, "ttl_ms 0"),
    frame("ACQUIRE with ttl_ms = max ttl + 1", { ...base, cmd: "ACQUIRE", request: id(9n), ttl: MAX_TTL_MS + 1n }, "ttl_ms over the max ttl"),
    frame("RENEW with ttl_ms 2^64-1", { ...base, cmd: "RENEW", request: id(9n), ttl: (1n << 64n) - 1n }, "ttl_ms over the max ttl"),
  ];
}

function lifecycle(): SequenceCase {
  const o = LOCK_ORDERS;
  const v = LOCK_INVENTORY;
  const r = (n: bigint) => id(n);
  return {
    name: "lease lifecycle: grant, held, renew, release, not held, expired, tokens",
    steps: [
      step(1000, "ACQUIRE of a free lock: 0, token 1 (the counter starts at 1), expires_at = now + ttl",
        { cmd: "ACQUIRE", request: r(1n), lock: o, owner: OWNER_A, ttl: 5000n }, response(0, 1n, 6000n)),
      step(1500, "ACQUIRE of a held lock by another owner: 1 with the holder's expiry",
        { cmd: "ACQUIRE", request: r(2n), lock: o, owner: OWNER_B, ttl: 5000n }, response(1, 0n, 6000n)),
      step(1600, "ACQUIRE of a held lock by its holder with a new request id: 1",
        { cmd: "ACQUIRE", request: r(3n), lock: o, owner: OWNER_A, ttl: 5000n }, response(1, 0n, 6000n)),
      step(1700, "INSPECT by another owner while held: 1 with the holder's expiry",
        { cmd: "INSPECT", request: r(4n), lock: o, owner: OWNER_B }, response(1, 0n, 6000n)),
      step(1800, "INSPECT by the holder: 0 with the lease's token and expiry",
        { cmd: "INSPECT", request: r(5n), lock: o, owner: OWNER_A }, response(0, 1n, 6000n)),
      step(2000, "RENEW by the holder: 0, same token, expires_at = now + ttl",
        { cmd: "RENEW", request: r(6n), lock: o, owner: OWNER_A, ttl: 10_000n }, response(0, 1n, 12_000n)),
      step(2100, "RENEW by another owner: 2",
        { cmd: "RENEW", request: r(7n), lock: o, owner: OWNER_B, ttl: 10_000n }, NOT_HELD),
      step(2200, "RELEASE by another owner: 2",
        { cmd: "RELEASE", request: r(8n), lock: o, owner: OWNER_B }, NOT_HELD),
      step(2300, "ACQUIRE of another lock: the one global counter gives token 2",
        { cmd: "ACQUIRE", request: r(9n), lock: v, owner: OWNER_B, ttl: 1000n }, response(0, 2n, 3300n)),
      step(3000, "RELEASE (57-byte form) by the holder: 0, the released token, expires_at = now",
        { cmd: "RELEASE", request: r(10n), lock: o, owner: OWNER_A, long: 0n }, response(0, 1n, 3000n)),
      step(3100, "INSPECT of a released lock: 2 (a released lock is forgotten at once)",
        { cmd: "INSPECT", request: r(11n), lock: o, owner: OWNER_A }, NOT_HELD),
      step(3200, "RELEASE again by the last holder, new request id: 2",
        { cmd: "RELEASE", request: r(12n), lock: o, owner: OWNER_A }, NOT_HELD),
      step(3300, "RENEW exactly at expires_at: the lease ran out (held iff expires_at > now): 5 with its token and expiry",
        { cmd: "RENEW", request: r(13n), lock: v, owner: OWNER_B, ttl: 1000n }, response(5, 2n, 3300n)),
      step(3400, "INSPECT (57-byte form) by the owner whose lease ran out: 5",
        { cmd: "INSPECT", request: r(14n), lock: v, owner: OWNER_B, long: 0n }, response(5, 2n, 3300n)),
      step(3500, "INSPECT of an expired lock by another owner: 2 (free)",
        { cmd: "INSPECT", request: r(15n), lock: v, owner: OWNER_A }, NOT_HELD),
      step(3600, "RELEASE by the owner whose lease ran out: 5",
        { cmd: "RELEASE", request: r(16n), lock: v, owner: OWNER_B }, response(5, 2n, 3300n)),
      step(3700, "an answer 5 changed nothing: RENEW with a new request id answers 5 again",
        { cmd: "RENEW", request: r(17n), lock: v, owner: OWNER_B, ttl: 1000n }, response(5, 2n, 3300n)),
      step(3800, "ACQUIRE of an expired lock: 0 with the next token",
        { cmd: "ACQUIRE", request: r(18n), lock: v, owner: OWNER_A, ttl: 2000n }, response(0, 3n, 5800n)),
      step(3900, "RENEW by the former owner after someone acquired since: 2",
        { cmd: "RENEW", request: r(19n), lock: v, owner: OWNER_B, ttl: 100n }, NOT_HELD),
      step(4000, "ACQUIRE with ttl 1 of the released lock: token 4",
        { cmd: "ACQUIRE", request: r(20n), lock: o, owner: OWNER_B, ttl: 1n }, response(0, 4n, 4001n)),
      step(4001, "INSPECT by the holder exactly at expires_at: 5",
        { cmd: "INSPECT", request: r(21n), lock: o, owner: OWNER_B }, response(5, 4n, 4001n)),
    ],
  };
}

function idempotency(): SequenceCase {
  const o = LOCK_ORDERS;
  const v = LOCK_INVENTORY;
  const x = LOCK_REPORTS;
  const r = (n: bigint) => id(n);
  const original = { cmd: "ACQUIRE", request: r(1n), lock: o, owner: OWNER_A, ttl: 5000n } as const;
  return {
    name: "idempotency and validation: retries, request id reuse, invalid requests, a clock that goes back",
    steps: [
      step(1000, "ACQUIRE: 0, token 1", original, response(0, 1n, 6000n)),
      step(2000, "RELEASE (49-byte form): 0",
        { cmd: "RELEASE", request: r(2n), lock: o, owner: OWNER_A }, response(0, 1n, 2000n)),
      step(2100, "ACQUIRE by another owner: 0, token 2",
        { cmd: "ACQUIRE", request: r(3n), lock: o, owner: OWNER_B, ttl: 5000n }, response(0, 2n, 7100n)),
      step(2200, "retry of request 1: the byte-identical original answer, even though the lock changed since",
        original, response(0, 1n, 6000n)),
      step(2300, "retry of request 2 in the 57-byte form with a non-zero trailer: the same request, the original answer",
        { cmd: "RELEASE", request: r(2n), lock: o, owner: OWNER_A, long: 0x1234n }, response(0, 1n, 2000n)),
      step(2400, "request id 1 with a different ttl: 3", { ...original, ttl: 6000n }, INVALID),
      step(2500, "request id 1 with a different cmd: 3", { ...original, cmd: "RENEW" }, INVALID),
      step(2600, "request id 1 with a different lock: 3", { ...original, lock: v }, INVALID),
      step(2700, "request id 1 with a different owner: 3", { ...original, owner: OWNER_B }, INVALID),
      step(2800, "INSPECT reusing a recorded request id: 3",
        { cmd: "INSPECT", request: r(3n), lock: o, owner: OWNER_B }, INVALID),
      step(2900, "INSPECT: 0 held by this owner (the 3s above changed nothing)",
        { cmd: "INSPECT", request: r(4n), lock: o, owner: OWNER_B }, response(0, 2n, 7100n)),
      step(3000, "INSPECT is never recorded: its request id serves a new ACQUIRE",
        { cmd: "ACQUIRE", request: r(4n), lock: v, owner: OWNER_A, ttl: 1000n }, response(0, 3n, 4000n)),
      step(3100, "ttl_ms 0: 3",
        { cmd: "ACQUIRE", request: r(5n), lock: v, owner: OWNER_B, ttl: 0n }, INVALID, "ttl_ms 0"),
      step(3200, "ttl_ms over the max ttl: 3",
        { cmd: "ACQUIRE", request: r(5n), lock: v, owner: OWNER_B, ttl: MAX_TTL_MS + 1n }, INVALID, "ttl_ms over the max ttl"),
      step(3300, "a 3 is never recorded: the same request id serves a valid request",
        { cmd: "ACQUIRE", request: r(5n), lock: v, owner: OWNER_B, ttl: 1000n }, response(1, 0n, 4000n)),
      step(3400, "all-zero request id: 3",
        { cmd: "ACQUIRE", request: ZERO_ID, lock: x, owner: OWNER_A, ttl: 1000n }, INVALID, "all-zero request_id"),
      step(2000, "a stamp behind the logical clock counts as the previous now: 3300 (answers 3 are not logged, so they never move the clock)",
        { cmd: "ACQUIRE", request: r(6n), lock: x, owner: OWNER_A, ttl: 1000n }, response(0, 4n, 4300n)),
      step(3500, "INSPECT (57-byte form) by the holder",
        { cmd: "INSPECT", request: r(7n), lock: v, owner: OWNER_A, long: 0n }, response(0, 3n, 4000n)),
    ],
  };
}

function remembering(): SequenceCase {
  const o = LOCK_ORDERS;
  const r = (n: bigint) => id(n);
  const first = { cmd: "ACQUIRE", request: r(1n), lock: o, owner: OWNER_A, ttl: 1000n } as const;
  return {
    name: "remembering: the dedupe window (from first processing, no refresh) and the expired-lease retention",
    steps: [
      step(1000, "ACQUIRE: 0, token 1", first, response(0, 1n, 2000n)),
      step(30_000, "RENEW after expiry: 5 (recorded)",
        { cmd: "RENEW", request: r(2n), lock: o, owner: OWNER_A, ttl: 1000n }, response(5, 1n, 2000n)),
      step(60_999, "retry of request 1 inside its window (1000 + 60000 > 60999): the original answer",
        first, response(0, 1n, 2000n)),
      step(61_999, "INSPECT 1 ms before the retention ends (2000 + 60000): 5",
        { cmd: "INSPECT", request: r(3n), lock: o, owner: OWNER_A }, response(5, 1n, 2000n)),
      step(62_000, "RENEW once the retention has passed: the lease is forgotten, 2",
        { cmd: "RENEW", request: r(4n), lock: o, owner: OWNER_A, ttl: 1000n }, NOT_HELD),
      step(62_000, "request 1 again after its window (the retry at 60999 did not refresh it): processed anew, token 2",
        first, response(0, 2n, 63_000n)),
      step(62_100, "retry of request 2 (first processed at 30000): still the original 5",
        { cmd: "RENEW", request: r(2n), lock: o, owner: OWNER_A, ttl: 1000n }, response(5, 1n, 2000n)),
      step(62_200, "retry of request 1: now the answer recorded at 62000",
        first, response(0, 2n, 63_000n)),
    ],
  };
}

export function buildVectors(): VectorFile {
  return {
    protocol: "baton wire protocol v1",
    description: [
      "Request frame: u32 length (big-endian, bytes after the field) + body; body = u8 cmd, request_id[16], lock_id[16], owner_id[16], ttl_ms u64 (ACQUIRE/RENEW; RELEASE/INSPECT may send it as an ignored trailer).",
      "Response: exactly 17 bytes, u8 status | u64 fencing_token | u64 expires_at, big-endian, no length prefix.",
      "Ids are 32 hex digits (16 raw bytes). ttl_ms, fencing_token, expires_at and at_ms are decimal strings (u64).",
      "frames: every frame with valid=false is answered 3 (token 0, expires_at 0), its answer given in hex; closes_connection marks a length over 1024 (3, then the server closes). A frame's hex is authoritative; an invalid frame's fields give only what makes it invalid.",
      "lock_names: lock_id = first 16 bytes of SHA-256 of the UTF-8 name, exactly as given (no Unicode normalization: the last two are NFC and NFD forms of one word, and two different locks).",
      "sequences: each starts from an empty state (no locks, no dedupe entries, logical now 0, next fencing token 1) with the config below; send the steps in order, each with its at_ms as the server's clock sample, and expect each response byte for byte. A running server samples its own clock instead: against one, compare each step's status and fencing token, and its expires_at as the server's time of processing plus the ttl.",
    ],
    config: {
      max_frame_length: 1024,
      max_ttl_ms: MAX_TTL_MS.toString(),
      dedupe_window_ms: "60000",
      expired_retention_ms: "60000",
    },
    lock_names: ["orders/42", "inventory/7", "reports/daily", "naïve/ключ/🔒", "", "na\u00efve", "nai\u0308ve"].map((name) => ({
      name,
      utf8_hex: Buffer.from(name, "utf8").toString("hex"),
      lock_id: nameId(name),
    })),
    frames: frames(),
    sequences: [lifecycle(), idempotency(), remembering()],
  };
}

/** The file's exact text: two-space JSON and a final newline. */
export function renderVectors(): string {
  return `${JSON.stringify(buildVectors(), null, 2)}\n`;
}
