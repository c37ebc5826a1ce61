/**
 * The worker thread behind WarmMemory: for each size it is sent, allocates a shared buffer of that
 * size and writes one byte of every 4 KiB page, so that both the allocation (the C library writes its
 * own header into fresh memory) and the operating system's page faults happen on this thread, then
 * sends the buffer over, on the port WarmMemory reads synchronously. The byte written is the zero
 * already there.
 */
import { type MessagePort, parentPort, workerData } from "node:worker_threads";

const PAGE_BYTES = 4096;
const written = (workerData as { written: MessagePort }).written;

parentPort!.on("message", (size: number) => {
  const buffer = new SharedArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  for (let at = 0; at < bytes.length; at += PAGE_BYTES) bytes[at] = 0;
  written.postMessage(buffer);
});
