import { describe, expect, it } from "vitest";
import { StateMachine } from "../../../src/core/state-machine.js";
import { acquire } from "../../support/frames.js";

describe("a retried request id gets the byte-identical original answer", () => {
  it("holds for every request id, whatever its parameter fingerprint hashes to", () => {
    const sm = new StateMachine({ dedupeWindowMs: 60_000, expiredRetentionMs: 60_000, hashSeed: 7 });
    for (let n = 1n; n <= 2000n; n++) {
      const body = acquire({ lock: n, owner: 1n, request: n }, 1000n).subarray(4);
      const first = Buffer.alloc(17);
      const retry = Buffer.alloc(17);
      sm.execute(body, 0, 1_000, first, 0, null);
      sm.execute(body, 0, 1_001, retry, 0, null);
      expect(retry.toString("hex")).toBe(first.toString("hex"));
      expect(first[0]).toBe(0);
    }
  });
});
