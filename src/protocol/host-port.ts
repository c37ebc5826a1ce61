/**
 * How lockd and its clients write an address: "HOST:PORT", "[IPV6]:PORT", or "HOST" alone where a
 * default port applies. An IPv6 address without brackets is not split at a guessed colon:
 * "::1:8709" is itself an IPv6 address.
 */

/** The port lockd listens on, and clients dial, when none is given. */
export const DEFAULT_PORT = 5625;

const HOST_PORT = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/;

/** The host (brackets taken off) and the port's digits (undefined when none was written); null if `text` is no address. */
export function splitHostPort(text: string): { readonly host: string; readonly port: string | undefined } | null {
  const match = HOST_PORT.exec(text);
  return match === null ? null : { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port: match[2] };
}

/** The address as it is written and parsed: an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What to add to "expected HOST:PORT" for `text`: the brackets, when it looks like an IPv6 address without them. */
export function hostPortHint(text: string): string {
  return /^[^[]*:.*:/.test(text) ? ` (an IPv6 address goes in brackets: [::1]:${DEFAULT_PORT})` : "";
}
