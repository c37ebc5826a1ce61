/**
 * A compaction job that never finishes on its own: it ends only when its lockd stops (the shutdown
 * signal), having written nothing, as a real one killed with its lockd every time would.
 */
export function endsOnlyWhenStopped(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(new Error("stopped with its lockd"))));
}
