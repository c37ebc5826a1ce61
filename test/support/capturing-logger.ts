/** A logger that keeps every line it is given, for tests that check what lockd said. */
import type { Logger } from "../../src/logging/logger.js";

export function capturingLogger(): Logger & { readonly lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
}
