// Hostile HTTP for a router's API: random methods, paths (every route's shape, bent), query
// strings, headers and bodies, and raw garbage on the socket. Prints a JSON summary of the status
// codes it got. `node dist/bench/fuzzers/http.js HOST:PORT COUNT SEED`; with `unix:/path/weavemesh.sock`, the Docker
// network plugin's calls (NetworkDriver.*, IpamDriver.*) on its socket instead.
import http from 'node:http';
import net from 'node:net';
import { seededRandom } from './rand.js';

const PATHS = [
  '/',
  '/report',
  '/events',
  '/metrics',
  '/status',
  '/status/peers',
  '/status/x',
  '/attach',
  '/detach',
  '/ps',
  '/expose',
  '/hide',
  '/connect',
  '/forget',
  '/ip/x',
  '/ip/x/10.32.0.1/12',
  '/dns/add',
  '/dns/remove',
  '/dns/lookup/web',
  '/cni/add',
  '/cni/del',
  '/cni/check',
  '/cni/gc',
  '/cni/status',
  '/run',
  '/nope',
  '/app.js',
];
/** The plugins' calls (the legacy network plugin's; the managed one's adds the volume driver), and their bodies' fields. */
const PLUGIN_PATHS = [
  '/Plugin.Activate',
  ...[
    'GetCapabilities',
    'CreateNetwork',
    'DeleteNetwork',
    'AllocateNetwork',
    'FreeNetwork',
    'CreateEndpoint',
    'EndpointOperInfo',
    'DeleteEndpoint',
    'Join',
    'Leave',
    'DiscoverNew',
    'ProgramExternalConnectivity',
  ].map((m) => `/NetworkDriver.${m}`),
  ...[
    'GetCapabilities',
    'GetDefaultAddressSpaces',
    'RequestPool',
    'ReleasePool',
    'RequestAddress',
    'ReleaseAddress',
  ].map((m) => `/IpamDriver.${m}`),
  ...['Create', 'Remove', 'Mount', 'Unmount', 'Path', 'Get', 'List', 'Capabilities'].map((m) => `/VolumeDriver.${m}`),
  '/nope',
];
const PLUGIN_KEYS = [
  'NetworkID',
  'EndpointID',
  'SandboxKey',
  'Interface',
  'Options',
  'IPv4Data',
  'IPv6Data',
  'PoolID',
  'Pool',
  'SubPool',
  'V6',
  'Address',
  'AddressSpace',
  'Name',
  'ID',
  'Opts',
  '__proto__',
];
// Never /stop, /ipam/reset or /ipam/rmpeer: a caller of ours may do those, and they would end the
// run. Never a namespace by pid or path as a target: the machine's own (pid 1) is not ours to touch.
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'BREW'];
const VALUES = [
  '',
  'x',
  '-1',
  '0',
  '1e309',
  '%',
  '%E0%A4%A',
  '..',
  '../../..',
  '\u0000',
  'a'.repeat(300),
  '10.32.0.1',
  'net:default',
  'null',
  '[]',
  '{}',
  'true',
  '10.32.0.0/12',
  'weave-10.32.0.0/12-10.32.0.0/12',
  'f'.repeat(64),
  '02:00:00:00:00:01',
];

export function* hostileRequests(
  seed: number,
  plugin = false,
): Generator<{ method: string; path: string; headers: Record<string, string>; body?: string; raw?: Buffer }> {
  const rand = seededRandom(seed);
  const pick = <T>(xs: T[]) => xs[rand(xs.length)];
  const json = (): string => {
    const keys = plugin
      ? PLUGIN_KEYS
      : [
          'target',
          'cidrs',
          'mac',
          'peers',
          'replace',
          'targets',
          'name',
          'ips',
          'args',
          'env',
          'containerId',
          'netns',
          'ifname',
          'valid',
          'who',
          '__proto__',
          'constructor',
        ];
    const val = () =>
      pick<unknown>([
        pick(VALUES),
        [pick(VALUES)],
        7,
        true,
        null,
        { a: 1 },
        [1, 2],
        'netns:weave-fuzz-none',
        '/var/run/netns/weave-fuzz-none',
      ]);
    const o: Record<string, unknown> = {};
    for (let k = rand(4); k > 0; k--) o[pick(keys)] = val();
    const text = JSON.stringify(o);
    return rand(5) === 0 ? text.slice(0, rand(text.length + 1)) : text;
  };
  for (;;) {
    if (rand(20) === 0) {
      yield { method: '', path: '', headers: {}, raw: Buffer.from(Array.from({ length: rand(300) }, () => rand(256))) };
      continue;
    }
    let path = pick(plugin ? PLUGIN_PATHS : PATHS);
    if (rand(3) === 0)
      path = path
        .split('/')
        .map((seg) => (seg && rand(3) === 0 ? encodeURIComponent(pick(VALUES)) : seg))
        .join('/');
    if (rand(3) === 0) path += `?${pick(['subnet', 'peer', 'interval', 'x', ''])}=${encodeURIComponent(pick(VALUES))}`;
    const headers: Record<string, string> = {};
    if (rand(3) === 0) headers['content-type'] = pick(['application/json', 'text/plain', '']);
    if (rand(4) === 0) headers.accept = pick(['application/json', 'text/plain', '*/*']);
    if (rand(6) === 0) headers.origin = pick(['http://evil.example', 'null', 'http://127.0.0.1:6784']);
    yield { method: pick(METHODS), path, headers, body: rand(2) ? json() : undefined };
  }
}

/** A TCP address, or a unix socket's path. */
type Target = { host: string; port: number } | { socketPath: string };

function send(
  to: Target,
  r: { method: string; path: string; headers: Record<string, string>; body?: string; raw?: Buffer },
): Promise<number> {
  return new Promise((resolve) => {
    const raw = r.raw;
    if (raw) {
      const sock =
        'socketPath' in to
          ? net.connect(to.socketPath, () => sock.end(raw))
          : net.connect(to.port, to.host, () => sock.end(raw));
      sock.on('data', () => {});
      sock.on('close', () => resolve(0));
      sock.on('error', () => resolve(0));
      sock.setTimeout(5000, () => sock.destroy());
      return;
    }
    const req = http.request({ ...to, method: r.method, path: r.path, headers: r.headers, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    req.on('error', () => resolve(-1));
    req.on('timeout', () => req.destroy());
    req.end(r.body);
  });
}

const [addr, count, seed] = process.argv.slice(2);
if (addr) {
  const plugin = addr.startsWith('unix:');
  const to: Target = plugin
    ? { socketPath: addr.slice(5) }
    : { host: addr.slice(0, addr.lastIndexOf(':')), port: Number(addr.slice(addr.lastIndexOf(':') + 1)) };
  const gen = hostileRequests(Number(seed), plugin);
  const statuses: Record<string, number> = {};
  const fives: string[] = [];
  for (let i = 0; i < Number(count); i++) {
    const r = gen.next().value as {
      method: string;
      path: string;
      headers: Record<string, string>;
      body?: string;
      raw?: Buffer;
    };
    // The event stream never ends by itself: ask for it only with a bad query, which is refused.
    if (r.path.startsWith('/events') && !r.path.includes('?')) r.path += '?interval=0';
    const status = await send(to, r);
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (status >= 500 && fives.length < 5) fives.push(`${r.method} ${r.path} ${r.body ?? ''}`);
  }
  process.stdout.write(`${JSON.stringify({ statuses, fives })}\n`);
}
