// Preloaded into a lockd under test (NODE_OPTIONS=--import): while the file BATON_TEST_STALL_FILE
// exists, fdatasync and fsync do not call back, as on a disk that stalls. The data is still synced;
// only the completion waits.
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import process from "node:process";
import { setTimeout } from "node:timers";

const stallFile = process.env.BATON_TEST_STALL_FILE;
if (stallFile !== undefined) {
  const delayed = (sync) => (fd, callback) =>
    sync(fd, (error) => {
      const finish = () => (fs.existsSync(stallFile) ? setTimeout(finish, 5) : callback(error));
      finish();
    });
  fs.fdatasync = delayed(fs.fdatasync);
  fs.fsync = delayed(fs.fsync);
  syncBuiltinESMExports();
}
