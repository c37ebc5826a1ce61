/** Expected 17-byte answers, built independently of the server's writer. */
import { decodeResponse, type Response } from "../../src/protocol/index.js";

export function answerHex(status: number, token = 0n, expiresAt = 0n): string {
  const bytes = Buffer.alloc(17);
  bytes[0] = status;
  bytes.writeBigUInt64BE(token, 1);
  bytes.writeBigUInt64BE(expiresAt, 9);
  return bytes.toString("hex");
}

export const INVALID_HEX = answerHex(3);

/** Splits reply bytes into 17-byte answers; throws on a torn answer. */
export function splitAnswers(bytes: Buffer): Response[] {
  if (bytes.length % 17 !== 0) throw new Error(`${bytes.length} reply bytes is not a whole number of 17-byte answers`);
  const out: Response[] = [];
  for (let at = 0; at < bytes.length; at += 17) out.push(decodeResponse(bytes, at));
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
