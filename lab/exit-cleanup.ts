// Best-effort teardown when the process ends without calling down() (crash, Ctrl-C, kill).
// Handlers must be synchronous: on 'exit' the event loop is already gone.

type SyncCleanup = () => void;
const cleanups = new Set<SyncCleanup>();
let installed = false;

function runAll(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // Keep going: other labs still deserve their cleanup.
    }
  }
}

function onSignal(sig: NodeJS.Signals): void {
  runAll();
  // If nobody else handles the signal, restore the default action (terminate) and re-raise it,
  // so the exit status still says "killed by SIGINT". Otherwise leave it to the other handlers.
  if (process.listenerCount(sig) === 1) {
    process.removeAllListeners(sig);
    process.kill(process.pid, sig);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
}

export function onExit(fn: SyncCleanup): void {
  install();
  cleanups.add(fn);
}

export function offExit(fn: SyncCleanup): void {
  cleanups.delete(fn);
}
