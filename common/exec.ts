// Process helpers: argv arrays only (never a shell), results instead of throws.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { constants } from 'node:os';

const execFileP = promisify(execFile);

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}
export interface ExecOptions {
  /** Added to (not replacing) the current environment, so PATH etc. keep working. */
  env?: NodeJS.ProcessEnv;
  /** Kill the command (SIGKILL) after this many ms; code is then 124, like timeout(1). */
  timeoutMs?: number;
  /** Written to the command's stdin; stdin is always closed so readers never hang. */
  input?: string;
}

/** Runs argv[0] with argv[1..]. Never rejects because of the exit status. */
export async function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  if (argv.length === 0) throw new Error('run: empty argv');
  const p = execFileP(argv[0], argv.slice(1), {
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
    timeout: opts.timeoutMs ?? 0,
    killSignal: 'SIGKILL',
    maxBuffer: 64 * 1024 * 1024,
    encoding: 'utf8',
  });
  // An early-exiting child closes the pipe; an EPIPE here must not crash us.
  p.child.stdin?.on('error', () => {});
  p.child.stdin?.end(opts.input ?? '');
  try {
    const { stdout, stderr } = await p;
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & {
      code?: number | string;
      signal?: NodeJS.Signals | null;
      killed?: boolean;
      stdout?: string;
      stderr?: string;
    };
    const stdout = err.stdout ?? '';
    let stderr = err.stderr ?? '';
    if (typeof err.code === 'number') return { code: err.code, stdout, stderr };
    if (err.signal) {
      if (err.killed && opts.timeoutMs)
        return { code: 124, stdout, stderr: `${stderr}timed out after ${opts.timeoutMs}ms: ${argv.join(' ')}\n` };
      return { code: 128 + (constants.signals[err.signal] ?? 0), stdout, stderr };
    }
    // Could not start at all (ENOENT, EACCES, ...): report like a shell would.
    stderr += `${argv[0]}: ${err.message}\n`;
    return { code: err.code === 'ENOENT' ? 127 : 126, stdout, stderr };
  }
}

/** Like run() but throws an Error naming the command and its stderr on failure. */
export async function runOk(argv: string[], opts: ExecOptions = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim().split('\n').at(-1) || `exit ${r.code}`}`);
  return r.stdout;
}
