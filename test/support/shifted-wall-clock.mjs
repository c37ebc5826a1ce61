// Preloaded into a lockd under test (NODE_OPTIONS=--import): Date.now() runs ahead of the real wall
// clock by the milliseconds written in the file BATON_TEST_WALL_SHIFT_FILE, so a test can step the
// server's wall clock while it runs. The monotonic clock (performance.now) is left alone.
import { readFileSync } from "node:fs";
import process from "node:process";

const shiftFile = process.env.BATON_TEST_WALL_SHIFT_FILE;
if (shiftFile !== undefined) {
  const realNow = Date.now;
  Date.now = () => realNow() + Number(readFileSync(shiftFile, "utf8"));
}
