import { NotFound, UserError } from '../../common/errors.js';
import {
  CNI_ERR as ERR,
  CNI_VERSIONS,
  type CniExecRequest,
  type CniExecResult,
  cniError,
  versionAnswer,
} from '../../contract/cni.js';
import type { CniAddResult, CniCheckResult, CniRequest } from '../../contract/requests.js';
import { addResult, atLeast, CniError, type Result } from './result.js';

/** What a CNI command does on this router (attach/cni/subsystem.ts): the same work as the /cni/* routes. */
export interface CniOps {
  add(b: CniRequest): Promise<CniAddResult>;
  del(b: { containerId: string; netns?: string; ifname: string }): Promise<unknown>;
  check(b: CniRequest): Promise<CniCheckResult>;
  gc(valid: string[]): Promise<unknown>;
  status(): unknown;
}

interface NetConf {
  cniVersion?: string;
  prevResult?: Result;
  [k: string]: unknown;
}

/** The spec's code for an error of the work itself, as the plugin mapped the API's statuses when it called them. */
function codeOf(err: Error): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof NotFound) return new CniError(ERR.unknownContainer, err.message); // the namespace is gone
  if (err instanceof UserError)
    return new CniError(
      /interface \S+ already/.test(err.message) ? ERR.interfaceExists : ERR.invalidConfig,
      err.message,
    );
  return new CniError(ERR.io, err.message);
}

/**
 * One CNI call as the plugin received it (POST /cni/exec): checks the command, the environment and
 * the config's version, does the work and answers what the plugin prints: the result in the shape
 * of the config's version, or the spec's error JSON.
 */
export async function execCni(req: CniExecRequest, ops: CniOps): Promise<CniExecResult> {
  let version: unknown = '1.1.0';
  try {
    let conf: NetConf;
    try {
      conf = req.stdin.trim() ? (JSON.parse(req.stdin) as NetConf) : {};
    } catch {
      throw new CniError(ERR.decode, 'the network configuration on stdin is not JSON');
    }
    if (!conf || typeof conf !== 'object' || Array.isArray(conf))
      throw new CniError(ERR.decode, 'the network configuration on stdin is not a JSON object');
    if (typeof conf.cniVersion === 'string') version = conf.cniVersion;
    if (!req.command) throw new CniError(ERR.invalidEnv, 'CNI_COMMAND is not set');
    const out = await run(req, conf, ops).catch((err: Error) => {
      throw codeOf(err);
    });
    return { exit: 0, stderr: '', stdout: out === undefined ? '' : `${JSON.stringify(out)}\n` };
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(ERR.io, (err as Error).message);
    return cniError(req.command, version, e.code, e.message, e.details);
  }
}

/** Runs one command; the value is what goes to stdout (undefined: nothing). */
async function run(req: CniExecRequest, conf: NetConf, ops: CniOps): Promise<unknown> {
  const version = conf.cniVersion ?? '0.3.1';
  const cmd = req.command;
  if (cmd === 'VERSION') return versionAnswer(version);
  if (!CNI_VERSIONS.includes(version))
    throw new CniError(
      ERR.incompatible,
      `CNI version ${version} is not supported`,
      `supported: ${CNI_VERSIONS.join(', ')}`,
    );
  const env = (name: string, value: string) => {
    if (!value) throw new CniError(ERR.invalidEnv, `${name} is not set`);
    return value;
  };
  const id = () => ({ containerId: env('CNI_CONTAINERID', req.containerId), ifname: env('CNI_IFNAME', req.ifname) });
  switch (cmd) {
    case 'ADD':
      return addResult(version, await ops.add({ ...id(), netns: env('CNI_NETNS', req.netns) }), conf.prevResult);
    case 'DEL':
      await ops.del({ ...id(), netns: req.netns });
      return undefined;
    case 'CHECK': {
      if (!atLeast(version, '0.4.0'))
        throw new CniError(ERR.incompatible, `CHECK needs CNI version 0.4.0 or later, not ${version}`);
      const prev = conf.prevResult;
      if (!prev) throw new CniError(ERR.invalidConfig, 'CHECK needs a prevResult');
      const { ifname } = id();
      const netns = env('CNI_NETNS', req.netns);
      const now = await ops.check({ ...id(), netns });
      const mine = prev.interfaces?.findIndex((i) => i.name === ifname && (!i.sandbox || i.sandbox === netns)) ?? -1;
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
      try {
        await ops.status();
      } catch (err) {
        throw new CniError(ERR.notAvailable, (err as Error).message);
      }
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
      await ops.gc(list.map((x) => `${x.containerID}:${x.ifname}`));
      return undefined;
    }
    default:
      throw new CniError(
        ERR.invalidEnv,
        `unknown CNI_COMMAND "${cmd}": expected ADD, DEL, CHECK, VERSION, STATUS or GC`,
      );
  }
}
