import { CHECKOUT } from '../common/checkout.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Lab, waitFor } from './lab.js';
import type { ExecResult, LabContainer } from './lab.js';
import type { Report } from '../contract/report.js';

/** The checkout's CLI, run inside lab hosts exactly as a user runs it on a real host. */
export const WEAVE = join(CHECKOUT, 'bin', 'weave');

/** Each host's own Docker engine (lab.startDockerd), or nothing answering: never the machine's own. */
export const dockerHost = (lab: Lab, host: string) => `unix://${join(lab.host(host).dataDir, 'docker.sock')}`;

/** The host's own Docker plugin directory, which its dockerd (and only its) sees as /run/docker/plugins. */
export const pluginDir = (lab: Lab, host: string) => join(lab.host(host).dataDir, 'plugins');

/** What keeps a router on a lab host to that host: its data dir, its Docker engine and plugin dir, the mounts. */
export const hostVars = (lab: Lab, host: string) => ({
  WEAVE_DATA_DIR: lab.host(host).dataDir,
  DOCKER_HOST: dockerHost(lab, host),
  WEAVE_PLUGIN_DIR: pluginDir(lab, host),
  // `ip netns exec` gives each router a mount namespace of its own: its volume pool is mounted in ours
  // (the machine's), under the lab's shared root, from where it reaches dockerd's namespace.
  WEAVE_MOUNT_NS: `/proc/${process.pid}/ns/mnt`,
  // the managed plugin's relay reaches this host's router here (bound into the plugin by `weave plugin install`)
  WEAVE_MANAGED_PLUGIN_SOCKET: join(lab.host(host).dataDir, 'run', 'plugin.sock'),
});

const env = (lab: Lab, host: string, extra: NodeJS.ProcessEnv = {}) => ({
  ...process.env,
  ...extra,
  ...hostVars(lab, host),
});

/** The docker CLI against a lab host's engine, as a user types it there. */
export const dockerOk = (lab: Lab, host: string, args: string[]): Promise<string> =>
  lab.execOk(host, ['docker', ...args], { env: env(lab, host), timeoutMs: 60_000 });

export const weave = (lab: Lab, host: string, args: string[]): Promise<ExecResult> =>
  lab.exec(host, [WEAVE, ...args], { env: env(lab, host), timeoutMs: 60_000 });

/** extraEnv: variables for this one run on top of the usual ones (e.g. WEAVE_PASSWORD for a launch). */
export const weaveOk = (lab: Lab, host: string, args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<string> =>
  lab.execOk(host, [WEAVE, ...args], { env: env(lab, host, extraEnv), timeoutMs: 60_000 });

export const report = async (lab: Lab, host: string): Promise<Report> =>
  JSON.parse(await weaveOk(lab, host, ['report'])) as Report;

/** Launches a router on each host; every host after the first is told the first one's address. */
export async function launchAll(
  lab: Lab,
  hosts = lab.hosts.map((h) => h.name),
  extra: string[] = [],
  extraEnv?: NodeJS.ProcessEnv,
): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const first = lab.host(hosts[0]).addrs[0];
  for (const [i, h] of hosts.entries()) {
    const out = await weaveOk(lab, h, ['launch', '--nickname', h, ...extra, ...(i === 0 ? [] : [first])], extraEnv);
    names.set(h, out.trim());
  }
  return names;
}

/** Waits until every router sees every other as an established connection. */
export async function waitForMesh(lab: Lab, hosts = lab.hosts.map((h) => h.name), timeoutMs = 15_000): Promise<void> {
  for (const h of hosts) {
    await waitFor(
      `${h} connected to ${hosts.length - 1} peers`,
      async () => {
        const r = await report(lab, h);
        return r.connections.filter((c) => c.state === 'established').length === hosts.length - 1;
      },
      timeoutMs,
    );
  }
}

/** A container c1 on each host, attached at 10.32.0.N/12, N being the host's place in hosts (from 1). */
export async function attachEach(lab: Lab, hosts: string[]): Promise<LabContainer[]> {
  const containers: LabContainer[] = [];
  for (const [i, h] of hosts.entries()) {
    const c = await lab.addContainer(h, 'c1');
    await weaveOk(lab, h, ['attach', `10.32.0.${i + 1}/12`, `netns:${c.netns}`]);
    containers.push(c);
  }
  return containers;
}

/**
 * Waits until every router knows every host as reachable in the topology (on a line not all are neighbours: waitForMesh
 * does not apply).
 */
export async function waitForReachable(
  lab: Lab,
  hosts = lab.hosts.map((h) => h.name),
  timeoutMs = 15_000,
): Promise<void> {
  for (const h of hosts) {
    await waitFor(
      `${h} knows all ${hosts.length} peers as reachable`,
      async () => (await report(lab, h)).peers.filter((p) => p.reachable).length === hosts.length,
      timeoutMs,
    );
  }
}

/** Pings until one answer comes back (ARP and MAC learning may need a moment), then returns. */
export async function waitForPing(lab: Lab, fromNetns: string, ip: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    `ping ${ip} from ${fromNetns}`,
    async () => (await lab.execIn(fromNetns, ['ping', '-c1', '-W1', ip])).code === 0,
    timeoutMs,
  );
}

/**
 * A host's power goes: its router (and supervisor), its Docker engine and every process of its
 * containers are killed at once, by PID. Its namespace stays for the lab's teardown.
 */
export async function killHost(lab: Lab, host: string): Promise<void> {
  const r = await report(lab, host);
  const engine = lab.dockerds.find((d) => d.host === host);
  const pids = [r.supervisorPid, r.pid];
  if (engine) {
    const ids = (await dockerOk(lab, host, ['ps', '-q'])).split('\n').filter(Boolean);
    for (const id of ids) pids.push(Number(await dockerOk(lab, host, ['inspect', '-f', '{{.State.Pid}}', id])));
    pids.push(Number(readFileSync(join(engine.dataRoot, 'docker.pid'), 'utf8')));
  }
  for (const pid of pids) {
    if (pid)
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
  }
}

/** With WEAVE_LAB_LOGS=DIR set, copies each host's router log there (before teardown), for a look afterwards. */
export async function keepLogs(lab: Lab): Promise<void> {
  const dir = process.env.WEAVE_LAB_LOGS;
  if (dir)
    for (const h of lab.hosts) await lab.exec(h.name, ['cp', join(h.dataDir, 'weave.log'), join(dir, `${h.name}.log`)]);
}
