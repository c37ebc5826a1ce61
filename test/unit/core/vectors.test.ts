import { describe, expect, it } from "vitest";
import { loadVectors } from "../../support/vectors.js";
import { Driver } from "../../support/state-machine-driver.js";

const vectors = loadVectors();

describe("the state machine answers every vector sequence byte for byte", () => {
  for (const sequence of vectors.sequences) {
    it(sequence.name, () => {
      const driver = new Driver(
        {
          dedupeWindowMs: Number(vectors.config.dedupe_window_ms),
          expiredRetentionMs: Number(vectors.config.expired_retention_ms),
        },
        null,
        Number(vectors.config.max_ttl_ms),
      );
      expect(driver.sm.nextFencingToken).toBe(1);
      expect(driver.sm.logicalNowMs).toBe(0);
      for (const [n, step] of sequence.steps.entries()) {
        const { reply } = driver.send(Buffer.from(step.request.hex, "hex"), Number(step.at_ms));
        expect(reply.toString("hex"), `step ${n + 1} at ${step.at_ms}: ${step.note}`).toBe(step.response.hex);
      }
    });
  }
});
