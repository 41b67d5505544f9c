import '../common/polyfill.js';
// `node dist/bench/proxy.js [--n 1000]`: what the Docker API proxy adds to a request. In one lab
// host with a dockerd, `GET /containers/json` (docker ps) and `GET /containers/{id}/json` (docker
// inspect) are timed through the proxy and against the engine directly, one request at a time on a
// keep-alive connection each, interleaved (the order alternating) so both share the machine's
// noise. The proxy runs in its own process, as it does in the router, with the same hooked
// endpoints the network adapter uses (create, start), so matching is paid for. Goal: < 1 ms added at p50.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { DockerClient } from '../docker/client.js';
import { Lab } from '../lab/lab.js';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const N = arg('--n', 1000);
const WARMUP = 200;
const CONTAINERS = 5;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

// The proxy's process: pass-through hooks on the network adapter's endpoints.
const PROXY_MAIN = `
const [url, engine, socket] = process.argv.slice(1);
const { DockerProxy } = await import(url);
const pass = { name: 'pass', pre: async (r) => r, post: async (_q, r) => r };
await DockerProxy.listen({ engine, socket, endpoints: [
  { method: 'POST', pattern: '/containers/create', pre: [pass], post: [] },
  { method: 'POST', pattern: '/containers/*/start', pre: [], post: [pass] },
] });
console.log('ready');`;

function get(socketPath: string, agent: http.Agent, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    http
      .get({ socketPath, agent, path }, (res) => {
        res.on('data', () => {});
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(performance.now() - t0)
            : reject(new Error(`${path}: HTTP ${res.statusCode}`)),
        );
      })
      .on('error', reject);
  });
}

const lab = await Lab.create({ hosts: 1 });
try {
  const d = await lab.startDockerd('h1');
  const docker = new DockerClient(`unix://${d.socket}`);
  let id = '';
  for (let i = 0; i < CONTAINERS; i++) {
    id = await docker.create(
      { Image: 'busybox', Cmd: ['sleep', '3600'], HostConfig: { NetworkMode: 'none' } },
      `bench${i}`,
    );
    await docker.start(id);
  }
  const proxySocket = join(lab.host('h1').dataDir, 'proxy.sock');
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      '--input-type=module',
      '-e',
      PROXY_MAIN,
      new URL('../docker/proxy/proxy.js', import.meta.url).href,
      `unix://${d.socket}`,
      proxySocket,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        if (c.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`the proxy process exited (${code})`)));
    });
    const targets = { engine: d.socket, proxy: proxySocket } as const;
    const agents = {
      engine: new http.Agent({ keepAlive: true, maxSockets: 1 }),
      proxy: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    };
    const paths = {
      'GET /containers/json (ps)': '/v1.41/containers/json',
      'GET /containers/{id}/json (inspect)': `/v1.41/containers/${id}/json`,
    };
    const lat: Record<string, { engine: number[]; proxy: number[] }> = {};
    for (const name of Object.keys(paths)) lat[name] = { engine: [], proxy: [] };
    for (let i = 0; i < WARMUP + N; i++) {
      for (const [name, path] of Object.entries(paths)) {
        for (const via of (i % 2 ? ['engine', 'proxy'] : ['proxy', 'engine']) as ('engine' | 'proxy')[]) {
          const ms = await get(targets[via], agents[via], path);
          if (i >= WARMUP) lat[name][via].push(ms);
        }
      }
    }
    console.log(
      `Docker API proxy latency, ${N} requests each, one at a time on a keep-alive connection, interleaved (${CONTAINERS} containers)`,
    );
    console.log(
      `${'request'.padEnd(38)} ${'engine p50/p99'.padStart(16)} ${'proxy p50/p99'.padStart(16)} ${'added p50'.padStart(10)}`,
    );
    let worst = 0;
    for (const [name, l] of Object.entries(lat)) {
      const added = pct(l.proxy, 50) - pct(l.engine, 50);
      worst = Math.max(worst, added);
      const f = (xs: number[]) => `${pct(xs, 50).toFixed(3)}/${pct(xs, 99).toFixed(3)} ms`;
      console.log(
        `${name.padEnd(38)} ${f(l.engine).padStart(16)} ${f(l.proxy).padStart(16)} ${`${added.toFixed(3)} ms`.padStart(10)}`,
      );
    }
    console.log(`goal < 1 ms added at p50: ${worst < 1 ? 'met' : 'NOT met'}`);
    for (const a of Object.values(agents)) a.destroy();
  } finally {
    child.kill();
  }
} finally {
  await lab.down();
}
