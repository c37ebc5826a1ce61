/**
 * Compaction: fold sealed log segments into a new snapshot, away from the server's event loop.
 * Because the state machine is deterministic, the new state is rebuilt from the previous snapshot
 * plus the segments (the same replay as recovery) rather than copied from the live server, so
 * serving never pauses for it.
 */
import { emptyStateFor, writeSnapshot } from "../core/snapshot-codec.js";
import type { StateMachine, StateMachineConfig } from "../core/state-machine.js";
import type { DataDir } from "./data-dir.js";
import { SegmentReader } from "./segment-reader.js";
import { replaySegment, type ReplayProgress } from "./segment-replay.js";
import { readSnapshotFile, writeSnapshotFile } from "./snapshot-file.js";

export interface CompactionJob {
  readonly dir: DataDir;
  readonly config: StateMachineConfig;
  readonly snapshotPath: string | null;
  /** Sealed segments in log order; the new snapshot ends at the last one's last index. */
  readonly segments: readonly { readonly path: string; readonly lastIndex: number }[];
}

export interface CompactionResult {
  readonly snapshotPath: string;
  readonly lastIndex: number;
  readonly locks: number;
  readonly dedupeEntries: number;
  /** Size of the snapshot file written. */
  readonly bytes: number;
}

/**
 * `stillWanted` is asked between segments and before the snapshot is written; when it answers false
 * the job stops with an error and writes nothing.
 */
export function compact(job: CompactionJob, stillWanted: () => boolean = () => true): CompactionResult {
  // Tables sized for everything about to be loaded (see decodeSnapshot).
  const replayThrough = job.segments.at(-1)?.lastIndex ?? 0;
  let stateMachine: StateMachine | null = null;
  const progress: ReplayProgress = { snapshotIndex: 0, lastIndex: 0, lastTerm: 0, entries: 0 };
  if (job.snapshotPath !== null) {
    const decoded = readSnapshotFile(job.snapshotPath, job.config, replayThrough);
    if (!decoded.ok) throw new Error(`snapshot ${job.snapshotPath}: ${decoded.reason}`);
    stateMachine = decoded.stateMachine;
    Object.assign(progress, { snapshotIndex: decoded.position.lastIndex, lastIndex: decoded.position.lastIndex, lastTerm: decoded.position.lastTerm });
  }
  stateMachine ??= emptyStateFor(job.config, replayThrough);
  const segmentReader = new SegmentReader();
  for (const segment of job.segments) {
    if (!stillWanted()) throw new Error("compaction abandoned");
    const stop = replaySegment(segmentReader, segment.path, stateMachine, progress);
    if (!stop.clean) throw new Error(`${segment.path} offset ${stop.end}: ${stop.damage}`);
    if (progress.lastIndex !== segment.lastIndex) {
      throw new Error(`${segment.path} ends at index ${progress.lastIndex}, expected ${segment.lastIndex}`);
    }
  }
  if (!stillWanted()) throw new Error("compaction abandoned");
  const position = { lastIndex: progress.lastIndex, lastTerm: progress.lastTerm };
  let bytes = 0;
  const snapshotPath = writeSnapshotFile(job.dir, progress.lastIndex, (sink) => (bytes = writeSnapshot(stateMachine, position, sink)), stillWanted);
  if (snapshotPath === null) throw new Error("compaction abandoned");
  return { snapshotPath, lastIndex: progress.lastIndex, locks: stateMachine.lockRecordCount, dedupeEntries: stateMachine.dedupeEntryCount, bytes };
}
