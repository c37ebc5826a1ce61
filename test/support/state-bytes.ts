/** The whole state of a machine as bytes (its snapshot encoding), to compare two states exactly. */
import { encodeSnapshot } from "../../src/core/snapshot-codec.js";
import type { StateMachine } from "../../src/core/state-machine.js";

export function stateBytes(sm: StateMachine): string {
  return encodeSnapshot(sm, { lastIndex: 0, lastTerm: 0 }).toString("hex");
}
