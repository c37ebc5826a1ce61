/** Where the leader's time stamps come from. The state machine never reads a clock itself. */
export interface Clock {
  /** Wall-clock milliseconds since the unix epoch. May go backwards; the state machine never does. */
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };
