/**
 * DIR/clock-anchor: the machine's monotonic clock and the sample lockd's clock handed out, read
 * together and rewritten every second while lockd runs. A restart on the same boot of the machine
 * uses it to bound how far its logical time may start ahead (leadSinceAnchorMs), so that a forward
 * step of the wall clock made while lockd was down is absorbed like one made while it ran, instead
 * of ending every recovered lease early. Only a restart on the same boot can use it, so the page
 * cache is enough: it is never synced. It is also written at once when the clock starts running
 * slow (a backward step), which the restart must know of: the clock may have run slow until then.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ClockAnchor } from "../server/clock.js";
import type { Logger } from "../server/logger.js";
import type { DataDir } from "./data-dir.js";
import { readFileIfThere, replaceFile } from "./small-file.js";

const FILE_NAME = "clock-anchor";
export const CLOCK_ANCHOR_EVERY_MS = 1_000;
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
      // An anchor without `slow` was written by a version that did not say: its clock ran slow
      // only after a backward step, and counting the time since at full speed is what it did.
      return { bootId: parsed.bootId, monotonicMs: parsed.monotonicMs!, sampleMs: parsed.sampleMs!, slow: parsed.slow === true };
    }
  } catch {
    // not an anchor: as if there were none, as after a reboot
  }
  return null;
}

function writeClockAnchor(dir: DataDir, anchor: ClockAnchor): void {
  replaceFile(join(dir.root, FILE_NAME), `${JSON.stringify(anchor)}\n`, { durable: false });
}

/** What the anchor notes of the clock: its sample, and whether it runs slow. */
export interface ClockReading {
  readonly sampleMs: number;
  readonly slow: boolean;
}

export interface KeptClockAnchor {
  /** The clock started running slow, handing out `sampleMs`: written now, not at the next second. */
  noteSlowing(sampleMs: number): void;
  stop(): void;
}

/**
 * Writes an anchor of the clock's reading now and every CLOCK_ANCHOR_EVERY_MS until stopped. A
 * write that fails is logged once and retried: without a fresh anchor a restart falls back to an
 * older one, or to none.
 */
export function keepClockAnchor(dir: DataDir, read: () => ClockReading, logger: Logger): KeptClockAnchor {
  const bootId = currentBootId();
  if (bootId === null) return { noteSlowing() {}, stop() {} };
  let failing = false;
  const write = (reading: ClockReading) => {
    try {
      // The monotonic clock after the sample: a pause between them makes the anchor's sample look
      // older than it is, which only asks a restart to absorb more.
      writeClockAnchor(dir, { bootId, monotonicMs: machineMonotonicMs(), ...reading });
      failing = false;
    } catch (error) {
      if (!failing) logger.warn(`cannot write ${join(dir.root, FILE_NAME)} (${(error as Error).message}); retrying every second`);
      failing = true;
    }
  };
  write(read());
  const timer = setInterval(() => write(read()), CLOCK_ANCHOR_EVERY_MS);
  timer.unref();
  return {
    noteSlowing: (sampleMs) => write({ sampleMs, slow: true }),
    stop: () => clearInterval(timer),
  };
}
