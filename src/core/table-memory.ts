/**
 * Where the growing tables get their memory. The request-id table grows by about 60 bytes per
 * change until its window is full, and every fresh 4 KiB page of it costs a page fault on first
 * write, paid by whoever writes it first: here, the thread executing commands. A server can hand
 * the tables memory whose pages were already written elsewhere (another thread), so that cost leaves
 * the command path; the state machine itself only asks for zeroed buffers, and stays pure.
 */
export interface TableMemory {
  /** A zero-filled buffer of `bytes`, to keep for good (the tables recycle, never free, their chunks). */
  take(bytes: number): ArrayBuffer | SharedArrayBuffer;
  /** A hint that a buffer of `bytes` will be taken soon (a table about to double). */
  expect(bytes: number): void;
}

/** Plain buffers from the allocator, faulted in by the first write: for replay, tests and simulations. */
export const FRESH_MEMORY: TableMemory = {
  take: (bytes) => new ArrayBuffer(bytes),
  expect: () => {},
};
