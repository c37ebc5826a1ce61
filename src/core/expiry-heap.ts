/**
 * An indexed binary min-heap of lock records ordered by `forgetAtMs`. Each record knows its own slot,
 * so renewing (key grows) and releasing (record leaves) cost O(log n) and every record is in the heap
 * exactly once: the heap never holds more entries than there are lock records.
 */

export interface HeapItem {
  forgetAtMs: number;
  heapSlot: number;
}

export class ExpiryHeap<T extends HeapItem> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    item.heapSlot = this.items.length;
    this.items.push(item);
    this.siftUp(item.heapSlot);
  }

  /** Call after changing `item.forgetAtMs`. */
  update(item: T): void {
    this.siftUp(item.heapSlot);
    this.siftDown(item.heapSlot);
  }

  remove(item: T): void {
    const slot = item.heapSlot;
    const last = this.items.pop()!;
    item.heapSlot = -1;
    if (last === item) return;
    this.items[slot] = last;
    last.heapSlot = slot;
    this.siftUp(slot);
    this.siftDown(last.heapSlot);
  }

  /** Every item, in no particular order (snapshots). */
  values(): readonly T[] {
    return this.items;
  }

  private siftUp(slot: number): void {
    const items = this.items;
    const item = items[slot]!;
    while (slot > 0) {
      const parentSlot = (slot - 1) >> 1;
      const parent = items[parentSlot]!;
      if (parent.forgetAtMs <= item.forgetAtMs) break;
      items[slot] = parent;
      parent.heapSlot = slot;
      slot = parentSlot;
    }
    items[slot] = item;
    item.heapSlot = slot;
  }

  private siftDown(slot: number): void {
    const items = this.items;
    const count = items.length;
    const item = items[slot]!;
    for (;;) {
      let child = 2 * slot + 1;
      if (child >= count) break;
      const right = child + 1;
      if (right < count && items[right]!.forgetAtMs < items[child]!.forgetAtMs) child = right;
      const smaller = items[child]!;
      if (smaller.forgetAtMs >= item.forgetAtMs) break;
      items[slot] = smaller;
      smaller.heapSlot = slot;
      slot = child;
    }
    items[slot] = item;
    item.heapSlot = slot;
  }
}
