/** Typed access to test/vectors/protocol-v1.json, read from disk as other-language clients would. */
import { readFileSync } from "node:fs";
import type { VectorFile } from "../vectors/generate.js";

export type { FrameCase, ResponseCase, SequenceCase, SequenceStep, VectorFile } from "../vectors/generate.js";

export function loadVectors(): VectorFile {
  return JSON.parse(readFileSync(new URL("../vectors/protocol-v1.json", import.meta.url), "utf8")) as VectorFile;
}
