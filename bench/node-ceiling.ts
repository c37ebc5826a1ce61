/**
 * node-ceiling: the fastest a Node.js server gets here, as a reference for lockd's numbers.
 *
 * bench/ceiling.c is what the machine and the client allow; this is what they allow a server on
 * Node's event loop, with the same socket layer as lockd and none of its work. It speaks baton's
 * framing and answers exactly as ceiling.c does (no state, no validation beyond the length limit),
 * reads every connection into one shared buffer and splits it with lockd's own FrameReader, and
 * answers everything read in one turn of the event loop with one socket write per connection, after
 * the turn, as lockd's group commit does.
 *
 * With `--sync-file PATH`, each turn first writes 64 bytes per frame to a preallocated file and
 * `fdatasync`s it on the event loop (lockd's default for a lone batch): the least a durable server on
 * Node does before it may answer.
 *
 *   node bench/out/build/bench/node-ceiling.js --port 0 [--sync-file /path/on/the/disk]
 *
 * Prints "node-ceiling listening on 127.0.0.1:PORT" once ready and runs until SIGTERM or SIGINT.
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { parseArgs } from "node:util";
import { Command, FrameEvent, FrameReader, MAX_FRAME_LENGTH, RESPONSE_BYTES, Status, writeResponse } from "../src/protocol/index.js";
import { readIntoSharedBuffer } from "../src/server/shared-read-buffer.js";

const LOG_BYTES_PER_FRAME = 64;
const SYNC_FILE_BYTES = 64 * 1024 * 1024;
const GRANTS = 4096;

/** One connection: its frames, the turn's replies, the unanswered grants. */
class Peer {
  readonly reader = new FrameReader();
  out: Buffer = Buffer.allocUnsafe(64 * RESPONSE_BYTES);
  outLength = 0;
  queued = false;
  lastToken = 0;
  readonly grants = new Float64Array(GRANTS);
  grantHead = 0;
  grantCount = 0;
  constructor(readonly socket: Socket) {}

  /** The same answers as ceiling.c: what lockload's acquire-then-release workload expects. */
  answer(cmd: number): void {
    let token: number;
    if (cmd === Command.Acquire) {
      token = ++this.lastToken;
      this.grants[(this.grantHead + this.grantCount) % GRANTS] = token;
      if (this.grantCount < GRANTS) this.grantCount++;
      else this.grantHead = (this.grantHead + 1) % GRANTS;
    } else if (this.grantCount > 0) {
      token = this.grants[this.grantHead]!;
      this.grantHead = (this.grantHead + 1) % GRANTS;
      this.grantCount--;
    } else {
      token = this.lastToken;
    }
    if (this.outLength + RESPONSE_BYTES > this.out.length) {
      const grown = Buffer.allocUnsafe(this.out.length * 2);
      this.out.copy(grown, 0, 0, this.outLength);
      this.out = grown;
    }
    writeResponse(this.out, this.outLength, Status.Ok, token, 0);
    this.outLength += RESPONSE_BYTES;
  }
}

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, host: { type: "string", default: "127.0.0.1" }, "sync-file": { type: "string" } },
});
const syncFd = values["sync-file"] === undefined ? -1 : openSync(values["sync-file"], "w+");
if (syncFd >= 0) {
  // Preallocated and synced once, as lockd's segments are, so each sync writes data and no metadata.
  ftruncateSync(syncFd, 0);
  const zeros = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < SYNC_FILE_BYTES; at += zeros.length) writeSync(syncFd, zeros, 0, zeros.length, at);
  fdatasyncSync(syncFd);
}
const logBytes = Buffer.alloc(MAX_FRAME_LENGTH * LOG_BYTES_PER_FRAME);
let logAt = 0;
let turnFrames = 0;
const answered: Peer[] = [];
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  if (syncFd >= 0 && turnFrames > 0) {
    let left = turnFrames * LOG_BYTES_PER_FRAME;
    while (left > 0) {
      const length = Math.min(left, logBytes.length);
      if (logAt + length > SYNC_FILE_BYTES) logAt = 0;
      writeSync(syncFd, logBytes, 0, length, logAt);
      logAt += length;
      left -= length;
    }
    fdatasyncSync(syncFd);
  }
  turnFrames = 0;
  for (const peer of answered) {
    peer.queued = false;
    if (!peer.socket.destroyed) peer.socket.write(peer.out.subarray(0, peer.outLength));
    // A write the kernel did not take whole keeps its bytes until they leave: answer the next turn
    // into a new buffer then, and reuse this one otherwise (as lockd does).
    if (peer.socket.writableLength > 0) peer.out = Buffer.allocUnsafe(peer.out.length);
    peer.outLength = 0;
  }
  answered.length = 0;
}

function onChunk(peer: Peer, chunk: Buffer): void {
  const reader = peer.reader;
  reader.push(chunk);
  // A frame cut by the read stays in the reader's own carry buffer, not in the shared one.
  for (let event = reader.next(); event !== FrameEvent.NeedMore; event = reader.next()) {
    // Like ceiling.c: a length of 0 or over the limit closes the connection.
    if (event === FrameEvent.Oversized || reader.frameLength === 0) {
      peer.socket.destroy();
      return;
    }
    peer.answer(reader.frame[reader.frameStart]!);
    turnFrames++;
  }
  if (peer.outLength > 0 && !peer.queued) {
    peer.queued = true;
    answered.push(peer);
  }
  if (!flushScheduled && answered.length > 0) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

const readBuffer = Buffer.allocUnsafe(64 * 1024);
const server = createServer({ pauseOnConnect: true, noDelay: true }, (accepted) => {
  let peer: Peer | null = null;
  const socket = readIntoSharedBuffer(accepted, readBuffer, (chunk) => onChunk(peer!, chunk));
  peer = new Peer(socket);
  socket.setNoDelay(true);
  socket.on("error", () => socket.destroy());
  socket.on("end", () => socket.end());
});
server.listen(Number(values.port), values.host, () => {
  const { port } = server.address() as AddressInfo;
  console.log(`node-ceiling listening on ${values.host}:${port}`);
});
const stop = () => {
  server.close();
  if (syncFd >= 0) closeSync(syncFd);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
