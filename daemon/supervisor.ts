// The router's supervisor: `weave launch` starts this, and this starts the router daemon and
// starts it again whenever it dies other than by `weave stop` (exit 0), with backoff. A router
// that never came up (bad config, a port taken) is not retried: launch reports why.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { entryPoint } from '../contract/files.js';

const ROUTER = entryPoint('router');
const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 30_000;
const STABLE_MS = 60_000;

const stamp = () => new Date().toISOString();
const PCAP_NOISE = /^Warning: .*no IPv4 address assigned - This may not actually work$/;
let child: ChildProcess | undefined;
let stopping = false;
let everReady = false;
let retryMs = FIRST_RETRY_MS;

function start(): void {
  const started = Date.now();
  // A young generation capped at 4 MiB: V8 otherwise grows it to 16 MiB a semi-space under the
  // data path's allocation rate and keeps the memory (+40 MiB RSS in a 30-minute soak), for no gain.
  const c = spawn(process.execPath, ['--max-semi-space-size=4', ROUTER, ...process.argv.slice(2)], {
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    env: { ...process.env, WEAVE_SUPERVISOR: String(process.pid) },
  });
  child = c;
  // The log is the router's stderr, less libpcap's note that the capture port has no IPv4 address
  // (it has none by design), which cap prints from C where the router cannot stop it.
  createInterface({ input: c.stderr! }).on('line', (line) => {
    if (!PCAP_NOISE.test(line)) process.stderr.write(`${line}\n`);
  });
  c.on('message', (m) => {
    if (m === 'ready') everReady = true;
  });
  c.on('close', (code, signal) => {
    // close, not exit: the last lines of its stderr are in the log by then
    child = undefined;
    if (stopping || code === 0 || !everReady) process.exit(code ?? 1);
    if (Date.now() - started > STABLE_MS) retryMs = FIRST_RETRY_MS;
    process.stdout.write(
      `${stamp()} WARN supervisor: the router died (${signal ?? `exit ${code}`}); starting it again in ${retryMs} ms\n`,
    );
    setTimeout(start, retryMs);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  });
}

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    stopping = true;
    if (child) child.kill(sig);
    else process.exit(0);
  });
}
start();
