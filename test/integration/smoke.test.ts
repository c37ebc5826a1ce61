import { describe, expect, it } from "vitest";
import { Status } from "../../src/protocol/index.js";
import { useLockd } from "../support/lockd-process.js";
import { RawClient } from "../support/raw-client.js";
import { acquire, release } from "../support/frames.js";
import { splitAnswers } from "../support/answers.js";

const lockd = useLockd();

describe("lockd over TCP", () => {
  it("grants a free lock, refuses it while held, and releases it with the same token", async () => {
    const client = await RawClient.open(lockd.port);
    client.write(Buffer.concat([acquire({ lock: 7n, owner: 1n }, 10_000n), acquire({ lock: 7n, owner: 2n }, 10_000n), release({ lock: 7n, owner: 1n })]));
    const [granted, refused, released] = splitAnswers(await client.read(3 * 17));
    expect(granted!.status).toBe(Status.Ok);
    expect(granted!.fencingToken).toBeGreaterThan(0n);
    expect(refused).toEqual({ status: Status.Held, fencingToken: 0n, expiresAt: granted!.expiresAt });
    expect(released!.status).toBe(Status.Ok);
    expect(released!.fencingToken).toBe(granted!.fencingToken);
    client.close();
  });
});
