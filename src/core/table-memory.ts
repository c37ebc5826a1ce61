/**
 * Where the growing tables get their memory. The request-id table grows by about 60 bytes per
 * change until its window is full, and every fresh 4 KiB page of it costs a page fault on first
 * write, paid by whoever writes it first: here, the thread executing commands. A server can hand
 * the tables memory whose pages were already written elsewhere (another thread), so that cost leaves
 * the command path; the state machine itself only asks for zeroed buffers, and stays pure.
 */
export interface TableMemory {
  /**
   * A zero-filled buffer of `bytes`, of a size taken again and again: a table's fixed-size chunks,
   * kept for good (the tables recycle, never free, them). A server may keep some of each size ready.
   */
  take(bytes: number): ArrayBuffer | SharedArrayBuffer;
  /**
   * A zero-filled buffer of `bytes` taken once: a table grown to a new size, whose old buffer then
   * goes. Ready in advance only if announced with `expect`.
   */
  takeOnce(bytes: number): ArrayBuffer | SharedArrayBuffer;
  /** A hint that a buffer of `bytes` will be taken soon with `takeOnce` (a table about to double). */
  expect(bytes: number): void;
}

/** Plain buffers from the allocator, faulted in by the first write: for replay, tests and simulations. */
export const FRESH_MEMORY: TableMemory = {
  take: (bytes) => new ArrayBuffer(bytes),
  takeOnce: (bytes) => new ArrayBuffer(bytes),
  expect: () => {},
};
