import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderVectors, VECTOR_FILE_URL } from "../../vectors/generate.js";

describe("the committed test-vector file is what test/vectors/generate.ts builds", () => {
  it("protocol-v1.json is up to date (BATON_WRITE_VECTORS=1 rewrites it)", () => {
    const rendered = renderVectors();
    if (process.env.BATON_WRITE_VECTORS === "1") writeFileSync(VECTOR_FILE_URL, rendered);
    expect(readFileSync(VECTOR_FILE_URL, "utf8")).toBe(rendered);
  });
});
