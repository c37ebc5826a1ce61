/** Operational messages go to stderr, one line each; stdout carries only the "listening" line. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export const stderrLogger: Logger = {
  info: (message) => process.stderr.write(`lockd: ${message}\n`),
  warn: (message) => process.stderr.write(`lockd: warning: ${message}\n`),
  error: (message) => process.stderr.write(`lockd: error: ${message}\n`),
};

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
