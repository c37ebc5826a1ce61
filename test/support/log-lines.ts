/** lockd's stderr lines as tests read them: each starts with the UTC time (`--log-timestamps auto`). */

/** The time a line starts with, and the space after it. */
export const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) /;

/** The lines without their times, for comparing messages; a line without one fails the test. */
export function unstamped(stderr: string): string {
  return stderr
    .split("\n")
    .map((line, at, lines) => {
      if (line === "" && at === lines.length - 1) return line;
      if (!STAMP.test(line)) throw new Error(`a stderr line without its time: ${JSON.stringify(line)}`);
      return line.replace(STAMP, "");
    })
    .join("\n");
}
