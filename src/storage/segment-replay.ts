/**
 * Replaying log segments into a state machine (recovery, compaction). A segment is read through a
 * window of a few MiB reused from window to window, not whole: a 32 MiB buffer costs 8k page faults
 * the first time it is filled, and 32 MiB of short-lived memory at every start.
 *
 * The window only ever decides the clean case: records one after another, then zeros to the end of
 * the file. Anything else (a damaged record, a record out of sequence, data after the zeros) is
 * decided on the whole file, read into memory then, with the replay going on from where the window
 * stopped. So every stop, its offset and its message are exactly those of a replay of the whole file.
 */
import { PREFETCH_MAX, fixedStarts, isLogCommand, type StateMachine } from "../core/state-machine.js";
import { ENTRY_BYTES, readRecord } from "../log/record.js";
import { BODY_CMD, RESPONSE_BYTES } from "../protocol/wire.js";
import type { SegmentReader } from "./segment-reader.js";

/** Bytes of a segment replayed at once; a record longer than this gets a window of its own length. */
export const REPLAY_WINDOW_BYTES = 4 << 20;

export interface ReplayProgress {
  /** Entries up to this index are already in the state (from the snapshot). */
  readonly snapshotIndex: number;
  lastIndex: number;
  lastTerm: number;
  entries: number;
}

/**
 * Where a replay of one segment's bytes stopped and, if it stopped before the end, why (a damaged
 * record at `end`, or an intact one that cannot be applied).
 */
export interface ReplayStop {
  readonly end: number;
  readonly damage: string | null;
  /**
   * The record at `end` is intact but cannot be applied: it does not continue the log, or it holds an
   * entry this version does not know. Never a torn write.
   */
  readonly intact: boolean;
}

/** How the replay of a whole segment file stopped; `end` is an offset in the file. */
export type SegmentStop =
  | { readonly clean: true; readonly end: number }
  /** Stopped at damage, decided on the whole file, which `file` holds (valid until the reader's next read). */
  | { readonly clean: false; readonly end: number; readonly damage: string; readonly intact: boolean; readonly file: Buffer };

export interface SegmentReplayOptions {
  /**
   * Where the records end, as far as the caller knows (recovery walks the newest segment's headers):
   * the bytes after it are only checked for zeros, never read into memory. The whole file by default.
   */
  readonly recordsEnd?: number;
  readonly windowBytes?: number;
  /** Called after each window is replayed (progress reports of a long recovery). */
  readonly afterWindow?: (progress: ReplayProgress) => void;
}

/** Applies every record of the segment at `path` in order, through a window (see above). */
export function replaySegment(
  reader: SegmentReader,
  path: string,
  stateMachine: StateMachine,
  progress: ReplayProgress,
  options: SegmentReplayOptions = {},
): SegmentStop {
  const recordsEnd = options.recordsEnd ?? Number.POSITIVE_INFINITY;
  const windowBytes = options.windowBytes ?? REPLAY_WINDOW_BYTES;
  let from = 0;
  let wanted = Math.min(windowBytes, recordsEnd);
  for (;;) {
    const bytes = reader.read(path, wanted, from);
    const stop = replayRecords(bytes, stateMachine, progress);
    options.afterWindow?.(progress);
    const end = from + stop.end;
    // The window was cut by its size, not by the file's end or `recordsEnd`: records may go on.
    const cut = bytes.length === wanted && from + wanted < recordsEnd;
    if (cut && !stop.intact && (stop.damage !== null || stop.end === bytes.length)) {
      // Stopped at the window's edge, or at a record that may run past it: go on from there, in a
      // window long enough for that record, unless this window already started there and held it.
      const next = Math.max(windowBytes, declaredRecordBytes(bytes, stop.end));
      if (stop.end > 0 || next > bytes.length) {
        from = end;
        wanted = Math.min(next, recordsEnd - from);
        continue;
      }
    } else if (stop.damage === null && reader.zerosFrom(path, from + bytes.length)) {
      return { clean: true, end };
    }
    const file = reader.read(path);
    const rest = replayRecords(file, stateMachine, progress, end);
    if (rest.damage === null) return { clean: true, end: rest.end };
    return { clean: false, end: rest.end, damage: rest.damage, intact: rest.intact, file };
  }
}

/** The length the record at `bytes[at..]` claims for itself, or 0 when its length field is not all there. */
function declaredRecordBytes(bytes: Buffer, at: number): number {
  return at + 4 <= bytes.length ? 4 + bytes.readUInt32BE(at) : 0;
}

/** Applies every record of `bytes` from `from` on, in order, and says where and why it stopped. */
export function replayRecords(bytes: Buffer, stateMachine: StateMachine, progress: ReplayProgress, from = 0): ReplayStop {
  const answer = new Uint8Array(RESPONSE_BYTES);
  const starts = new Int32Array(PREFETCH_MAX);
  let at = from;
  for (;;) {
    const scan = readRecord(bytes, at);
    if (scan.kind === "end") return { end: at, damage: null, intact: false };
    if (scan.kind !== "record") return { end: at, damage: scan.reason, intact: false };
    const { header } = scan;
    const recordLast = header.firstIndex + header.count - 1;
    if (recordLast > progress.snapshotIndex) {
      // Entries continue the log exactly; only a record straddling the snapshot may start earlier.
      const expected = progress.lastIndex + 1;
      const straddles = header.firstIndex <= progress.snapshotIndex && progress.lastIndex === progress.snapshotIndex;
      if (header.firstIndex !== expected && !straddles) {
        return { end: at, damage: `record starts at index ${header.firstIndex}, expected ${expected}`, intact: true };
      }
      const unknown = firstUnknownEntry(bytes, scan.entriesAt, header.count);
      if (unknown >= 0) {
        const cmd = bytes[scan.entriesAt + unknown * ENTRY_BYTES + BODY_CMD]!;
        const damage = `entry ${header.firstIndex + unknown} has command 0x${cmd.toString(16).padStart(2, "0")}, which this version of lockd does not know (written by a newer version?)`;
        return { end: at, damage, intact: true };
      }
      for (let from = 0; from < header.count; from += PREFETCH_MAX) {
        const to = Math.min(header.count, from + PREFETCH_MAX);
        // As the server does for a read's frames: warm the tables for the record's entries first.
        const window = to - from;
        if (window > 1) stateMachine.prefetch(bytes, fixedStarts(starts, scan.entriesAt + from * ENTRY_BYTES, ENTRY_BYTES, window), window, header.stampMs);
        for (let i = from; i < to; i++) {
          const index = header.firstIndex + i;
          if (index <= progress.snapshotIndex) continue;
          stateMachine.execute(bytes, scan.entriesAt + i * ENTRY_BYTES, header.stampMs, answer, 0, null);
          progress.lastIndex = index;
          progress.entries++;
        }
      }
      progress.lastTerm = header.term;
    }
    at = scan.end;
  }
}

/** The position in its record of the first of `count` entries whose command isLogCommand refuses, or -1. */
function firstUnknownEntry(bytes: Buffer, entriesAt: number, count: number): number {
  for (let i = 0; i < count; i++) {
    if (!isLogCommand(bytes[entriesAt + i * ENTRY_BYTES + BODY_CMD]!)) return i;
  }
  return -1;
}
