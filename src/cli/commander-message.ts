/**
 * Commander's error message as one line, for lockd and lockctl alike: without its "error: " prefix,
 * and with its suggestion ("Did you mean …?"), which it puts on a line of its own, on the same line.
 */
export function commanderMessageLine(message: string): string {
  return message
    .replace(/^error: /, "")
    .trim()
    .replace(/\s*\n\s*/g, " ");
}
