// Preloaded into a lockd under test (NODE_OPTIONS=--import): Date.now() runs ahead of the real wall
// clock by the milliseconds written in the file BATON_TEST_WALL_SHIFT_FILE, so a test can step the
// server's wall clock while it runs. The monotonic clock (performance.now) is left alone.
// With BATON_TEST_WALL_STEP_AFTER_RECORD_MS, the wall clock also steps that much further once the
// wall-clock step record (DIR/clock-step) has been written: a step at the moment a restart writes it.
import { readFileSync } from "node:fs";
import { createRequire, syncBuiltinESMExports } from "node:module";
import process from "node:process";

const shiftFile = process.env.BATON_TEST_WALL_SHIFT_FILE;
if (shiftFile !== undefined) {
  let stepAfterRecordMs = 0;
  const afterRecord = Number(process.env.BATON_TEST_WALL_STEP_AFTER_RECORD_MS ?? 0);
  if (afterRecord !== 0) {
    const fs = createRequire(import.meta.url)("node:fs");
    const renameSync = fs.renameSync;
    fs.renameSync = (from, to) => {
      renameSync(from, to);
      if (String(to).endsWith("/clock-step")) stepAfterRecordMs = afterRecord;
    };
    syncBuiltinESMExports(); // so lockd's `import { renameSync } from "node:fs"` sees it
  }
  const realNow = Date.now;
  Date.now = () => realNow() + Number(readFileSync(shiftFile, "utf8")) + stepAfterRecordMs;
}
