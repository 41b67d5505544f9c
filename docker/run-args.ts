// `weave run` takes the `docker run` flags people type every day and turns them into an Engine API
// create request. Anything else is refused by name rather than silently dropped.
import { UserError } from '../common/errors.js';
import { VOLUME_DRIVER } from './engine.js';

export interface RunRequest {
  name?: string;
  /** --without-dns: keep Docker's resolver instead of the router's. */
  withoutDns?: boolean;
  /** The body of POST /containers/create. */
  body: {
    Image: string;
    Cmd?: string[];
    Entrypoint?: string[];
    Env: string[];
    Hostname?: string;
    WorkingDir?: string;
    Labels: Record<string, string>;
    ExposedPorts: Record<string, object>;
    HostConfig: {
      NetworkMode: 'none';
      Binds: string[];
      VolumeDriver?: string;
      PortBindings: Record<string, { HostIp: string; HostPort: string }[]>;
      RestartPolicy?: { Name: string; MaximumRetryCount?: number };
      AutoRemove: boolean;
      Memory?: number;
      NanoCpus?: number;
      Dns?: string[];
      DnsSearch?: string[];
    };
  };
}

export class RunArgsError extends UserError {}

const VALUED: Record<string, string> = {
  '--name': 'name',
  '-h': 'hostname',
  '--hostname': 'hostname',
  '-e': 'env',
  '--env': 'env',
  '-v': 'volume',
  '--volume': 'volume',
  '-p': 'publish',
  '--publish': 'publish',
  '-l': 'label',
  '--label': 'label',
  '--restart': 'restart',
  '-w': 'workdir',
  '--workdir': 'workdir',
  '--entrypoint': 'entrypoint',
  '-m': 'memory',
  '--memory': 'memory',
  '--cpus': 'cpus',
};
const FLAGS: Record<string, string> = {
  '-d': 'detach',
  '--detach': 'detach',
  '--rm': 'rm',
  '--without-dns': 'without-dns',
};

/** 512, 512k, 64m, 1g (Docker's units: powers of 1024). */
export function parseMemory(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([bkmg]?)$/i.exec(v);
  if (!m) throw new RunArgsError(`invalid --memory "${v}": expected a size like 64m or 1g`);
  const n = Math.round(Number(m[1]) * 1024 ** Math.max(0, 'bkmg'.indexOf(m[2].toLowerCase())));
  if (n < 6 * 1024 * 1024) throw new RunArgsError(`invalid --memory "${v}": Docker needs at least 6m`);
  return n;
}

function parsePublish(v: string, body: RunRequest['body']): void {
  // [ip:][hostPort:]containerPort[/proto]
  const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(?:(\d*):)?(\d+)(?:\/(tcp|udp|sctp))?$/.exec(v);
  if (!m) throw new RunArgsError(`invalid --publish "${v}": expected [IP:][HOSTPORT:]PORT[/PROTO]`);
  const key = `${m[3]}/${m[4] ?? 'tcp'}`;
  body.ExposedPorts[key] = {};
  (body.HostConfig.PortBindings[key] ??= []).push({ HostIp: m[1] ?? '', HostPort: m[2] ?? '' });
}

function parseRestart(v: string): { Name: string; MaximumRetryCount?: number } {
  const m = /^(no|always|unless-stopped|on-failure)(?::(\d+))?$/.exec(v);
  if (!m || (m[2] !== undefined && m[1] !== 'on-failure'))
    throw new RunArgsError(`invalid --restart "${v}": expected no, always, unless-stopped or on-failure[:N]`);
  return m[2] === undefined ? { Name: m[1] } : { Name: m[1], MaximumRetryCount: Number(m[2]) };
}

/**
 * Parses `docker run` arguments (after weave's own addresses). Containers always get network mode
 * "none": weave gives them their one interface, ethwe. -d is accepted and implied (weave run
 * returns once the container is up and attached).
 */
export function parseRunArgs(args: string[], env: NodeJS.ProcessEnv = process.env): RunRequest {
  const body: RunRequest['body'] = {
    Image: '',
    Env: [],
    Labels: {},
    ExposedPorts: {},
    HostConfig: { NetworkMode: 'none', Binds: [], PortBindings: {}, AutoRemove: false },
  };
  const req: RunRequest = { body };
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (Object.hasOwn(FLAGS, flag)) {
      if (eq > 0 && !/^(true|false)$/.test(a.slice(eq + 1)))
        throw new RunArgsError(`invalid ${a}: expected ${flag} or ${flag}=true|false`);
      if (FLAGS[flag] === 'rm') body.HostConfig.AutoRemove = eq < 0 || a.slice(eq + 1) === 'true';
      if (FLAGS[flag] === 'without-dns') req.withoutDns = eq < 0 || a.slice(eq + 1) === 'true';
      continue;
    }
    if (!Object.hasOwn(VALUED, flag))
      throw new RunArgsError(
        `unsupported docker run flag "${flag}" (weave run takes -d, --name, -h, -e, -v, -p, -l, --restart, --rm, -w, --entrypoint, -m, --cpus, --without-dns)`,
      );
    let v: string;
    if (eq > 0) v = a.slice(eq + 1);
    else if (i + 1 < args.length) v = args[++i];
    else throw new RunArgsError(`${flag} needs a value`);
    switch (VALUED[flag]) {
      case 'name':
        if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(v))
          throw new RunArgsError(`invalid container name "${v}": letters, digits, _ . - only`);
        req.name = v;
        break;
      case 'hostname':
        body.Hostname = v;
        break;
      case 'env':
        if (v.includes('=')) body.Env.push(v);
        else if (env[v] !== undefined) body.Env.push(`${v}=${env[v]}`);
        break;
      case 'volume':
        if (!/^[^:]+(:[^:]+(:[a-z,]+)?)?$/.test(v))
          throw new RunArgsError(`invalid --volume "${v}": expected SRC:DEST[:OPTIONS] or DEST`);
        body.HostConfig.Binds.push(v);
        // A named volume (not a host path) is a weave volume: it follows the container to any host.
        if (v.includes(':') && !v.startsWith('/')) body.HostConfig.VolumeDriver = VOLUME_DRIVER;
        break;
      case 'publish':
        parsePublish(v, body);
        break;
      case 'label': {
        const k = v.indexOf('=');
        body.Labels[k < 0 ? v : v.slice(0, k)] = k < 0 ? '' : v.slice(k + 1);
        break;
      }
      case 'restart':
        body.HostConfig.RestartPolicy = parseRestart(v);
        break;
      case 'workdir':
        body.WorkingDir = v;
        break;
      case 'entrypoint':
        body.Entrypoint = v === '' ? [''] : [v];
        break;
      case 'memory':
        body.HostConfig.Memory = parseMemory(v);
        break;
      case 'cpus': {
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v) || n <= 0)
          throw new RunArgsError(`invalid --cpus "${v}": expected a positive number like 0.5`);
        body.HostConfig.NanoCpus = Math.round(n * 1e9);
        break;
      }
    }
  }
  if (i >= args.length)
    throw new RunArgsError('missing image: weave run [ADDR...] [docker run flags] IMAGE [COMMAND [ARG...]]');
  body.Image = args[i];
  if (i + 1 < args.length) body.Cmd = args.slice(i + 1);
  const restart = body.HostConfig.RestartPolicy?.Name;
  if (body.HostConfig.AutoRemove && restart && restart !== 'no')
    throw new RunArgsError('--restart and --rm conflict: a container removed on exit cannot be restarted');
  return req;
}
