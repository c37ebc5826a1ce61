/**
 * Drives the StateMachine the way the server does: a frame body is checked for form first (a
 * malformed one answers 3 without reaching the state machine), then turned into the 57-byte log
 * entry (RELEASE and INSPECT with a zero ttl field, whatever their long form carried) and executed at
 * a time stamp, with the admission limits: capacity (none unless given) and the maximum ttl, which
 * the state machine checks after the remembered request ids.
 */
import { StateMachine, type AdmissionLimits, type StateMachineConfig } from "../../src/core/state-machine.js";
import {
  LENGTH_PREFIX_BYTES,
  LONG_BODY_BYTES,
  RESPONSE_BYTES,
  SHORT_BODY_BYTES,
  Status,
  commandTakesTtl,
  isWellFormedRequestBody,
} from "../../src/protocol/index.js";

export const DEFAULT_MAX_TTL_MS = 3_600_000;

export const DEFAULT_SM_CONFIG: StateMachineConfig = {
  dedupeWindowMs: 60_000,
  expiredRetentionMs: 60_000,
  hashSeed: 12345,
};

/** The log entry of a valid request body: always 57 bytes, the trailer zeroed for RELEASE/INSPECT. */
export function entryOf(body: Uint8Array): Buffer {
  const entry = Buffer.alloc(LONG_BODY_BYTES);
  entry.set(body.subarray(0, SHORT_BODY_BYTES), 0);
  if (commandTakesTtl(body[0]!)) entry.set(body.subarray(SHORT_BODY_BYTES, LONG_BODY_BYTES), SHORT_BODY_BYTES);
  return entry;
}

export interface Executed {
  readonly reply: Buffer;
  readonly status: number;
  /** The 57-byte entry the state machine saw; null when the form check answered 3 first. */
  readonly entry: Buffer | null;
}

export class Driver {
  readonly sm: StateMachine;

  /** The admission limits every command is executed with; `maxTtlMs` may change (setMaxTtl). */
  private limits: AdmissionLimits;

  constructor(
    config: Partial<StateMachineConfig> = {},
    capacity: Omit<AdmissionLimits, "maxTtlMs"> | null = null,
    maxTtlMs = DEFAULT_MAX_TTL_MS,
  ) {
    this.sm = new StateMachine({ ...DEFAULT_SM_CONFIG, ...config });
    this.limits = { maxLocks: capacity?.maxLocks ?? Infinity, maxDedupeEntries: capacity?.maxDedupeEntries ?? Infinity, maxTtlMs };
  }

  /** From now on, ACQUIRE/RENEW above `maxTtlMs` answer 3 unless remembered. */
  setMaxTtl(maxTtlMs: number): void {
    this.limits = { ...this.limits, maxTtlMs };
  }

  /** Sends one whole frame (length prefix included) at time stamp `stampMs`. */
  send(frame: Uint8Array, stampMs: number): Executed {
    const length = frame.length - LENGTH_PREFIX_BYTES;
    if (Buffer.from(frame.buffer, frame.byteOffset, 4).readUInt32BE(0) !== length) throw new Error("length prefix mismatch");
    const body = frame.subarray(LENGTH_PREFIX_BYTES);
    const reply = Buffer.alloc(RESPONSE_BYTES, 0xee);
    if (!isWellFormedRequestBody(body, 0, length)) {
      reply.fill(0);
      reply[0] = Status.Invalid;
      return { reply, status: Status.Invalid, entry: null };
    }
    const entry = entryOf(body);
    const status = this.sm.execute(entry, 0, stampMs, reply, 0, this.limits);
    if (status !== reply[0]) throw new Error(`execute returned ${status} but wrote status ${reply[0]}`);
    return { reply, status, entry };
  }
}
