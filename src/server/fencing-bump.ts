/**
 * `--bump-fencing-token N`: raises the fencing counter by N before lockd serves. For a data
 * directory restored from a copy: the tokens issued after the copy was taken are unknown to it, and
 * every token from now on must be above them, or a resource that already saw one would let a new
 * holder in with an equal token. The bump goes through the log as a BUMP_FENCING_TOKEN entry, so
 * every replay, compaction and snapshot after it keeps the raised counter.
 */
import { bumpLeavesToken, MAX_FENCING_TOKEN, writeBumpEntry } from "../core/state-machine.js";
import { ENTRY_BYTES } from "../log/record.js";
import { readU64 } from "../protocol/u64.js";
import { RESPONSE_STATUS, RESPONSE_TOKEN, Status } from "../protocol/wire.js";
import type { CommitPipeline } from "./commit-pipeline.js";
import { commitOwnEntry } from "./own-entry.js";

export type BumpResult = { readonly ok: true; readonly nextToken: number } | { readonly ok: false; readonly reason: string };

/**
 * Why a bump of `amount` with `nextToken` the next token cannot be made, or null if it can: the
 * state machine's own rule (a bump must leave a token to grant), checked before a start changes
 * anything.
 */
export function bumpRefusal(nextToken: number, amount: number): string | null {
  return bumpLeavesToken(nextToken, amount) ? null : noTokenLeft(amount);
}

function noTokenLeft(amount: number): string {
  return `raising it by ${amount} would leave no fencing token to grant (the largest is 2^53 - 2, ${MAX_FENCING_TOKEN})`;
}

/** Logs the bump, waits until it is durable, and returns the token the next ACQUIRE will get. */
export async function bumpFencingToken(pipeline: CommitPipeline, amount: number): Promise<BumpResult> {
  const entry = new Uint8Array(ENTRY_BYTES);
  writeBumpEntry(entry, 0, amount);
  const answer = await commitOwnEntry(pipeline, entry);
  const status = answer[RESPONSE_STATUS];
  if (status === Status.Ok) return { ok: true, nextToken: readU64(answer, RESPONSE_TOKEN) };
  if (status === Status.Invalid) return { ok: false, reason: noTokenLeft(amount) };
  return {
    ok: false,
    reason: "the log could not be written, so the bump may or may not be on disk: the next start's \"next fencing token\" tells which",
  };
}
