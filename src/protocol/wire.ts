/**
 * The fixed numbers of wire protocol v1 (protocol.md is the contract; this file mirrors it).
 * Every request is `u32 length` (big-endian, bytes after the field) + body; every response is
 * exactly RESPONSE_BYTES with no length prefix. All integers are big-endian.
 */

export const LENGTH_PREFIX_BYTES = 4;
/** Largest length field the server accepts; a larger one cannot be resynchronised and closes the connection. */
export const MAX_FRAME_LENGTH = 1024;

export const ID_BYTES = 16;
/** cmd, request_id, lock_id, owner_id, ttl_ms */
export const LONG_BODY_BYTES = 1 + 3 * ID_BYTES + 8; // 57
/** cmd, request_id, lock_id, owner_id */
export const SHORT_BODY_BYTES = 1 + 3 * ID_BYTES; // 49
export const RESPONSE_BYTES = 1 + 8 + 8; // 17

/** Offsets inside a request body (the body starts with the command byte). */
export const BODY_CMD = 0;
export const BODY_REQUEST_ID = 1;
export const BODY_LOCK_ID = 17;
export const BODY_OWNER_ID = 33;
export const BODY_TTL = 49;

/** Offsets inside a response. */
export const RESPONSE_STATUS = 0;
export const RESPONSE_TOKEN = 1;
export const RESPONSE_EXPIRES_AT = 9;

export const Command = {
  Acquire: 1,
  Renew: 2,
  Release: 3,
  Inspect: 4,
} as const;
export type Command = (typeof Command)[keyof typeof Command];

export const Status = {
  Ok: 0,
  Held: 1,
  NotHeld: 2,
  Invalid: 3,
  NotLeader: 4,
  Expired: 5,
  Unavailable: 6,
} as const;
export type Status = (typeof Status)[keyof typeof Status];

export const COMMAND_NAMES: Readonly<Record<Command, string>> = {
  1: "ACQUIRE",
  2: "RENEW",
  3: "RELEASE",
  4: "INSPECT",
};

export const STATUS_NAMES: Readonly<Record<Status, string>> = {
  0: "ok",
  1: "held",
  2: "not_held",
  3: "invalid",
  4: "not_leader",
  5: "expired",
  6: "unavailable",
};

/** Commands whose body carries ttl_ms. RELEASE and INSPECT also accept the long form and ignore the trailer. */
export function commandTakesTtl(cmd: number): boolean {
  return cmd === Command.Acquire || cmd === Command.Renew;
}

/** One of the four commands a client sends. */
export function isCommand(cmd: number): cmd is Command {
  return cmd >= Command.Acquire && cmd <= Command.Inspect;
}
