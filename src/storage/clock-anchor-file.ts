/**
 * DIR/clock-anchor: the last sample lockd's clock handed out, beside the machine's monotonic clock
 * read after it, rewritten before the sample is handed out whenever it grows, and every half
 * millisecond of readings while it stands (SteadyWallClock's onSample). A restart on the same boot
 * of the machine uses it to bound how far its logical time may start ahead (leadSinceAnchorMs), so
 * that a forward step of the wall clock made while lockd was down is absorbed like one made while it
 * ran, instead of ending every recovered lease early. Only a restart on the same boot can use it, so the page cache is enough: it is never
 * synced, and it is written in place, one fixed-size write at the start of the file.
 */
import { closeSync, constants, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { ClockAnchor } from "../clock/clock.js";
import type { DataDir } from "./data-dir.js";
import { readFileIfThere } from "./small-file.js";

const FILE_NAME = "clock-anchor";
const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

/** Which boot of the machine this is, or null where the machine does not say (not Linux). */
export function currentBootId(): string | null {
  try {
    return readFileSync(BOOT_ID_PATH, "utf8").trim();
  } catch {
    return null;
  }
}

/** The machine's monotonic clock (CLOCK_MONOTONIC, shared by every process of one boot), in ms. */
export function machineMonotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** The last anchor written, or null if there is none or it cannot be made sense of. */
export function readClockAnchor(dir: DataDir): ClockAnchor | null {
  const text = readFileIfThere(join(dir.root, FILE_NAME));
  if (text === null) return null;
  try {
    const parsed = JSON.parse(text) as Partial<ClockAnchor>;
    if (typeof parsed.bootId === "string" && Number.isFinite(parsed.monotonicMs) && Number.isFinite(parsed.sampleMs)) {
      return { bootId: parsed.bootId, monotonicMs: parsed.monotonicMs!, sampleMs: parsed.sampleMs! };
    }
  } catch {
    // not an anchor: as if there were none, as after a reboot
  }
  return null;
}

/**
 * Bytes of every write: the anchor's JSON, padded with spaces (which JSON allows), so each write
 * covers all of the one before. A boot id is 36 characters, and the numbers at most 24 each.
 */
const ANCHOR_BYTES = 160;

export interface ClockAnchorWriter {
  /** The clock is about to hand out `sampleMs`. Throws if the anchor cannot be written. */
  note(sampleMs: number): void;
  close(): void;
}

/**
 * Opens the anchor for writing, leaving the last one in place until the first note: a lockd that
 * dies before handing out any time leaves the anchor of the one before, which still bounds the next
 * restart. Null where the machine does not say which boot this is (not Linux).
 */
export function openClockAnchor(dir: DataDir): ClockAnchorWriter | null {
  const bootId = currentBootId();
  if (bootId === null) return null;
  const path = join(dir.root, FILE_NAME);
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT, 0o644);
  const buffer = Buffer.alloc(ANCHOR_BYTES, " ");
  let sized = false;
  let closed = false;
  return {
    note(sampleMs) {
      if (closed) return; // stopping: no time is handed out after the close
      const anchor: ClockAnchor = { bootId, monotonicMs: machineMonotonicMs(), sampleMs };
      buffer.fill(" ");
      const length = buffer.write(`${JSON.stringify(anchor)}\n`);
      if (length > ANCHOR_BYTES - 1) throw new Error(`clock anchor longer than ${ANCHOR_BYTES} bytes`);
      const written = writeSync(fd, buffer, 0, ANCHOR_BYTES, 0);
      if (written !== ANCHOR_BYTES) throw new Error(`wrote ${written} of ${ANCHOR_BYTES} bytes`);
      if (!sized) {
        ftruncateSync(fd, ANCHOR_BYTES); // whatever a longer file held after the anchor would not parse
        sized = true;
      }
    },
    close() {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}
