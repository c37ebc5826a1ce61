/**
 * Start-up recovery: the newest snapshot, then every log record after it, replayed through the same
 * state machine code that decided them. Damage in the newest segment that can only be writes that
 * never finished (see judgeDamage) was never acknowledged: it is truncated there, with whatever
 * intact records of those writes follow it, and reported. Damage anywhere else refuses the start,
 * naming the file and offset, because skipping a record would silently forget acknowledged state.
 * After a clean stop (clean-stop-file.ts) no write was unfinished: damage before the index the stop
 * recorded, and a log that ends before it, refuse the start (bytes after it are dropped). Files a
 * snapshot covers (older snapshots, segments wholly inside it) are leftovers of an interrupted
 * clean-up and go.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, statSync, unlinkSync } from "node:fs";
import { emptyStateFor } from "../core/snapshot-codec.js";
import type { StateMachine, StateMachineConfig } from "../core/state-machine.js";
import { MAX_APPENDS_IN_FLIGHT } from "../log/commit-log.js";
import {
  ENTRY_BYTES,
  RECORD_COUNT_AT,
  RECORD_HEADER_BYTES,
  countFitsLength,
  entryCount,
  firstNonZero,
  readRecord,
  startsWriteAfterDurable,
  type RecordHeader,
} from "../log/record.js";
import type { Logger } from "../logging/logger.js";
import { cleanStopPath } from "./clean-stop-file.js";
import { listSegments, listSnapshots, type DataDir, type SegmentFile } from "./data-dir.js";
import { syncDirectory } from "./log-file.js";
import { RecoveryProgress } from "./recovery-progress.js";
import { SegmentReader } from "./segment-reader.js";
import { replaySegment, type ReplayProgress } from "./segment-replay.js";
import { readSnapshotFile } from "./snapshot-file.js";

export class RecoveryError extends Error {
  readonly code = "RECOVERY_FAILED";
}

export interface Recovered {
  readonly stateMachine: StateMachine;
  /** Index of the last entry in the state (0 for an empty log). */
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** The newest segment, to keep appending to; null when there is none. */
  readonly active: SegmentFile | null;
  /**
   * Where in `active` the last write begins that was issued when everything before it was durable
   * (lastWriteAfterDurable), from the walk of its headers recovery makes anyway; null if none.
   */
  readonly activeLastWriteAfterDurableAt: number | null;
  /** Older segments not yet folded into a snapshot, oldest first. */
  readonly sealed: readonly (SegmentFile & { readonly lastIndex: number })[];
  readonly snapshotPath: string | null;
  readonly entriesReplayed: number;
  /** Bytes of log segments read into memory for the replay (the newest segment's unwritten zeros are not). */
  readonly logBytesRead: number;
}

/** How recovery reports a long run (recovery-progress.ts); tests shrink the size and drive the clock. */
export interface RecoveryReporting {
  readonly announcedBytes?: number;
  readonly now?: () => number;
}

export interface RecoveryOptions extends RecoveryReporting {
  /** The last index a clean stop recorded (clean-stop-file.ts), if the last stop was clean. */
  readonly cleanStopIndex?: number | null;
}

export function recover(dir: DataDir, config: StateMachineConfig, logger: Logger, options: RecoveryOptions = {}): Recovered {
  const segments = listSegments(dir);
  // Size the tables for the whole log up front (see decodeSnapshot): where the newest segment's
  // records end, from their headers.
  const newestSegment = segments.at(-1);
  const newestHeaders = newestSegment === undefined ? null : scanHeaders(newestSegment.path, newestSegment.firstIndex);
  const replayThrough = newestHeaders?.lastIndex ?? 0;
  // A record of a clean stop that the log's headers go past is stale (a version that does not know
  // the record ran after it): it proves nothing then.
  const cleanStop = options.cleanStopIndex ?? null;
  const stoppedCleanlyAt = cleanStop !== null && cleanStop >= replayThrough ? cleanStop : null;
  let stateMachine: StateMachine | null = null;
  let lastIndex = 0;
  let lastTerm = 0;
  let snapshotPath: string | null = null;

  const [newest, ...older] = listSnapshots(dir);
  const firstLogIndex = segments[0]?.firstIndex ?? 1;
  const report = RecoveryProgress.start(
    logger,
    dir.root,
    newest === undefined ? 0 : statSync(newest.path).size,
    Math.max(0, replayThrough - Math.max(newest?.lastIndex ?? 0, firstLogIndex - 1)),
    options,
  );
  if (newest !== undefined) {
    const decoded = readSnapshotFile(newest.path, config, replayThrough);
    if (!decoded.ok) throw new RecoveryError(`snapshot ${newest.path} is unreadable: ${decoded.reason}`);
    if (decoded.position.lastIndex !== newest.lastIndex) {
      throw new RecoveryError(`snapshot ${newest.path} says it ends at index ${decoded.position.lastIndex}, its name says ${newest.lastIndex}`);
    }
    stateMachine = decoded.stateMachine;
    lastIndex = decoded.position.lastIndex;
    lastTerm = decoded.position.lastTerm;
    snapshotPath = newest.path;
    // The compaction that renamed this snapshot into place may have died before syncing its
    // directory: until that sync the rename is not durable, and deleting what the snapshot covers
    // (the older snapshot, the segments below) could leave, after a power loss, neither.
    syncDirectory(dir.snapshotDir);
    // Leftovers of a clean-up a crash cut short: recovery never reads a snapshot older than the
    // newest (it refuses to start if the newest is unreadable), so each would stay until the next
    // compaction's clean-up, and repeated crashes would pile them up.
    for (const old of older) unlinkSync(old.path);
  }
  stateMachine ??= emptyStateFor(config, replayThrough);
  const entriesToReplay = Math.max(0, replayThrough - lastIndex);
  if (snapshotPath !== null) report?.snapshotLoaded(lastIndex, entriesToReplay);

  const segmentReader = new SegmentReader();
  const progress: ReplayProgress = { snapshotIndex: lastIndex, lastIndex, lastTerm, entries: 0 };
  const afterWindow = report === null ? undefined : (replayed: ReplayProgress) => report.replayed(replayed.entries, entriesToReplay);
  const sealed: (SegmentFile & { lastIndex: number })[] = [];
  let active: SegmentFile | null = null;
  let activeLastWriteAfterDurableAt: number | null = null;

  for (let s = 0; s < segments.length; s++) {
    const segment = segments[s]!;
    const next = segments[s + 1];
    const isNewest = next === undefined;
    // A segment wholly inside the snapshot is a leftover of an interrupted clean-up.
    if (next !== undefined && next.firstIndex - 1 <= progress.snapshotIndex) {
      unlinkSync(segment.path);
      continue;
    }
    if (segment.firstIndex > progress.lastIndex + 1) {
      // Compaction deletes segments only once a snapshot holds them: with none, one is missing.
      const hint = snapshotPath === null && progress.lastIndex === 0 ? ` (there is no snapshot, and one must hold entries 1..${segment.firstIndex - 1}: was it deleted?)` : "";
      throw new RecoveryError(`log gap: ${segment.path} starts at index ${segment.firstIndex} but the log so far ends at ${progress.lastIndex}${hint}`);
    }
    // The newest segment is preallocated with zeros, most of them unwritten in a young log: it is
    // read only as far as its records' headers reach, and the rest is checked for zeros.
    const stop = replaySegment(segmentReader, segment.path, stateMachine, progress, {
      ...(isNewest ? { recordsEnd: newestHeaders!.end } : {}),
      ...(afterWindow === undefined ? {} : { afterWindow }),
    });
    const at = stop.end;
    if (!stop.clean) {
      const bytes = stop.file;
      const verdict: DamageVerdict = !isNewest
        ? { kind: "acknowledged", reason: "It is not the newest segment" }
        : stoppedCleanlyAt !== null
          ? progress.lastIndex === stoppedCleanlyAt
            ? { kind: "after-clean-stop" }
            : { kind: "acknowledged", reason: `lockd stopped cleanly at index ${stoppedCleanlyAt}, so no write was left unfinished` }
          : stop.intact
            ? { kind: "acknowledged", reason: "An intact record is never a torn write" }
            : judgeDamage(bytes, at, segment.firstIndex);
      if (verdict.kind === "acknowledged") {
        throw new RecoveryError(
          `${segment.path} is corrupt at offset ${at}: ${stop.damage}. ${verdict.reason}; ` +
            "refusing to start rather than skip acknowledged state. Restore the data directory from a backup or replica.",
        );
      }
      truncate(segment.path, at);
      let what: string;
      if (verdict.kind === "torn") {
        const written = lastNonZero(bytes) + 1 - at;
        const n = verdict.recordsAfter;
        const after = n > 0 ? `; ${n} intact record${n === 1 ? "" : "s"} of unfinished writes after it` : "";
        const zeros = bytes.length - at - written;
        const rest = zeros > 0 ? `, then ${zeros} bytes of zeros` : "";
        what = `a torn final write (${written} bytes of data${rest}; ${stop.damage}${after}); it was never acknowledged`;
      } else {
        // Every entry the clean stop recorded is there: the bytes after it were written after the
        // stop, by something other than lockd, and were never part of the log.
        what =
          `after the last entry (index ${stoppedCleanlyAt}) of the clean stop before this start (${stop.damage}): ` +
          "something other than lockd wrote them after it stopped";
      }
      logger.warn(`${segment.path}: dropped ${bytes.length - at} bytes at offset ${at}, ${what}`);
    }
    const recovered: SegmentFile = { path: segment.path, firstIndex: segment.firstIndex, bytes: at };
    if (isNewest) {
      active = recovered;
      // The walk went as far as the headers did: a mark in bytes dropped above is not this log's.
      const mark = newestHeaders!.lastWriteAfterDurableAt;
      activeLastWriteAfterDurableAt = mark === null || mark < at ? mark : lastWriteAfterDurable(recovered);
    } else {
      sealed.push({ ...recovered, lastIndex: progress.lastIndex });
    }
  }

  if (stoppedCleanlyAt !== null && progress.lastIndex !== stoppedCleanlyAt) {
    throw new RecoveryError(
      `the log ends at index ${progress.lastIndex}, but lockd stopped cleanly at index ${stoppedCleanlyAt} (${cleanStopPath(dir)}): ` +
        "acknowledged entries are missing (the newest segment cut short or deleted?); refusing to start rather than " +
        "grant what they granted again. Restore the data directory from a backup or replica.",
    );
  }
  return {
    stateMachine,
    lastIndex: progress.lastIndex,
    lastTerm: progress.lastTerm,
    active,
    activeLastWriteAfterDurableAt,
    sealed,
    snapshotPath,
    entriesReplayed: progress.entries,
    logBytesRead: segmentReader.bytesRead,
  };
}

/**
 * The last index the records of a segment (starting at `firstIndex`) claim, and the offset where
 * they end, walking their length and count fields only, without checksums: hints, never trusted as
 * state. The walk stops at anything that cannot be a record header (readRecord's own test,
 * countFitsLength), and every entry it counts takes ENTRY_BYTES of the file, so damage can never make
 * it claim more entries than the file holds.
 */
function scanHeaders(path: string, firstIndex: number, before = Number.POSITIVE_INFINITY): HeaderScan {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    // Headers are read through one window of the file, refilled from the next header when it runs
    // out: the segment is not held in memory a second time.
    const window = Buffer.allocUnsafe(HEADER_WINDOW_BYTES);
    let windowStart = 0;
    let windowEnd = 0;
    let last = firstIndex - 1;
    let at = 0;
    let lastWriteAfterDurableAt: number | null = null;
    while (at + RECORD_HEADER_BYTES <= size && at < before) {
      if (at + RECORD_HEADER_BYTES > windowEnd) {
        windowStart = at;
        windowEnd = at + readSync(fd, window, 0, window.length, at);
        if (at + RECORD_HEADER_BYTES > windowEnd) break;
      }
      const length = window.readUInt32BE(at - windowStart);
      const countField = window.readUInt32BE(at - windowStart + RECORD_COUNT_AT);
      const count = entryCount(countField);
      if (length === 0 || !countFitsLength(count, length) || at + 4 + length > size) break;
      if (startsWriteAfterDurable(countField)) lastWriteAfterDurableAt = at;
      last += count;
      at += 4 + length;
    }
    return { lastIndex: last, end: at, lastWriteAfterDurableAt };
  } finally {
    closeSync(fd);
  }
}

const HEADER_WINDOW_BYTES = 1 << 20;

interface HeaderScan {
  readonly lastIndex: number;
  readonly end: number;
  /** Where the last record that starts a write issued when every earlier record was durable begins. */
  readonly lastWriteAfterDurableAt: number | null;
}

/**
 * Where, in `segment` (a recovered one: its records end at `segment.bytes`), the last write begins
 * that was issued when everything before it was durable, or null if none of its writes was. The
 * bytes before it had been synced successfully; those from it on may not have been.
 */
export function lastWriteAfterDurable(segment: SegmentFile): number | null {
  return scanHeaders(segment.path, segment.firstIndex, segment.bytes).lastWriteAfterDurableAt;
}

/**
 * What damage at the end of the newest segment is: writes that never finished (dropped), bytes
 * written past a clean stop's last entry (dropped), or damage to acknowledged records (refused).
 */
type DamageVerdict =
  | { readonly kind: "torn"; readonly recordsAfter: number }
  | { readonly kind: "after-clean-stop" }
  | { readonly kind: "acknowledged"; readonly reason: string };

/**
 * Whether the damage at `from`, in the newest segment, can be writes that never finished: their
 * fdatasync had not returned, so none of them was acknowledged. A power loss can keep any part of
 * such writes: a prefix, or, where the disk persists sectors out of order, later sectors without
 * earlier ones, so intact records may follow the damage. Any of these after it proves the damage hit
 * acknowledged records instead:
 *   - a record written by a version that did not mark its writes (nothing tells its writes apart);
 *   - the first record of a write issued when every earlier record was durable (the damaged bytes were);
 *   - MAX_APPENDS_IN_FLIGHT writes' first records: the damaged write and that many later ones would
 *     all have been in flight at once, more than the log ever has.
 * The records after the damage are found by trying every offset, and most of a record's bytes are
 * what clients sent (ids they chose): a client can build a record with a valid checksum inside its
 * ids, and one a torn write left would otherwise refuse the start. So only a record that fits where
 * it is found counts (continuesLog): the bytes before it, from the last record that counts, must be
 * whole records holding exactly the log indexes it skips. A forgery has to know its own log index.
 */
function judgeDamage(bytes: Buffer, from: number, segmentFirstIndex: number): DamageVerdict {
  let recordsAfter = 0;
  let writesAfter = 0;
  // The records before the damage were replayed already: walking them again finds where the log stands.
  const last: LogPosition = { at: 0, nextIndex: segmentFirstIndex, term: 0 };
  for (let scan = readRecord(bytes, 0); scan.kind === "record" && last.at < from; scan = readRecord(bytes, scan.end)) {
    moveTo(last, scan.end, scan.header);
  }
  let at = from + 1;
  while (at + 4 <= bytes.length) {
    if (bytes[at] === 0 && bytes[at + 1] === 0 && bytes[at + 2] === 0 && bytes[at + 3] === 0) {
      // Preallocated zeros: skip to the next data, to the first byte a record there could start at
      // (a length field's high bytes are zeros).
      const dataAt = firstNonZero(bytes, at);
      if (dataAt < 0) break;
      at = Math.max(at + 1, dataAt - 3);
      continue;
    }
    const scan = readRecord(bytes, at);
    if (scan.kind !== "record" || !continuesLog(last, at, scan.header)) {
      at++;
      continue;
    }
    switch (scan.header.place) {
      case "unmarked":
        return { kind: "acknowledged", reason: `The intact record at offset ${at} after it does not mark its writes` };
      case "first-after-durable":
        return { kind: "acknowledged", reason: `The write at offset ${at} after it was issued when every earlier record was durable` };
      case "first":
        writesAfter++;
        if (writesAfter >= MAX_APPENDS_IN_FLIGHT) {
          return { kind: "acknowledged", reason: `${writesAfter} intact writes follow it: with it, more than are ever in flight at once` };
        }
        break;
      case "later":
        break;
    }
    recordsAfter++;
    moveTo(last, scan.end, scan.header);
    at = scan.end;
  }
  return { kind: "torn", recordsAfter };
}

/** The end of the last record that counts in a segment: its offset, the index after it, its term. */
interface LogPosition {
  at: number;
  nextIndex: number;
  term: number;
}

function moveTo(position: LogPosition, end: number, header: RecordHeader): void {
  position.at = end;
  position.nextIndex = header.firstIndex + header.count;
  position.term = header.term;
}

/**
 * Whether a record found at `at` can be one the log wrote there, after `last`: records lie end to
 * end, so the bytes between are whole records (a header and at least one entry each) whose entries
 * are exactly the indexes it skips, and terms never go back.
 */
function continuesLog(last: LogPosition, at: number, header: RecordHeader): boolean {
  const skippedEntries = header.firstIndex - last.nextIndex;
  if (skippedEntries < 0 || header.term < last.term) return false;
  const headerBytes = at - last.at - skippedEntries * ENTRY_BYTES;
  const skippedRecords = headerBytes / RECORD_HEADER_BYTES;
  return Number.isInteger(skippedRecords) && skippedRecords >= 0 && skippedRecords <= skippedEntries && (skippedRecords > 0) === (skippedEntries > 0);
}

function lastNonZero(bytes: Buffer): number {
  let at = bytes.length - 1;
  while (at >= 0 && bytes[at] === 0) at--;
  return at;
}

function truncate(path: string, length: number): void {
  const fd = openSync(path, "r+");
  try {
    ftruncateSync(fd, length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
