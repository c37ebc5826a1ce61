/**
 * DIR/clock-anchor: the machine's monotonic clock and the sample lockd's clock handed out, read
 * together and rewritten every second while lockd runs. A restart on the same boot of the machine
 * uses it to bound how far its logical time may start ahead (leadSinceAnchorMs), so that a forward
 * step of the wall clock made while lockd was down is absorbed like one made while it ran, instead
 * of ending every recovered lease early. Only a restart on the same boot can use it, so the page
 * cache is enough: it is never synced.
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
      return { bootId: parsed.bootId, monotonicMs: parsed.monotonicMs!, sampleMs: parsed.sampleMs! };
    }
  } catch {
    // not an anchor: as if there were none, as after a reboot
  }
  return null;
}

function writeClockAnchor(dir: DataDir, anchor: ClockAnchor): void {
  replaceFile(join(dir.root, FILE_NAME), `${JSON.stringify(anchor)}\n`, { durable: false });
}

/**
 * Writes an anchor of `sampleMs` (the clock's reading) now and every CLOCK_ANCHOR_EVERY_MS until
 * stopped. A write that fails is logged once and retried: without a fresh anchor a restart falls back
 * to an older one, or to none.
 */
export function keepClockAnchor(dir: DataDir, sampleMs: () => number, logger: Logger): { stop(): void } {
  const bootId = currentBootId();
  if (bootId === null) return { stop() {} };
  let failing = false;
  const write = () => {
    try {
      // The monotonic clock after the sample: a pause between them makes the anchor's sample look
      // older than it is, which only asks a restart to absorb more.
      const sample = sampleMs();
      writeClockAnchor(dir, { bootId, monotonicMs: machineMonotonicMs(), sampleMs: sample });
      failing = false;
    } catch (error) {
      if (!failing) logger.warn(`cannot write ${join(dir.root, FILE_NAME)} (${(error as Error).message}); retrying every second`);
      failing = true;
    }
  };
  write();
  const timer = setInterval(write, CLOCK_ANCHOR_EVERY_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
