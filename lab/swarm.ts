// A Swarm of lab hosts: each host's own dockerd (lab.startDockerd) joins, the first one the manager.
// Nodes all report the machine's hostname, so each gets a `host=<lab host>` label (and any others
// asked for) to tell them apart in placement constraints. Swarm's own overlay (its ingress network)
// gets a data-path port of its own, so its VXLAN never takes the one the routers' fastdp uses.
import type { Lab } from './lab.js';
import { dockerOk } from './weave.js';

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
