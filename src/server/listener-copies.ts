/**
 * Further descriptors of lockd's listening socket. Node's event loop accepts one connection per
 * listening descriptor per turn, so each further one lets in one more connection per turn. Node has
 * no dup(): a descriptor comes as a new one only from another process, over an IPC channel (the
 * compaction launcher hands them over: compaction-launcher.ts, which defines the handle's type).
 */

/** What came of fetching the copies (LockServer.acceptThroughCopies). */
export type AcceptCopies =
  /** The server began to close meanwhile; whatever came was closed. */
  | { readonly kind: "closing" }
  /** The server's own handle could not be reached (a Node without net.Server's `_handle`). */
  | { readonly kind: "no-handle" }
  /** `descriptors` now accept (the server's own among them), of the `asked` (--accepts-per-turn). */
  | { readonly kind: "accepting"; readonly descriptors: number; readonly asked: number };
