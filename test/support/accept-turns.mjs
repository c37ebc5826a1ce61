// Preloaded into a lockd under test (NODE_OPTIONS=--import): counts the connections its servers
// accept and the event-loop turns they are accepted in, and writes "<connections> <turns>" to the
// file BATON_TEST_ACCEPT_TURNS_FILE at the end of every turn that accepted one. A turn's accepts all
// run in its poll phase, and a setImmediate callback runs after that phase, so one callback per turn
// marks its end.
import { writeFileSync } from "node:fs";
import { Server } from "node:net";
import process from "node:process";
import { setImmediate } from "node:timers";

const file = process.env.BATON_TEST_ACCEPT_TURNS_FILE;
if (file !== undefined) {
  let connections = 0;
  let turns = 0;
  let turnOpen = false;
  const emit = Server.prototype.emit;
  Server.prototype.emit = function (event, ...args) {
    if (event === "connection") {
      connections++;
      if (!turnOpen) {
        turnOpen = true;
        turns++;
        setImmediate(() => {
          turnOpen = false;
          writeFileSync(file, `${connections} ${turns}`);
        });
      }
    }
    return emit.call(this, event, ...args);
  };
}
