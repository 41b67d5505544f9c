// One line per event on stderr; the launcher points stderr at the data directory's log file.
function line(level: string, msg: string): void {
  process.stderr.write(`${new Date().toISOString()} ${level} ${msg}\n`);
}
export const log = {
  info: (msg: string) => line('INFO', msg),
  warn: (msg: string) => line('WARN', msg),
  error: (msg: string) => line('ERROR', msg),
};
