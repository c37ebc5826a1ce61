/**
 * `--dedupe-window` and `--expired-retention` decide answers (whether a request id is a retry, whether
 * an expired lease's owner gets 5 or 2), so a replay must decide every command with the values it was
 * first decided with, not with the flags of the start that replays it. The state machine therefore
 * keeps them as state; a start whose flags differ from the recovered values logs a SET_RETENTION
 * entry before serving, and the new values apply from there on.
 */
import { writeRetentionEntry, type RetentionSettings } from "../core/state-machine.js";
import { ENTRY_BYTES } from "../log/record.js";
import { RESPONSE_STATUS, Status } from "../protocol/wire.js";
import type { CommitPipeline } from "./commit-pipeline.js";
import { commitOwnEntry } from "./own-entry.js";

export function sameRetention(a: RetentionSettings, b: RetentionSettings): boolean {
  return a.dedupeWindowMs === b.dedupeWindowMs && a.expiredRetentionMs === b.expiredRetentionMs;
}

/** Logs the new settings and waits until they are durable; false if the log could not be written. */
export async function changeRetention(pipeline: CommitPipeline, settings: RetentionSettings): Promise<boolean> {
  const entry = new Uint8Array(ENTRY_BYTES);
  writeRetentionEntry(entry, 0, settings);
  const answer = await commitOwnEntry(pipeline, entry);
  return answer[RESPONSE_STATUS] === Status.Ok;
}
