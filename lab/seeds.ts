// The seeds' demo: many web servers that all want port 80 run side by side on one host, each with
// its own overlay address, and a container on another host fetches every one on the standard port.
import { type Lab, waitFor } from './lab.js';
import { dockerHost, weaveOk } from './weave.js';

/** A busybox web server that answers "hello from <hostname>" on port 80. */
export const WEB_SERVER = [
  'busybox',
  'sh',
  '-c',
  'echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www',
];

export interface Server {
  name: string;
  id: string;
  ip: string;
  ms: number;
}

/** Fetches http://ip/ from a container on host (busybox wget; its own -T option crashes, so timeout). */
export async function fetchFrom(lab: Lab, host: string, container: string, ip: string): Promise<string | undefined> {
  const r = await lab.exec(host, ['docker', 'exec', container, 'timeout', '3', 'wget', '-qO-', `http://${ip}/`], {
    env: { DOCKER_HOST: dockerHost(lab, host) },
    timeoutMs: 10_000,
  });
  return r.code === 0 ? r.stdout : undefined;
}

/**
 * Starts n web servers on `server` with `weave run`, one after another, and for each measures the
 * time from `weave run` to the first successful fetch from `client`'s container `from`.
 */
export async function runWebServers(
  lab: Lab,
  o: { server: string; client: string; from: string; n: number; prefix?: string },
): Promise<Server[]> {
  const out: Server[] = [];
  for (let i = 1; i <= o.n; i++) {
    const name = `${o.prefix ?? 'web'}${i}`;
    const t0 = performance.now();
    const id = (await weaveOk(lab, o.server, ['run', '--name', name, '-h', name, ...WEB_SERVER])).trim();
    const ip = (await weaveOk(lab, o.server, ['ps', id])).trim().split(' ')[2].split('/')[0];
    await waitFor(
      `${name} (${ip}) answers from ${o.client}`,
      async () => (await fetchFrom(lab, o.client, o.from, ip)) === `hello from ${name}\n`,
      15_000,
      50,
    );
    out.push({ name, id, ip, ms: performance.now() - t0 });
  }
  return out;
}

export const percentile = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
