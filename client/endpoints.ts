/** Server addresses: parsing "host:port" text and the structured form that can name a node id. */
import { shown } from "./arguments.js";
import { InvalidArgumentError } from "./errors.js";
import { DEFAULT_PORT, hostPortHint, joinHostPort, splitHostPort } from "../src/protocol/host-port.js";

export { DEFAULT_PORT };
export const DEFAULT_HOST = "127.0.0.1";

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  /**
   * The server's node id, when known. A server that is not the leader answers with the leader's node
   * id; endpoints that carry ids let the client go straight there instead of trying each in turn.
   */
  readonly nodeId?: bigint;
}

/** "host:port", "[v6]:port", or "host" (port 5625), or an Endpoint. */
export type EndpointInput = string | Endpoint;

const MAX_NODE_ID = (1n << 64n) - 1n; // it comes back in a reply's u64 token field

/** Checks what JavaScript callers can pass too (null, a missing host, a numeric node id), so a bad endpoint is an InvalidArgumentError. */
function checkedEndpoint(input: Partial<Record<keyof Endpoint, unknown>> | null): Endpoint {
  if (typeof input !== "object" || input === null) throw new InvalidArgumentError(`an endpoint is a "host:port" string or { host, port, nodeId? }, got ${shown(input)}`);
  const { host, port, nodeId } = input;
  if (typeof host !== "string" || host.length === 0) throw new InvalidArgumentError(`endpoint host must be a non-empty string, got ${shown(host)}`);
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`bad port in endpoint: ${shown(port)}`);
  if (nodeId === undefined) return { host, port };
  if (typeof nodeId !== "bigint" || nodeId < 1n || nodeId > MAX_NODE_ID) throw new InvalidArgumentError(`endpoint nodeId must be a bigint from 1 to 2^64-1, got ${shown(nodeId)}`);
  return { host, port, nodeId };
}

export function toEndpoint(input: EndpointInput): Endpoint {
  if (typeof input !== "string") return checkedEndpoint(input);
  const text = input.trim();
  const split = splitHostPort(text);
  if (split === null) throw new InvalidArgumentError(`expected HOST:PORT, got ${JSON.stringify(input)}${hostPortHint(text)}`);
  const port = split.port === undefined ? DEFAULT_PORT : Number(split.port);
  if (port < 1 || port > 65535) throw new InvalidArgumentError(`port out of range in ${JSON.stringify(input)}`);
  return { host: split.host, port };
}

/** A comma-separated list, as in --endpoints and BATON_ENDPOINTS. */
export function parseEndpointList(list: string): Endpoint[] {
  const parts = list.split(",").filter((part) => part.trim().length > 0);
  if (parts.length === 0) throw new InvalidArgumentError("no endpoints given");
  return parts.map(toEndpoint);
}

export function endpointLabel(endpoint: Endpoint): string {
  return joinHostPort(endpoint.host, endpoint.port);
}
