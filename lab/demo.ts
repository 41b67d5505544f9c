import '../common/polyfill.js';
// `make demo`: the seeds' story in a lab of four hosts, each with its own Docker engine and a router
// labelled with its os (h1, h2 ubuntu; h3, h4 centos). The network: a container on each host, pings
// across, the status. The scheduler: a manifest of 8 web servers spread half and half over the os
// label, deployed, each fetched at its own address; then h4's power goes and its replicas answer
// again from other hosts at the same addresses, with the time it took. The volumes, last: the seeds'
// Flocker demo, a container on h1 writes to a weave volume and a container started on h2 reads the
// same data (the volume moved to h2 when Docker mounted it there). And, where dockerd has Swarm mode,
// a short Swarm act: the managed plugin, a swarm network and a service of 6 tasks on the overlay.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor } from './lab.js';
import { dockerOk, killHost, report, waitForMesh, waitForPing, weaveOk } from './weave.js';
import type { ReplicaView } from '../contract/report.js';
import { MANAGED_PLUGIN } from '../contract/managed-plugin.js';
import { createSwarmNetwork, createWebService, formSwarm, runAttached, runningTasks, waitForPlugin } from './swarm.js';

const keep = process.argv.includes('--keep');
// Bold headings on a terminal only: a log file or a pipe gets no escape codes.
const say = (s: string) => console.log(process.stdout.isTTY ? `\n\x1b[1m### ${s}\x1b[0m` : `\n### ${s}`);
const indent = (text: string) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const clock = (t: number) => new Date(t).toISOString().slice(11, 23);

const HOSTS = ['h1', 'h2', 'h3', 'h4'];
const OS: Record<string, string> = { h1: 'ubuntu', h2: 'ubuntu', h3: 'centos', h4: 'centos' };
const VICTIM = 'h4'; // not h1: the client that fetches the web servers lives there
const REPLICAS = 8;
const MANIFEST = `# shop: the seeds' web servers, half on Ubuntu, half on CentOS
web:
  image: busybox:latest
  cmd: sh -c 'echo "$WEAVE_REPLICA $WEAVE_HOST" > /www/index.html && exec httpd -f -p 80 -h /www'
  replicas: ${REPLICAS}
  spread: os
`;

type Row = ReplicaView;

const lab = await Lab.create({ hosts: HOSTS.length }, keep ? { id: 'demo', keep: true } : {});
try {
  const replicas = async (host = 'h1'): Promise<Row[]> =>
    ((await report(lab, host)).scheduler as { replicas: Row[] }).replicas.filter((r) => r.stack === 'shop');
  const fetchFrom = async (netns: string, ip: string) =>
    (await lab.execIn(netns, ['timeout', '1', 'busybox', 'wget', '-qO-', `http://${ip}/`])).stdout.trim();
  const byOs = (rows: Row[]) =>
    ['ubuntu', 'centos']
      .map((os) => {
        const hosts = HOSTS.filter((h) => OS[h] === os);
        const on = rows.filter((r) => hosts.includes(r.nickname));
        return `  ${os} (${hosts.join(', ')}): ${on.length} replicas (${hosts.map((h) => `${h} ${on.filter((r) => r.nickname === h).length}`).join(', ')})`;
      })
      .join('\n');

  say(
    `lab ${lab.id}: ${HOSTS.length} hosts on the underlay ${lab.hosts.map((h) => `${h.name}=${h.addrs[0]}`).join(' ')}`,
  );
  say("a Docker engine on each host (its own dockerd in the host's namespace, with a busybox image)");
  let t = Date.now();
  await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
  console.log(`  ${HOSTS.length} engines up in ${secs(Date.now() - t)}`);

  say("weave launch on each host, labelled with its os (h2..h4 are given h1's address; they find each other)");
  const first = lab.host('h1').addrs[0];
  for (const h of HOSTS) {
    const args = ['launch', '--nickname', h, '--label', `os=${OS[h]}`, ...(h === 'h1' ? [] : [first])];
    console.log(`  ${h}: weave ${args.join(' ')} -> ${(await weaveOk(lab, h, args)).trim()}`);
  }
  await waitForMesh(lab);

  say('weave attach: a container (a namespace) on each host, each with its own IP from IPAM (10.32.0.0/12)');
  const containers: { host: string; netns: string; ip: string }[] = [];
  for (const h of HOSTS) {
    const c = await lab.addContainer(h, 'c1');
    const ip = (await weaveOk(lab, h, ['attach', `netns:${c.netns}`])).trim();
    console.log(`  ${h}: weave attach netns:${c.netns} -> ${ip}`);
    containers.push({ host: h, netns: c.netns, ip });
  }

  say('every container pings every other, across hosts (2 pings each, average round trip)');
  for (const from of containers) {
    const results: string[] = [];
    for (const to of containers.filter((x) => x !== from)) {
      await waitForPing(lab, from.netns, to.ip);
      const r = await lab.execIn(from.netns, ['ping', '-c2', '-i0.2', to.ip]);
      const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
      results.push(`${to.host} ${/(\d+) received/.exec(r.stdout)?.[1]}/2 ${rtt} ms`);
    }
    console.log(`  ${from.host}/c1 (${from.ip}) -> ${results.join(', ')}`);
  }

  say('weave status (on h1)');
  process.stdout.write(await weaveOk(lab, 'h1', ['status']));
  say('weave status connections (on h1)');
  process.stdout.write(await weaveOk(lab, 'h1', ['status', 'connections']));

  // The scheduler: cattle, not pets.
  const client = containers[0]; // h1's container fetches the web servers
  const file = join(lab.host('h1').dataDir, 'shop.yml');
  writeFileSync(file, MANIFEST);
  say(`the manifest, ${file}: ${REPLICAS} web servers spread evenly over the hosts' os label`);
  console.log(indent(MANIFEST));

  say('weave deploy shop.yml (on h1): the scheduler decides what runs where');
  t = Date.now();
  process.stdout.write(`${indent(await weaveOk(lab, 'h1', ['deploy', file]))}\n`);
  const rows = await waitFor(
    `all ${REPLICAS} replicas running`,
    async () => {
      const rs = await replicas();
      return rs.length === REPLICAS && rs.every((r) => r.state === 'running' && r.address) ? rs : undefined;
    },
    120_000,
    250,
  );
  console.log(`  all ${REPLICAS} running after ${secs(Date.now() - t)}`);

  say('weave stack ps shop (on h3: every host knows the whole stack)');
  process.stdout.write(await weaveOk(lab, 'h3', ['stack', 'ps', 'shop']));

  say('half on Ubuntu, half on CentOS');
  console.log(byOs(rows));

  say(`each web server answers at its own address, on port 80 (busybox wget from h1/c1, ${client.ip})`);
  for (const r of [...rows].sort((a, b) => Number(a.replica.split('/').at(-1)) - Number(b.replica.split('/').at(-1)))) {
    const body = await waitFor(
      `${r.replica} answering at ${r.address}`,
      async () => fetchFrom(client.netns, r.address),
      10_000,
      200,
    );
    console.log(`  ${r.address} -> ${body}`);
  }

  const victims = rows.filter((r) => r.nickname === VICTIM);
  say(`${VICTIM} dies: its router, its Docker engine and its containers are killed (SIGKILL)`);
  console.log(`  ${VICTIM} ran ${victims.map((v) => `${v.replica} (${v.address})`).join(', ')}`);
  await killHost(lab, VICTIM);
  const t0 = Date.now();
  console.log(
    `  killed at ${clock(t0)}; now each of its replicas is fetched from h1/c1 until it answers from another host`,
  );
  const moved = new Set<string>();
  let deadAfter: number | undefined;
  await waitFor(
    `the replicas of ${VICTIM} answering from elsewhere`,
    async () => {
      await Promise.all(
        victims
          .filter((v) => !moved.has(v.replica))
          .map(async (v) => {
            const body = await fetchFrom(client.netns, v.address);
            if (!body.startsWith(`${v.replica} `) || body.endsWith(` ${VICTIM}`) || moved.has(v.replica)) return;
            moved.add(v.replica);
            console.log(
              `  ${v.address}: ${v.replica} moved ${VICTIM} -> ${body.split(' ')[1]}, answering again after ${secs(Date.now() - t0)}`,
            );
          }),
      );
      if (deadAfter === undefined) {
        const d = ((await report(lab, 'h1')).scheduler as { dead?: { nickname: string; at: number }[] }).dead?.find(
          (x) => x.nickname === VICTIM,
        );
        if (d) deadAfter = d.at - t0;
      }
      return moved.size === victims.length;
    },
    90_000,
    100,
  );
  if (deadAfter !== undefined) console.log(`  (the others declared ${VICTIM} dead ${secs(deadAfter)} after the kill)`);

  const after = await waitFor(
    `all ${REPLICAS} replicas running again, none on ${VICTIM}`,
    async () => {
      const rs = await replicas();
      return rs.length === REPLICAS && rs.every((r) => r.state === 'running' && r.address && r.nickname !== VICTIM)
        ? rs
        : undefined;
    },
    60_000,
    250,
  );
  say('weave stack ps shop (on h1): same addresses, no replica on h4');
  process.stdout.write(await weaveOk(lab, 'h1', ['stack', 'ps', 'shop']));
  console.log(byOs(after));

  // The volumes: data is not a host's either.
  const VOLUME = 'flocker-demo';
  const RUN = ['run', '--rm', '--volume-driver', 'weave', '-v', `${VOLUME}:/data`, 'busybox'];
  const shown = (args: string[]) => `docker ${args.map((a) => (/[\s"$;>&|()]/.test(a) ? `'${a}'` : a)).join(' ')}`;
  const volumeLs = async (host: string, owner: string) =>
    waitFor(
      `${VOLUME} on ${owner} as ${host} sees it`,
      async () => {
        const ls = await weaveOk(lab, host, ['volume', 'ls']);
        return new RegExp(`^${VOLUME}\\s+${owner}\\s`, 'm').test(ls) ? ls : undefined;
      },
      15_000,
      200,
    );

  say(`the seeds' Flocker demo: a container on h1 writes to the volume ${VOLUME} (weave's Docker volume plugin)`);
  const write = [
    ...RUN,
    'sh',
    '-c',
    'echo "written by a container on h1 at $(date -u +%T) UTC" > /data/greeting && cat /data/greeting',
  ];
  console.log(`  h1$ ${shown(write)}`);
  const written = (await dockerOk(lab, 'h1', write)).trim();
  console.log(indent(written));

  say('weave volume ls (on h3: every host knows where each volume is)');
  process.stdout.write(`${indent(await volumeLs('h3', 'h1'))}\n`);

  say(`a container on h2 reads ${VOLUME}: mounting it on h2 moves it there from h1 first`);
  const read = [...RUN, 'cat', '/data/greeting'];
  console.log(`  h2$ ${shown(read)}`);
  t = Date.now();
  const got = (await dockerOk(lab, 'h2', read)).trim();
  const took = Date.now() - t;
  console.log(indent(got));
  if (got !== written) throw new Error(`h2 read "${got}", h1 wrote "${written}"`);
  console.log(`  the same data, written on h1, read on h2; docker run on h2 took ${secs(took)} in all`);
  const routerLog = readFileSync(join(lab.host('h2').dataDir, 'weave.log'), 'utf8');
  const hop = [
    ...routerLog.matchAll(
      new RegExp(
        `volume ${VOLUME} moved here from (\\S+): snapshot \\d+ in (\\d+) ms, last increment and hand-over in (\\d+) ms`,
        'g',
      ),
    ),
  ].at(-1);
  if (hop)
    console.log(
      `  the move ${hop[1]} -> h2 (h2's router log): ${hop[2]} ms copying a snapshot, ${hop[3]} ms for the last increment and the hand-over`,
    );

  say('weave volume ls (on h3): the volume is on h2 now');
  process.stdout.write(`${indent(await volumeLs('h3', 'h2'))}\n`);

  // Swarm, last: the same overlay under the engine's own scheduler, when this dockerd has Swarm mode.
  const SWARM = ['h1', 'h2', 'h3']; // h4 is dead
  say(`Docker Swarm on the overlay: ${SWARM.join(', ')} form a Swarm (h1 manages), weave plugin install on each`);
  const formed = await formSwarm(lab, SWARM, { h1: { os: 'ubuntu' }, h2: { os: 'ubuntu' }, h3: { os: 'centos' } }).then(
    () => true,
    (err: Error) => (console.log(`  Swarm is not available here, so no Swarm act: ${err.message}`), false),
  );
  if (formed) {
    for (const h of SWARM)
      console.log(`  ${h}: weave plugin install -> ${(await weaveOk(lab, h, ['plugin', 'install'])).trim()}`);
    await waitForPlugin(lab, 'h1', MANAGED_PLUGIN);
    console.log(`  h1$ ${shown(await createSwarmNetwork(lab, 'h1', 'swarmnet', '10.40.0.0/16'))}`);
    t = Date.now();
    console.log(`  h1$ ${shown(await createWebService(lab, 'h1', 'web', 6, 'swarmnet'))}`);
    await runAttached(lab, 'h1', 'swarmclient', 'swarmnet');
    const tasks = await waitFor(
      '6 tasks of web running',
      async () => {
        const ts = await runningTasks(lab, 'h1', 'web');
        return ts.length === 6 ? ts : undefined;
      },
      90_000,
      500,
    );
    const nodes = new Map<string, string>();
    for (const h of SWARM) nodes.set((await dockerOk(lab, h, ['info', '-f', '{{.Swarm.NodeID}}'])).trim(), h);
    say('each task answers at its own address from our IPAM, fetched from an attachable container on h1');
    for (const task of tasks) {
      const body = await waitFor(
        `the task at ${task.ip}`,
        async () =>
          (
            await dockerOk(lab, 'h1', [
              'exec',
              'swarmclient',
              'timeout',
              '3',
              'wget',
              '-qO-',
              `http://${task.ip}/`,
            ]).catch(() => '')
          ).trim() || undefined,
        30_000,
        200,
      );
      console.log(`  ${task.ip} (on ${nodes.get(task.node)}) -> ${body}`);
    }
    console.log(`  all 6 answering ${secs(Date.now() - t)} after docker service create`);
    const named = await dockerOk(lab, 'h1', ['exec', 'swarmclient', 'timeout', '3', 'wget', '-qO-', 'http://web/']);
    console.log(`  and by the service's name: http://web/ -> ${named.trim()}`);
  }

  if (keep)
    console.log(
      `\nThe lab stays up: try "bin/lab exec --id demo h1 -- bin/weave stack ps shop" or "... h1 -- bin/weave volume ls", then "bin/lab down --id demo".`,
    );
} finally {
  if (!keep) await lab.down();
}
