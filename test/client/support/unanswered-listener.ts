/**
 * A port whose connects never complete: a listening socket (in a python3 child, since Node accepts
 * every connection it is offered) that never accepts, with its queue already full, so the kernel
 * drops every further SYN and a client's connect hangs until its own timeout.
 */
import { spawn, type ChildProcess } from "node:child_process";

const SCRIPT = `
import socket, sys, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(0)
port = listener.getsockname()[1]
fillers = []
for _ in range(4):
    filler = socket.socket()
    filler.setblocking(False)
    try:
        filler.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fillers.append(filler)
time.sleep(0.2)
print(port, flush=True)
sys.stdin.read()
`;

export interface UnansweredListener {
  readonly endpoint: string;
  close(): void;
}

export function startUnansweredListener(): Promise<UnansweredListener> {
  const child: ChildProcess = spawn("python3", ["-c", SCRIPT], { stdio: ["pipe", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`the listener exited with ${code} before giving its port`)));
    child.stdout!.setEncoding("utf8").once("data", (text: string) => {
      resolve({ endpoint: `127.0.0.1:${Number(text.trim())}`, close: () => child.kill() });
    });
  });
}
