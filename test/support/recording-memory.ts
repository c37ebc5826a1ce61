/**
 * A table memory that hands out fresh buffers, as the state machine's default does, and records the
 * size of every one taken once (a table's first buffer or a grown one), so tests can tell which
 * tables were allocated or grown, and how big.
 */
import { FRESH_MEMORY, type TableMemory } from "../../src/core/table-memory.js";

export function recordingMemory(): { memory: TableMemory; onceSizes: number[] } {
  const onceSizes: number[] = [];
  return { onceSizes, memory: { ...FRESH_MEMORY, takeOnce: (bytes) => (onceSizes.push(bytes), new ArrayBuffer(bytes)) } };
}

/**
 * The lock tables' record buffers among `sizes`: records take 40 bytes each, while the id indexes'
 * tables are powers of two, never a multiple of 5.
 */
export function lockRecordBuffers(sizes: readonly number[]): number[] {
  return sizes.filter((bytes) => bytes % 5 === 0);
}
