/**
 * `--metrics-listen HOST:PORT`: the stats line's figures for a Prometheus scraper, over HTTP at
 * `/metrics` in the text exposition format, plus a histogram of commit times. Off unless asked: it
 * is a second listening socket, with the same absence of authentication as the lock port, so it
 * belongs on a private address. It answers GET and HEAD of /metrics and nothing else, one request per
 * connection, and holds few connections for little time, so a scraper gone wrong cannot tie lockd up.
 */
import { startOneShotHttpServer, textAnswer, type HttpAnswer, type HttpServer } from "./one-shot-http.js";
import type { ClosedConnections } from "./lock-server.js";
import { COMMIT_BUCKET_BOUNDS_MS, type ServerReading, type StatsLimits } from "./stats.js";

/** Everything one scrape reports: the stats line's reading, the limits, and more. */
export interface MetricsReading extends ServerReading, StatsLimits {
  readonly version: string;
  /** Connections lockd closed itself, by why (lock-server.ts). */
  readonly connectionsClosed: Readonly<ClosedConnections>;
  /** Descriptors of the listening socket that accept, each one connection per event-loop turn (--accepts-per-turn). */
  readonly acceptingDescriptors: number;
  /** Cumulative commit counts per bound of COMMIT_BUCKET_BOUNDS_MS, then the total. */
  readonly commitBuckets: readonly number[];
}

/** The metrics port's server, as lockd holds it. */
export type MetricsServer = HttpServer;

/** Connections the metrics port holds at once, and how long a request may take. */
const MAX_METRICS_CONNECTIONS = 16;
export const METRICS_REQUEST_TIMEOUT_MS = 5_000;

function family(name: string, type: "counter" | "gauge" | "histogram", help: string, samples: string[]): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${samples.join("\n")}\n`;
}

/** The text exposition of one reading. */
export function metricsText(reading: MetricsReading): string {
  const seconds = (ms: number) => String(ms / 1000);
  const bucketLines = COMMIT_BUCKET_BOUNDS_MS.map((bound, i) => `baton_commit_seconds_bucket{le="${seconds(bound)}"} ${reading.commitBuckets[i]!}`);
  bucketLines.push(`baton_commit_seconds_bucket{le="+Inf"} ${reading.batches}`);
  return [
    family("baton_build_info", "gauge", "The lockd version, as a label.", [`baton_build_info{version="${reading.version}"} 1`]),
    family("baton_requests_total", "counter", "Request frames answered, invalid and refused ones included.", [`baton_requests_total ${reading.requests}`]),
    family("baton_log_index", "gauge", "Index of the last command written to the log.", [`baton_log_index ${reading.logIndex}`]),
    family("baton_commit_seconds", "histogram", "Time from a batch leaving for the log until it was written (and synced under --fsync always).", [
      ...bucketLines,
      `baton_commit_seconds_sum ${seconds(reading.commitMsTotal)}`,
      `baton_commit_seconds_count ${reading.batches}`,
    ]),
    family("baton_connections", "gauge", "Open client connections.", [`baton_connections ${reading.connections}`]),
    family("baton_connections_limit", "gauge", "Client connections served at most.", [`baton_connections_limit ${reading.maxConnections}`]),
    family("baton_connections_closed_total", "counter", "Connections lockd closed itself, by reason: refused over --max-connections, or a timeout.", [
      `baton_connections_closed_total{reason="max_connections"} ${reading.connectionsClosed.overLimit}`,
      `baton_connections_closed_total{reason="frame_timeout"} ${reading.connectionsClosed.frameTimeout}`,
      `baton_connections_closed_total{reason="idle_timeout"} ${reading.connectionsClosed.idleTimeout}`,
      `baton_connections_closed_total{reason="reply_timeout"} ${reading.connectionsClosed.replyTimeout}`,
    ]),
    family(
      "baton_accepting_descriptors",
      "gauge",
      "Descriptors of the listening socket lockd accepts on, each at most one connection per event-loop turn: 1 until connections queue up, then up to --accepts-per-turn.",
      [`baton_accepting_descriptors ${reading.acceptingDescriptors}`],
    ),
    family("baton_requests_in_flight", "gauge", "Requests read and not yet answered, on all connections together.", [
      `baton_requests_in_flight ${reading.requestsInFlight}`,
    ]),
    family("baton_requests_in_flight_limit", "gauge", "Requests in flight at most (--max-inflight-total); then no connection is read.", [
      `baton_requests_in_flight_limit ${reading.maxInflightTotal}`,
    ]),
    family("baton_lock_records", "gauge", "Lock records: held, plus expired ones still remembered.", [`baton_lock_records ${reading.lockRecords}`]),
    family("baton_lock_records_limit", "gauge", "Lock records at most (--max-locks); then new locks answer 6.", [`baton_lock_records_limit ${reading.maxLocks}`]),
    family("baton_remembered_answers", "gauge", "Answers remembered for retries with the same request id.", [`baton_remembered_answers ${reading.rememberedAnswers}`]),
    family("baton_remembered_answers_limit", "gauge", "Answers remembered at most (--max-dedupe-entries); then every change with a new request id answers 6.", [
      `baton_remembered_answers_limit ${reading.maxDedupeEntries}`,
    ]),
    family("baton_next_fencing_token", "gauge", "The fencing token the next granted ACQUIRE gets.", [`baton_next_fencing_token ${reading.nextFencingToken}`]),
  ].join("");
}

/** The answer to one request head: the path and method decide it. */
function metricsAnswer(method: string, target: string, read: () => MetricsReading): HttpAnswer {
  const path = target.split("?")[0];
  if (path !== "/metrics") return textAnswer(404, "not found: metrics are at /metrics\n");
  if (method !== "GET" && method !== "HEAD") return textAnswer(405, "only GET and HEAD\n", { allow: "GET, HEAD" });
  return { status: 200, headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" }, body: metricsText(read()), headOnly: method === "HEAD" };
}

/**
 * Serves `read()` at /metrics: one request per connection (see one-shot-http.ts), which gets
 * `timeoutMs` to arrive whole; at most MAX_METRICS_CONNECTIONS at once.
 */
export function startMetricsServer(host: string, port: number, read: () => MetricsReading, timeoutMs = METRICS_REQUEST_TIMEOUT_MS): Promise<MetricsServer> {
  return startOneShotHttpServer(host, port, (method, target) => metricsAnswer(method, target, read), {
    maxConnections: MAX_METRICS_CONNECTIONS,
    timeoutMs,
    notHttpHint: "this is lockd's metrics address (--metrics-listen); lock clients connect to its --listen address",
  });
}
