import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { onAbort } from "../../client/abort-listeners.js";

describe("many waiters on one AbortSignal", () => {
  it("share one listener on it, each called once when it aborts, in the order they came", () => {
    const controller = new AbortController();
    const called: number[] = [];
    for (let n = 0; n < 1000; n++) onAbort(controller.signal, () => called.push(n));
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    controller.abort();
    controller.abort();
    expect(called).toEqual(Array.from({ length: 1000 }, (_, n) => n));
  });

  it("leave nothing on the signal once every one has stopped waiting, and can wait on it again", () => {
    const controller = new AbortController();
    const called: string[] = [];
    const stops = [onAbort(controller.signal, () => called.push("a")), onAbort(controller.signal, () => called.push("b"))];
    stops[0]!();
    stops[0]!(); // a second stop changes nothing
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    stops[1]!();
    expect(getEventListeners(controller.signal, "abort")).toEqual([]);
    onAbort(controller.signal, () => called.push("c"));
    controller.abort();
    expect(called).toEqual(["c"]);
  });

  it("may stop waiting, or stop others, while the signal calls them", () => {
    const controller = new AbortController();
    const called: string[] = [];
    const stopSecond: (() => void)[] = [];
    onAbort(controller.signal, () => {
      called.push("first");
      stopSecond[0]!();
    });
    stopSecond.push(onAbort(controller.signal, () => called.push("second")));
    controller.abort();
    // As with EventTarget's own listeners: one stopped before its turn is not called.
    expect(called).toEqual(["first"]);
    expect(getEventListeners(controller.signal, "abort")).toEqual([]);
  });
});
