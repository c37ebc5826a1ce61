/**
 * profile-top: the functions with the most self time in a V8 .cpuprofile (from `node --cpu-prof`),
 * with their share of all samples, so a profile can be read without a browser.
 *
 *   node profile-top.js FILE.cpuprofile [--top 25]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write("usage: profile-top.js FILE.cpuprofile [--top N]\n");
  process.exit(2);
}
const topAt = process.argv.indexOf("--top");
const top = topAt >= 0 ? Number(process.argv[topAt + 1]) : 25;
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfUs = new Map<string, number>();
let totalUs = 0;
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  const frame = byId.get(id)!.callFrame;
  const where = frame.url === "" ? "" : ` ${frame.url.replace(/^.*\/(dist|node_modules)\//, "$1/").replace(/^node:/, "node:")}:${frame.lineNumber + 1}`;
  const key = `${frame.functionName || "(anonymous)"}${where}`;
  selfUs.set(key, (selfUs.get(key) ?? 0) + delta);
  totalUs += delta;
});
const rows = [...selfUs.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
process.stdout.write(`${(totalUs / 1e6).toFixed(2)} s sampled\n`);
for (const [name, us] of rows) process.stdout.write(`${((us / totalUs) * 100).toFixed(1).padStart(5)}%  ${name}\n`);
