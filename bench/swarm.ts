import '../common/polyfill.js';
// `node dist/bench/swarm.js [--replicas 30]`: Docker Swarm on the managed plugin beside `weave deploy`,
// in one lab of 3 hosts (h1 the Swarm manager). R web servers each way: the time from
// `weave deploy` / `docker service create` to each one answering at its address, fetched from a
// namespace on h1 on the overlay; then h3's power goes, and the time until every replica (weave
// deploy: the same addresses) or task (Swarm: new ones) of h3's runs elsewhere and answers. Both
// recover in the same minute, from the same death. Speed is printed, never asserted.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { percentile, WEB_SERVER } from '../lab/seeds.js';
import { createSwarmNetwork, createWebService, formSwarm, runningTasks, waitForPlugin } from '../lab/swarm.js';
import { dockerOk, killHost, launchAll, report, waitForMesh, weaveOk } from '../lab/weave.js';
import type { ReplicaView } from '../contract/report.js';
import { MANAGED_PLUGIN } from '../contract/managed-plugin.js';
import { intArg } from './args.js';

const USAGE = 'usage: node dist/bench/swarm.js [--replicas R]';
const HOSTS = ['h1', 'h2', 'h3'];
const SUBNET = '10.40.0.0/16';
// weave deploy's replicas: the same web server as Swarm's tasks (lab/seeds.ts's)
const WEB = WEB_SERVER.at(-1);

let R = 30;
try {
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--replicas') R = intArg('--replicas', argv[++i], 1, USAGE);
    else throw new Error(`unknown argument "${argv[i]}"\n${USAGE}`);
  }
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const stats = (ms: number[]) => `p50 ${s(percentile(ms, 50))}, max ${s(Math.max(...ms))}`;

const lab = await Lab.create({ hosts: 3 });
const docker = (host: string, args: string[]) => dockerOk(lab, host, args);

/** From netns, until the address answers with a body `ok` accepts (each try 1 s at most); ms since t0. */
async function answered(netns: string, ip: string, t0: number, ok: (body: string) => boolean): Promise<number> {
  await waitFor(
    `${ip} answering`,
    async () =>
      ok((await lab.execIn(netns, ['timeout', '1', 'busybox', 'wget', '-qO-', `http://${ip}/`])).stdout.trim()),
    180_000,
    100,
  );
  return Date.now() - t0;
}

/** Each task fetched from the moment it runs; resolves once `want` distinct ones answered. */
async function allTasksAnswer(service: string, netns: string, t0: number, want: number, skip: Set<string>) {
  const up = new Map<string, Promise<number>>();
  await waitFor(
    `${want} tasks of ${service} running`,
    async () => {
      for (const t of (await runningTasks(lab, 'h1', service)).filter((x) => !up.has(x.id) && !skip.has(x.id))) {
        const p = answered(netns, t.ip, t0, (b) => b.length > 0);
        p.catch(() => {});
        up.set(t.id, p);
      }
      return up.size >= want;
    },
    300_000,
    250,
  );
  return Promise.all(up.values());
}

try {
  await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
  await launchAll(lab, HOSTS, ['--volume-backend', 'dir']);
  await waitForMesh(lab);
  await formSwarm(lab, HOSTS);
  for (const h of HOSTS) await weaveOk(lab, h, ['plugin', 'install']);
  const nodeId = new Map<string, string>();
  for (const h of HOSTS) nodeId.set(h, (await docker(h, ['info', '-f', '{{.Swarm.NodeID}}'])).trim());
  await waitForPlugin(lab, 'h1', MANAGED_PLUGIN);
  await createSwarmNetwork(lab, 'h1', 'swarmnet', SUBNET);
  // one client on the overlay for both: an address in the default subnet and one in the Swarm network's
  const client = await lab.addContainer('h1', 'client');
  await weaveOk(lab, 'h1', ['attach', 'net:default', `net:${SUBNET}`, `netns:${client.netns}`]);

  // weave deploy
  const file = join(lab.host('h1').dataDir, 'bench.yml');
  writeFileSync(file, `web:\n  image: busybox:latest\n  cmd: sh -c '${WEB}'\n  replicas: ${R}\n`);
  const replicas = async () =>
    ((await report(lab, 'h1')).scheduler as { replicas: ReplicaView[] }).replicas.filter((r) => r.stack === 'bench');
  let t0 = Date.now();
  await weaveOk(lab, 'h1', ['deploy', file]);
  const deployUp = new Map<string, Promise<number>>();
  const rows = await waitFor(
    `all ${R} replicas running`,
    async () => {
      const rs = await replicas();
      for (const r of rs.filter((x) => x.state === 'running' && x.address && !deployUp.has(x.replica))) {
        const p = answered(client.netns, r.address!, t0, (b) => b.length > 0);
        p.catch(() => {});
        deployUp.set(r.replica, p);
      }
      return rs.length === R && deployUp.size === R ? rs : undefined;
    },
    300_000,
    250,
  );
  const deployMs = await Promise.all(deployUp.values());

  // Swarm
  t0 = Date.now();
  await createWebService(lab, 'h1', 'web', R, 'swarmnet');
  const swarmMs = await allTasksAnswer('web', client.netns, t0, R, new Set());
  console.log(`${R} web servers over 3 hosts, each way, fetched by address from a namespace on h1`);
  console.log(`  weave deploy          to each answering: ${stats(deployMs)}; all in ${s(Math.max(...deployMs))}`);
  console.log(`  docker service create to each answering: ${stats(swarmMs)}; all in ${s(Math.max(...swarmMs))}`);

  // h3's power goes: both ways recover from the same death
  const victims = rows.filter((r) => r.nickname === 'h3');
  const before = await runningTasks(lab, 'h1', 'web');
  const swarmVictims = before.filter((t) => t.node === nodeId.get('h3'));
  await killHost(lab, 'h3');
  const t1 = Date.now();
  const deployBack = Promise.all(victims.map((v) => answered(client.netns, v.address!, t1, (b) => b.length > 0)));
  // Swarm gives the replacements new addresses: wait for as many new tasks as h3 had
  const swarmBack = allTasksAnswer('web', client.netns, t1, swarmVictims.length, new Set(before.map((t) => t.id)));
  const [dBack, sBack] = await Promise.all([deployBack, swarmBack]);
  console.log(
    `h3 killed (it ran ${victims.length} replicas and ${swarmVictims.length} tasks): to each answering again elsewhere`,
  );
  console.log(`  weave deploy (same addresses): ${stats(dBack)}`);
  console.log(`  docker swarm (new addresses):  ${stats(sBack)}`);
} finally {
  await lab.down();
}
