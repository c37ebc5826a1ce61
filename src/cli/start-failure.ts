import { addressText, type ServerConfig } from "../server/config.js";

/**
 * Why lockd could not start, in one line. Only the lock port's own listen errors are about the
 * address: a data directory lockd may not write fails with EACCES too, and that message names the
 * path instead.
 */
export function describeStartFailure(
  error: NodeJS.ErrnoException,
  config: Pick<ServerConfig, "host" | "port" | "dataDir" | "metricsListen">,
): string {
  const address = addressText(config.host, config.port);
  if (error.syscall === "listen" && error.code === "EADDRINUSE") {
    // The metrics port opens first: the same address given to both is taken by lockd itself.
    const metrics = config.metricsListen;
    const byMetrics = metrics !== null && metrics.port === config.port && addressText(metrics.host, metrics.port) === address;
    return `cannot listen on ${address} (--listen): address already in use${byMetrics ? " (by this lockd's --metrics-listen)" : ""}`;
  }
  if (error.syscall === "listen" && error.code === "EACCES") return `cannot listen on ${address} (--listen): permission denied`;
  // Any other error of the lock port's address: a host that does not resolve (getaddrinfo) or is
  // not this machine's (EADDRNOTAVAIL).
  if (error.syscall === "listen" || error.syscall === "getaddrinfo") return `cannot listen on ${address} (--listen): ${error.message}`;
  if (error.path !== undefined) return `data directory ${config.dataDir}: ${error.message}`;
  return error.message;
}
