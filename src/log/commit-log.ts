/**
 * The commit path's log, as the server sees it. The server applies commands on the leader, encodes
 * them into records and appends them; it answers the clients of a batch only after `done` reports the
 * batch durable (fsynced locally, or later committed by a quorum). Implementations: the local segmented
 * file log (storage/), and later a log replicated through etcd.
 */

/**
 * At most this many appends are ever written and not yet durable at once. Recovery relies on it: a
 * damaged record followed by this many writes' starts cannot be part of a write that never finished
 * (see recovery.ts).
 */
export const MAX_APPENDS_IN_FLIGHT = 4;

export type AppendResult = { readonly ok: true } | { readonly ok: false; readonly error: Error };

export interface CommitLog {
  /**
   * Appends whole encoded records. Calls `done` exactly once, after the bytes are durable or with the
   * failure: possibly before `append` returns (a synchronous sync, or no sync at all). Appends are
   * made durable in call order; the server keeps up to MAX_APPENDS_IN_FLIGHT of them in flight.
   * `records` is only lent: the server reuses its memory once `done` was called, so an
   * implementation that needs the bytes later copies them. `lastIndex` is the index of the last
   * entry in `records`.
   */
  append(records: Buffer, lastIndex: number, done: (result: AppendResult) => void): void;
  /** Releases files and locks. Appends in flight finish first. */
  close(): Promise<void>;
}
