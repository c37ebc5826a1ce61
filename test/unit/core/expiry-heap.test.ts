import { describe, expect, it } from "vitest";
import { ExpiryHeap, type HeapItem } from "../../../src/core/expiry-heap.js";
import { seededRandom } from "../../support/seeded-random.js";

interface Item extends HeapItem {
  readonly name: number;
}

function item(name: number, forgetAtMs: number): Item {
  return { name, forgetAtMs, heapSlot: -1 };
}

/** Every item knows its own slot, and no parent is later than its children. */
function checkInvariants(heap: ExpiryHeap<Item>): void {
  const items = heap.values();
  for (let slot = 0; slot < items.length; slot++) {
    if (items[slot]!.heapSlot !== slot) throw new Error(`item ${items[slot]!.name} thinks it is at ${items[slot]!.heapSlot}, not ${slot}`);
    if (slot > 0 && items[(slot - 1) >> 1]!.forgetAtMs > items[slot]!.forgetAtMs) throw new Error(`heap order broken at ${slot}`);
  }
}

function drain(heap: ExpiryHeap<Item>): number[] {
  const out: number[] = [];
  for (let top = heap.peek(); top !== undefined; top = heap.peek()) {
    out.push(top.forgetAtMs);
    heap.remove(top);
    expect(top.heapSlot).toBe(-1);
  }
  return out;
}

describe("the expiry heap hands out records in forget-time order", () => {
  it("is empty at first", () => {
    const heap = new ExpiryHeap<Item>();
    expect(heap.size).toBe(0);
    expect(heap.peek()).toBeUndefined();
  });

  it("drains 20,000 seeded records, duplicates included, in time order", () => {
    const random = seededRandom("expiry-heap drain");
    const heap = new ExpiryHeap<Item>();
    const times: number[] = [];
    for (let n = 0; n < 20_000; n++) {
      const t = random.int(0, 5000);
      times.push(t);
      heap.push(item(n, t));
    }
    checkInvariants(heap);
    expect(heap.size).toBe(20_000);
    expect(drain(heap)).toEqual(times.sort((a, b) => a - b));
  });
});

describe("records move (update) and leave (remove) from anywhere in the heap", () => {
  it("matches a sorted model through 30,000 seeded pushes, updates and removes", () => {
    const random = seededRandom("expiry-heap operations");
    const heap = new ExpiryHeap<Item>();
    const live: Item[] = [];
    for (let n = 0; n < 30_000; n++) {
      const action = random.int(0, 9);
      if (action < 4 || live.length === 0) {
        const it = item(n, random.int(0, 1000));
        heap.push(it);
        live.push(it);
      } else if (action < 7) {
        const it = live[random.int(0, live.length - 1)]!;
        it.forgetAtMs = random.next() < 0.7 ? it.forgetAtMs + random.int(0, 500) : random.int(0, 1000);
        heap.update(it);
      } else {
        const at = random.int(0, live.length - 1);
        const it = live[at]!;
        heap.remove(it);
        live[at] = live[live.length - 1]!;
        live.pop();
      }
      if (n % 500 === 0) {
        checkInvariants(heap);
        const min = live.reduce((m, i) => Math.min(m, i.forgetAtMs), Infinity);
        if (live.length > 0 && heap.peek()!.forgetAtMs !== min) throw new Error(`seed ${random.seed}: peek is not the minimum`);
      }
    }
    checkInvariants(heap);
    expect(heap.size).toBe(live.length);
    expect(drain(heap)).toEqual(live.map((i) => i.forgetAtMs).sort((a, b) => a - b));
  });

  it("removing the last item and the only item works", () => {
    const heap = new ExpiryHeap<Item>();
    const a = item(1, 5);
    const b = item(2, 9);
    heap.push(a);
    heap.push(b);
    heap.remove(b);
    checkInvariants(heap);
    expect(heap.peek()).toBe(a);
    heap.remove(a);
    expect(heap.size).toBe(0);
  });
});
