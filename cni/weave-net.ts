// The CNI plugin (spec 0.3.0 to 1.1.0) in TypeScript: one short process per call that relays the
// runtime's environment and config to the local router (POST /cni/exec), which speaks CNI, and
// prints what it answers. native/cni/weave-net.c is the same relay without Node's start-up (most of
// each call's cost here); this one is the reference it is tested against.
import http from 'node:http';
import {
  CNI_ERR,
  CNI_EXEC_MAX,
  type CniExecRequest,
  type CniExecResult,
  cniError,
  versionAnswer,
} from '../contract/cni.js';

const DEFAULT_API = '127.0.0.1:6784';
const TIMEOUT_MS = 30_000;
/** apiAddr or WEAVE_HTTP_ADDR: a host name or address (IPv6 in brackets or not, printable ASCII but '/') and a port. */
const ADDR = /^[!-.0-~]{1,255}:[0-9]{1,5}$/;

/** The config as far as a relay reads it (VERSION's answer, the router's address, an error's version), or why not. */
function parse(text: string): { conf: Record<string, unknown> } | { notJson: string } {
  let v: unknown;
  try {
    v = text.trim() ? JSON.parse(text) : {};
  } catch {
    return { notJson: 'JSON' };
  }
  return v && typeof v === 'object' && !Array.isArray(v)
    ? { conf: v as Record<string, unknown> }
    : { notJson: 'a JSON object' };
}

/** Posts the call to the router and reads its text answer (contract/cni.ts: exit, stderr line, stdout). */
function relay(
  addr: string,
  body: string,
): Promise<CniExecResult | { down: string } | { status: number; text: string }> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: addr.slice(0, i).replace(/^\[(.*)\]$/, '$1'),
        port: Number(addr.slice(i + 1)),
        method: 'POST',
        path: '/cni/exec',
        timeout: TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const m = /^(\d{1,3})\n([^\n]*)\n/.exec(text);
          if (res.statusCode !== 200 || !m) return resolve({ status: res.statusCode ?? 0, text });
          resolve({ exit: Number(m[1]), stderr: m[2], stdout: text.slice(m[0].length) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ down: err.code ?? err.message }));
    req.end(body);
  });
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function main(): Promise<CniExecResult> {
  const e = process.env;
  const command = e.CNI_COMMAND ?? '';
  const bytes = await readStdin();
  const stdin = bytes.toString('utf8');
  const parsed = parse(stdin);
  const conf = 'conf' in parsed ? parsed.conf : {};
  const fail = (code: number, msg: string) => cniError(command, conf.cniVersion, code, msg);
  const tooLarge = `the network configuration and CNI environment are over ${CNI_EXEC_MAX} bytes`;
  // Not read further (so in no version but the latest), as the C plugin, which reads only that much.
  if (bytes.length > CNI_EXEC_MAX) return cniError(command, undefined, CNI_ERR.invalidConfig, tooLarge);
  if (command === 'VERSION') {
    if ('notJson' in parsed) return fail(CNI_ERR.decode, `the network configuration on stdin is not ${parsed.notJson}`);
    return { exit: 0, stderr: '', stdout: `${JSON.stringify(versionAnswer(conf.cniVersion ?? '0.3.1'))}\n` };
  }
  const call: CniExecRequest = {
    command,
    containerId: e.CNI_CONTAINERID ?? '',
    netns: e.CNI_NETNS ?? '',
    ifname: e.CNI_IFNAME ?? '',
    args: e.CNI_ARGS ?? '',
    path: e.CNI_PATH ?? '',
    stdin,
  };
  const body = JSON.stringify(call);
  if (Buffer.byteLength(body) > CNI_EXEC_MAX) return fail(CNI_ERR.invalidConfig, tooLarge);
  const api = typeof conf.apiAddr === 'string' ? conf.apiAddr : e.WEAVE_HTTP_ADDR || DEFAULT_API;
  if (!ADDR.test(api) || Number(api.slice(api.lastIndexOf(':') + 1)) > 65535)
    return fail(CNI_ERR.invalidConfig, `invalid router address "${api.slice(0, 80)}": expected HOST:PORT`);
  const r = await relay(api, body);
  if ('down' in r)
    return fail(
      command === 'STATUS' ? CNI_ERR.notAvailable : CNI_ERR.tryAgain,
      `the weave router does not answer at ${api} (${r.down}): is it running? (weave launch)`,
    );
  if ('status' in r)
    return fail(
      CNI_ERR.io,
      `the router answered HTTP ${r.status}: ${r.text
        .replace(/[ \t\r\n]+/g, ' ')
        .trim()
        .slice(0, 200)}`,
    );
  return r;
}

main().then(({ exit, stderr, stdout }) => {
  if (stderr) process.stderr.write(`${stderr}\n`);
  process.stdout.write(stdout);
  process.exitCode = exit;
});
