/** Typed access to test/vectors/protocol-v1.json, read from disk as other-language clients would. */
import { readFileSync } from "node:fs";
import { BODY_CMD, BODY_TTL, commandTakesTtl, isWellFormedRequestBody } from "../../src/protocol/index.js";
import { readU64Clamped } from "../../src/protocol/u64.js";
import type { VectorFile } from "../vectors/generate.js";

export type { FrameCase, ResponseCase, SequenceCase, SequenceStep, VectorFile } from "../vectors/generate.js";

export function loadVectors(): VectorFile {
  return JSON.parse(readFileSync(new URL("../vectors/protocol-v1.json", import.meta.url), "utf8")) as VectorFile;
}

/**
 * The validity a frame case states: the server answers it 3 unless a remembered request id
 * answers first. Well-formed, and (ACQUIRE/RENEW) ttl_ms <= maxTtlMs, the bound the state machine
 * checks after the remembered ids (protocol.md §5).
 */
export function isValidRequestBody(bytes: Uint8Array, at: number, length: number, maxTtlMs: number): boolean {
  if (!isWellFormedRequestBody(bytes, at, length)) return false;
  return !commandTakesTtl(bytes[at + BODY_CMD]!) || readU64Clamped(bytes, at + BODY_TTL) <= maxTtlMs;
}
