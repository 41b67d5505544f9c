import { execFile } from 'node:child_process';

export interface ExecResult { code: number; stdout: string; stderr: string }

/** Runs a program without a shell; never throws on a non-zero exit. */
export function run(argv: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(argv[0], argv.slice(1), { env: opts.env, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && code === 127 ? err.message : '')) });
      });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a program and returns its stdout; throws with the command and its stderr on failure. */
export async function runOk(argv: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}
