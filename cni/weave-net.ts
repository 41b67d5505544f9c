// The CNI plugin (spec 0.3.0 to 1.1.0): one short process per call that reads the runtime's
// environment and config, asks the local router to do the work, and prints the result or error
// as JSON on stdout. Kept small on purpose: Node's own start-up is most of each call's cost.
import http from 'node:http';
import type { CniAddResult, CniCheckResult } from '../contract/requests.js';
import { addResult, atLeast, CniError, ERR, SUPPORTED, type Result } from './result.js';

interface NetConf {
  cniVersion?: string;
  name?: string;
  type?: string;
  prevResult?: Result;
  apiAddr?: string;
  [k: string]: unknown;
}

const DEFAULT_API = '127.0.0.1:6784';

function call<T>(addr: string, method: string, path: string, body?: unknown): Promise<T> {
  const i = addr.lastIndexOf(':');
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: addr.slice(0, i),
        port: Number(addr.slice(i + 1)),
        method,
        path,
        timeout: 30_000,
        headers: {
          accept: 'application/json',
          ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          let v: { error?: string } = {};
          try {
            v = JSON.parse(text);
          } catch {
            /* not JSON: reported below */
          }
          if ((res.statusCode ?? 500) < 300) return resolve(v as T);
          const code =
            res.statusCode === 404
              ? ERR.unknownContainer // its namespace is gone: nothing to clean up
              : res.statusCode === 400
                ? /interface \S+ already/.test(v.error ?? '')
                  ? ERR.interfaceExists
                  : ERR.invalidConfig
                : ERR.io;
          reject(new CniError(code, v.error ?? `the router answered HTTP ${res.statusCode}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new CniError(
          ERR.tryAgain,
          `the weave router does not answer at ${addr} (${err.code ?? err.message}): is it running? (weave launch)`,
        ),
      ),
    );
    req.end(data);
  });
}

function env(name: string, required = true): string {
  const v = process.env[name];
  if (required && !v) throw new CniError(ERR.invalidEnv, `${name} is not set`);
  return v ?? '';
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs one command; the value is what goes to stdout (undefined: nothing). */
async function main(cmd: string, conf: NetConf): Promise<unknown> {
  const version = conf.cniVersion ?? '0.3.1';
  if (cmd === 'VERSION')
    return { cniVersion: SUPPORTED.includes(version) ? version : '1.1.0', supportedVersions: SUPPORTED };
  if (!SUPPORTED.includes(version))
    throw new CniError(
      ERR.incompatible,
      `CNI version ${version} is not supported`,
      `supported: ${SUPPORTED.join(', ')}`,
    );
  const api = typeof conf.apiAddr === 'string' ? conf.apiAddr : process.env.WEAVE_HTTP_ADDR || DEFAULT_API;
  const id = () => ({ containerId: env('CNI_CONTAINERID'), ifname: env('CNI_IFNAME') });
  switch (cmd) {
    case 'ADD': {
      const r = await call<CniAddResult>(api, 'POST', '/cni/add', { ...id(), netns: env('CNI_NETNS') });
      return addResult(version, r, conf.prevResult);
    }
    case 'DEL':
      await call(api, 'POST', '/cni/del', { ...id(), netns: env('CNI_NETNS', false) });
      return undefined;
    case 'CHECK': {
      if (!atLeast(version, '0.4.0'))
        throw new CniError(ERR.incompatible, `CHECK needs CNI version 0.4.0 or later, not ${version}`);
      const prev = conf.prevResult;
      if (!prev) throw new CniError(ERR.invalidConfig, 'CHECK needs a prevResult');
      const { ifname } = id();
      const now = await call<CniCheckResult>(api, 'POST', '/cni/check', { ...id(), netns: env('CNI_NETNS') });
      const mine =
        prev.interfaces?.findIndex((i) => i.name === ifname && (!i.sandbox || i.sandbox === env('CNI_NETNS'))) ?? -1;
      if (mine < 0) throw new CniError(ERR.checkFailed, `prevResult has no interface ${ifname}`);
      if (!now.mac) throw new CniError(ERR.checkFailed, `interface ${ifname} is missing`);
      const want = prev.interfaces![mine];
      if (want.mac && want.mac.toLowerCase() !== now.mac.toLowerCase())
        throw new CniError(ERR.checkFailed, `interface ${ifname} has MAC ${now.mac}, not ${want.mac}`);
      for (const ip of (prev.ips ?? []).filter((x) => x.interface === mine)) {
        if (!now.cidrs.includes(ip.address))
          throw new CniError(ERR.checkFailed, `interface ${ifname} does not have ${ip.address}`);
        if (!now.held.includes(ip.address))
          throw new CniError(ERR.checkFailed, `IPAM does not hold ${ip.address} for this container`);
      }
      return undefined;
    }
    case 'STATUS':
      if (!atLeast(version, '1.1.0'))
        throw new CniError(ERR.incompatible, `STATUS needs CNI version 1.1.0, not ${version}`);
      await call(api, 'GET', '/cni/status').catch((err: CniError) => {
        throw new CniError(ERR.notAvailable, err.message);
      });
      return undefined;
    case 'GC': {
      if (!atLeast(version, '1.1.0'))
        throw new CniError(ERR.incompatible, `GC needs CNI version 1.1.0, not ${version}`);
      const list = (conf['cni.dev/valid-attachments'] ?? conf['cni.dev/attachments'] ?? []) as {
        containerID?: unknown;
        ifname?: unknown;
      }[];
      if (
        !Array.isArray(list) ||
        !list.every((x) => typeof x?.containerID === 'string' && typeof x?.ifname === 'string')
      ) {
        throw new CniError(ERR.invalidConfig, 'cni.dev/valid-attachments must be a list of {containerID, ifname}');
      }
      await call(api, 'POST', '/cni/gc', { valid: list.map((x) => `${x.containerID}:${x.ifname}`) });
      return undefined;
    }
    default:
      throw new CniError(
        ERR.invalidEnv,
        `unknown CNI_COMMAND "${cmd}": expected ADD, DEL, CHECK, VERSION, STATUS or GC`,
      );
  }
}

const cmd = process.env.CNI_COMMAND ?? '';
let conf: NetConf = {};
let version = '1.1.0';
readStdin()
  .then(async (text) => {
    try {
      conf = text.trim() ? (JSON.parse(text) as NetConf) : {};
    } catch {
      throw new CniError(ERR.decode, 'the network configuration on stdin is not JSON');
    }
    if (!conf || typeof conf !== 'object' || Array.isArray(conf))
      throw new CniError(ERR.decode, 'the network configuration on stdin is not a JSON object');
    if (typeof conf.cniVersion === 'string') version = conf.cniVersion;
    if (cmd !== 'VERSION' && !cmd) throw new CniError(ERR.invalidEnv, 'CNI_COMMAND is not set');
    const out = await main(cmd, conf);
    if (out !== undefined) process.stdout.write(`${JSON.stringify(out)}\n`);
  })
  .catch((err: Error) => {
    const e = err instanceof CniError ? err : new CniError(ERR.io, err.message);
    process.stderr.write(`weave-net: ${cmd || 'no command'}: ${e.message}\n`);
    process.stdout.write(
      `${JSON.stringify({ cniVersion: SUPPORTED.includes(version) ? version : '1.1.0', code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) })}\n`,
    );
    process.exitCode = 1;
  });
