import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { packageVersion } from "../../src/version.js";

describe("packageVersion", () => {
  it("finds baton's package.json from the source tree too, not only from dist/", () => {
    const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(packageVersion()).toBe(version);
  });
});
