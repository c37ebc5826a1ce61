/**
 * The compaction launcher and the compaction processes are in lockd's process group, so a signal
 * meant for lockd that is sent to the whole group reaches them too: a terminal's Ctrl-C (SIGINT to
 * the foreground group), a closed terminal (SIGHUP), `timeout`, `kill -- -PGID`, a supervisor stopping
 * the group. Killed by it, the launcher made lockd warn that it had lost its helper in the middle of
 * a clean stop. They leave these signals to lockd and end when lockd lets them go or dies (their IPC
 * channel closes); SIGKILL still ends them.
 */
/** The signals lockd stops cleanly on (cli/lockd.ts), and so the ones its helpers must leave to it. */
export const STOP_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

export function leaveStopSignalsToLockd(): void {
  for (const signal of STOP_SIGNALS) process.on(signal, ignore);
}

function ignore(): void {}
