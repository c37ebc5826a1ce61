/** A process's open descriptors as Linux shows them in /proc. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** What descriptor `fd` of process `pid` refers to (`socket:[inode]` for a socket), or null if it has none there. */
export function descriptorTarget(pid: number | "self", fd: number | string): string | null {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return null;
  }
}

/** How many of process `pid`'s descriptors refer to `target` (as descriptorTarget names it). */
export function descriptorsFor(pid: number | "self", target: string | null): number {
  return readdirSync(`/proc/${pid}/fd`).filter((fd) => descriptorTarget(pid, fd) === target).length;
}

/** The IPv4 TCP sockets listening on this machine (/proc/net/tcp), each with its port and its descriptors' target. */
export function listeningSockets(): { readonly port: number; readonly target: string }[] {
  const listening = /^\s*\d+: [0-9A-F]+:([0-9A-F]{4}) 00000000:0000 0A (?:\S+\s+){5}(\d+)/gm;
  return [...readFileSync("/proc/net/tcp", "utf8").matchAll(listening)].map((match) => ({ port: parseInt(match[1]!, 16), target: `socket:[${match[2]}]` }));
}
