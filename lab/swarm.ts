// A Swarm of lab hosts: each host's own dockerd (lab.startDockerd) joins, the first one the manager.
// Nodes all report the machine's hostname, so each gets a `host=<lab host>` label (and any others
// asked for) to tell them apart in placement constraints. Swarm's own overlay (its ingress network)
// gets a data-path port of its own, so its VXLAN never takes the one the routers' fastdp uses.
import { type Lab, waitFor } from './lab.js';
import { dockerOk } from './weave.js';
import { WEB_SERVER } from './seeds.js';
import { MANAGED_PLUGIN } from '../contract/managed-plugin.js';

export const SWARM_DATA_PATH_PORT = 4790;

/** Makes hosts[0] the manager and joins the rest as workers; labels: extra node labels per host. */
export async function formSwarm(
  lab: Lab,
  hosts: string[],
  labels: Record<string, Record<string, string>> = {},
): Promise<void> {
  const [manager, ...workers] = hosts;
  const addr = lab.host(manager).addrs[0];
  await dockerOk(lab, manager, [
    'swarm',
    'init',
    '--advertise-addr',
    addr,
    '--data-path-port',
    String(SWARM_DATA_PATH_PORT),
  ]);
  const token = (await dockerOk(lab, manager, ['swarm', 'join-token', '-q', 'worker'])).trim();
  for (const w of workers)
    await dockerOk(lab, w, [
      'swarm',
      'join',
      '--advertise-addr',
      lab.host(w).addrs[0],
      '--token',
      token,
      `${addr}:2377`,
    ]);
  for (const h of hosts) {
    const id = (await dockerOk(lab, h, ['info', '-f', '{{.Swarm.NodeID}}'])).trim();
    const add = Object.entries({ host: h, ...labels[h] }).flatMap(([k, v]) => ['--label-add', `${k}=${v}`]);
    await dockerOk(lab, manager, ['node', 'update', ...add, id]);
  }
}

/** Each host leaves (workers first), so that no swarm state outlives the lab. Best effort. */
export async function leaveSwarm(lab: Lab, hosts: string[]): Promise<void> {
  for (const h of [...hosts].reverse()) await dockerOk(lab, h, ['swarm', 'leave', '--force']).catch(() => {});
}

/** Until every node of the Swarm reports the plugin: its scheduler places tasks only on those (nodes report every ~20 s). */
export async function waitForPlugin(lab: Lab, manager: string, plugin: string): Promise<void> {
  await waitFor(
    `every node to offer ${plugin} to Swarm`,
    async () => {
      const ids = (await dockerOk(lab, manager, ['node', 'ls', '-q'])).split('\n').filter(Boolean);
      for (const id of ids)
        if (
          !(
            await dockerOk(lab, manager, ['node', 'inspect', '-f', '{{json .Description.Engine.Plugins}}', id])
          ).includes(`"Name":"${plugin}"`)
        )
          return false;
      return ids.length > 0;
    },
    90_000,
    1000,
  );
}

/**
 * An attachable container (busybox, sleeping) on a swarm network. dockerd gives the manager 20 s to
 * place the attachment, and a worker that is re-registering with the manager (as after its node
 * description changed) can miss that: Docker answers "context deadline exceeded", and a user runs it
 * again, as this does.
 */
export async function runAttached(lab: Lab, host: string, name: string, net: string): Promise<void> {
  await waitFor(
    `${name} attached to ${net}`,
    async () => {
      await dockerOk(lab, host, ['rm', '-f', name]).catch(() => '');
      return dockerOk(lab, host, ['run', '-d', '--name', name, '--network', net, 'busybox', 'sleep', '3600']).then(
        () => true,
        () => false,
      );
    },
    90_000,
    1000,
  );
}

/** The tasks of a service that Swarm wants running and that run, as the manager sees them: node id and address. */
export async function runningTasks(
  lab: Lab,
  manager: string,
  service: string,
): Promise<{ id: string; node: string; ip: string }[]> {
  const ids = (await dockerOk(lab, manager, ['service', 'ps', '-q', '--filter', 'desired-state=running', service]))
    .split('\n')
    .filter(Boolean);
  if (!ids.length) return [];
  const rows = await dockerOk(lab, manager, [
    'inspect',
    '-f',
    '{{.ID}} {{.NodeID}} {{.Status.State}} {{range .NetworksAttachments}}{{range .Addresses}}{{.}}{{end}}{{end}}',
    ...ids,
  ]);
  return rows
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === 'running' && f[3])
    .map(([id, node, , cidr]) => ({ id, node, ip: cidr.split('/')[0] }));
}

/** `docker network create` of a network on the managed plugin (its IPAM too), as the manager; its argv is returned for showing. */
export async function createSwarmNetwork(lab: Lab, manager: string, name: string, subnet: string): Promise<string[]> {
  const argv = [
    'network',
    'create',
    '-d',
    MANAGED_PLUGIN,
    '--ipam-driver',
    MANAGED_PLUGIN,
    '--attachable',
    '--subnet',
    subnet,
    name,
  ];
  await dockerOk(lab, manager, argv);
  return argv;
}

/**
 * `docker service create` of n busybox web servers (each saying "hello from <its hostname>") on net,
 * named by DNS round robin (Swarm's virtual IPs are not a plugin network's here), quick to stop.
 */
export async function createWebService(
  lab: Lab,
  manager: string,
  name: string,
  n: number,
  net: string,
): Promise<string[]> {
  const argv = [
    'service',
    'create',
    '-d',
    '--name',
    name,
    '--replicas',
    String(n),
    '--network',
    net,
    '--endpoint-mode',
    'dnsrr',
    '--stop-grace-period',
    '1s',
    ...WEB_SERVER,
  ];
  await dockerOk(lab, manager, argv);
  return argv;
}
