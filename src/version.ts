/**
 * baton's version, as its package.json gives it, for `--version`. This file runs from src/ under the
 * tests and from dist/src/ when built, at different depths below the package root, so the
 * package.json is looked for upward from here.
 */
import { readFileSync } from "node:fs";

export function packageVersion(): string {
  for (let dir = new URL(".", import.meta.url); ; dir = new URL("..", dir)) {
    try {
      const manifest = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: unknown; version?: unknown };
      if (manifest.name === "baton" && typeof manifest.version === "string") return manifest.version;
    } catch {
      // no readable package.json here: look one level up
    }
    if (dir.pathname === "/") return "unknown";
  }
}
