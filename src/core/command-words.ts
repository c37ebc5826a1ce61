/**
 * A command's fields as signed 32-bit words, read from its 57-byte entry once.
 *
 * The ids are compared, hashed and stored as big-endian words (see IdIndex). Reading them from the
 * entry's bytes every time they are needed meant reading each id three or four times per command
 * (hash, probe, store); reading all fourteen words once and handing the array around does it once.
 *
 *   words[0..4)   request_id    words[4..8)   lock_id    words[8..12)   owner_id
 *   words[12..14) ttl_ms (high word, low word)
 */
import { BODY_REQUEST_ID } from "../protocol/wire.js";
import { readWord } from "./hash.js";

export const COMMAND_WORDS = 14;
export const WORD_REQUEST_ID = 0;
export const WORD_LOCK_ID = 4;
export const WORD_OWNER_ID = 8;
export const WORD_TTL = 12;

/** Reads the words of the 57-byte entry at `entry[at..]` into `words`. */
export function readCommandWords(entry: Uint8Array, at: number, words: Int32Array): void {
  const first = at + BODY_REQUEST_ID;
  for (let k = 0; k < COMMAND_WORDS; k++) words[k] = readWord(entry, first + 4 * k);
}

/**
 * Copies a request body of `length` bytes (57, or 49 for the short RELEASE/INSPECT form, whose ttl
 * is then zero) from `from` at `fromAt` into a 57-byte entry at `toAt` of `to`, and reads its words
 * into `words` on the way. Both sides are DataViews: a big-endian word is then one load (or store)
 * instead of four byte loads and three shifts, about half the cost of the copy.
 */
export function copyCommand(from: DataView, fromAt: number, length: number, to: DataView, toAt: number, words: Int32Array): void {
  to.setUint8(toAt, from.getUint8(fromAt));
  const present = (length - BODY_REQUEST_ID) >> 2;
  const first = fromAt + BODY_REQUEST_ID;
  for (let k = 0; k < COMMAND_WORDS; k++) {
    const word = k < present ? from.getInt32(first + 4 * k) : 0;
    words[k] = word;
    to.setInt32(toAt + BODY_REQUEST_ID + 4 * k, word);
  }
}

/** The ttl in ms (exact: the server admits ttls far below 2^53). */
export function ttlOf(words: Int32Array): number {
  return u64Of(words, WORD_TTL);
}

/** The u64 in `words[at..at+2)` (high word first), exact below 2^53. */
export function u64Of(words: Int32Array, at: number): number {
  return (words[at]! >>> 0) * 0x1_0000_0000 + (words[at + 1]! >>> 0);
}

/** The 16-byte id at `bytes[at..]` as four words into `words[wordsAt..]` (snapshots, tests). */
export function readIdWords(bytes: Uint8Array, at: number, words: Int32Array, wordsAt: number): void {
  for (let k = 0; k < 4; k++) words[wordsAt + k] = readWord(bytes, at + 4 * k);
}
