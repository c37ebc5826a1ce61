/**
 * Reading a spawned lockd's Prometheus metrics (`--metrics-listen 127.0.0.1:0`): the address it
 * logged, and the samples of a scrape by name.
 */
import type { LockdProcess } from "./lockd-process.js";

/** The metrics URL lockd logged at start. */
export function metricsUrl(lockd: LockdProcess): string {
  const logged = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(lockd.stderr());
  if (logged === null) throw new Error("lockd logged no metrics address");
  return logged[1]!;
}

/** The samples of a text exposition, by name (labels included), comments left out. */
export function parseSamples(text: string): Map<string, number> {
  return new Map(
    text
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => [line.slice(0, line.lastIndexOf(" ")), Number(line.slice(line.lastIndexOf(" ") + 1))]),
  );
}

/** One scrape of lockd's metrics, which must answer 200. */
export async function scrapeMetrics(lockd: LockdProcess): Promise<Map<string, number>> {
  const response = await fetch(metricsUrl(lockd));
  if (response.status !== 200) throw new Error(`metrics answered ${response.status}`);
  return parseSamples(await response.text());
}
