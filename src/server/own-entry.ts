/**
 * Commands the server issues itself before serving (a fencing bump, a change of the retention
 * settings): log-only entries that go through the pipeline like a client's, so every replay,
 * compaction and snapshot after them keeps their effect.
 */
import { RESPONSE_BYTES, RESPONSE_STATUS, Status } from "../protocol/wire.js";
import type { CommitPipeline, ReplySink } from "./commit-pipeline.js";

/** Executes and logs the 57-byte entry, waits until it is durable, and returns its answer (status 6 if its batch failed). */
export async function commitOwnEntry(pipeline: CommitPipeline, entry: Uint8Array): Promise<Uint8Array> {
  const sink = new SingleAnswer();
  pipeline.submitEntry(sink, entry, pipeline.stamp());
  await pipeline.whenIdle();
  return sink.answer;
}

/** The reply sink of one command the server issues itself. */
class SingleAnswer implements ReplySink {
  openReplies = new Uint8Array(RESPONSE_BYTES);
  inOpenBatch = false;
  /** The answer once released; status 6 if its batch failed. */
  readonly answer = new Uint8Array(RESPONSE_BYTES);

  reserveReply(): number {
    return 0;
  }

  sealReplies(): void {}

  releaseReplies(failed: boolean): void {
    this.answer.set(this.openReplies);
    if (failed) this.answer[RESPONSE_STATUS] = Status.Unavailable;
  }
}
