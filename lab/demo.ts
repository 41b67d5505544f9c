import '../common/polyfill.js';
// `make demo`: three hosts, a router on each, a container on each, pings across, then the status.
import { Lab } from './lab.js';
import { launchAll, waitForMesh, waitForPing, weaveOk } from './weave.js';

const keep = process.argv.includes('--keep');
// Bold headings on a terminal only: a log file or a pipe gets no escape codes.
const say = (s: string) => console.log(process.stdout.isTTY ? `\n\x1b[1m### ${s}\x1b[0m` : `\n### ${s}`);

const lab = await Lab.create({ hosts: 3 }, keep ? { id: 'demo', keep: true } : {});
try {
  say(`lab ${lab.id}: 3 hosts on the underlay ${lab.hosts.map((h) => `${h.name}=${h.addrs[0]}`).join(' ')}`);
  say('weave launch on each host (h2 and h3 are given h1\'s address; they find each other)');
  const names = await launchAll(lab);
  for (const [h, n] of names) console.log(`  ${h}: weave launch -> ${n}`);
  await waitForMesh(lab);

  say('weave attach: one container on each host, each with its own IP from IPAM (10.32.0.0/12)');
  const containers = [];
  for (const h of ['h1', 'h2', 'h3']) {
    const c = await lab.addContainer(h, 'web');
    const ip = (await weaveOk(lab, h, ['attach', `netns:${c.netns}`])).trim();
    console.log(`  ${h}: weave attach netns:${c.netns} -> ${ip}`);
    containers.push({ host: h, netns: c.netns, ip });
  }

  say('every container pings every other, across hosts');
  for (const from of containers) {
    for (const to of containers.filter((x) => x !== from)) {
      await waitForPing(lab, from.netns, to.ip);
      const r = await lab.execIn(from.netns, ['ping', '-c2', '-i0.2', to.ip]);
      const rtt = /= [\d.]+\/([\d.]+)\//.exec(r.stdout)?.[1];
      console.log(`  ${from.host}/web (${from.ip}) -> ${to.host}/web (${to.ip}): ${/(\d+) received/.exec(r.stdout)?.[1]}/2 replies, avg ${rtt} ms`);
    }
  }

  say('weave status (on h1)');
  process.stdout.write(await weaveOk(lab, 'h1', ['status']));
  say('weave status connections (on h1)');
  process.stdout.write(await weaveOk(lab, 'h1', ['status', 'connections']));
  say('weave status ipam (on h1)');
  process.stdout.write(await weaveOk(lab, 'h1', ['status', 'ipam']));
  if (keep) console.log(`\nThe lab stays up: try "bin/lab exec --id demo h1 -- bin/weave status", then "bin/lab down --id demo".`);
} finally {
  if (!keep) await lab.down();
}
