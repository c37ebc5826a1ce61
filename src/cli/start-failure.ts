import { joinHostPort } from "../protocol/host-port.js";
import type { ServerConfig } from "../server/config.js";

/**
 * Why lockd could not start, in one line. Only the lock port's own listen errors are about the
 * address: a data directory lockd may not write fails with EACCES too, and that message names the
 * path instead.
 */
export function describeStartFailure(
  error: NodeJS.ErrnoException,
  config: Pick<ServerConfig, "host" | "port" | "dataDir" | "metricsListen">,
): string {
  const address = joinHostPort(config.host, config.port);
  if (error.syscall === "listen" && error.code === "EADDRINUSE") {
    // The metrics port opens first: given the same port, lockd may have taken it itself, whether the
    // hosts are written alike or one is a wildcard or a name for the other.
    const metrics = config.metricsListen;
    const samePort = metrics !== null && metrics.port === config.port && config.port !== 0;
    return `cannot listen on ${address} (--listen): address already in use${samePort ? ` (--metrics-listen ${joinHostPort(metrics.host, metrics.port)} has the same port)` : ""}`;
  }
  if (error.syscall === "listen" && error.code === "EACCES") return `cannot listen on ${address} (--listen): permission denied`;
  // Any other error of the lock port's address: a host that does not resolve (getaddrinfo) or is
  // not this machine's (EADDRNOTAVAIL).
  if (error.syscall === "listen" || error.syscall === "getaddrinfo") return `cannot listen on ${address} (--listen): ${error.message}`;
  if (error.path !== undefined) return `data directory ${config.dataDir}: ${error.message}`;
  return error.message;
}
