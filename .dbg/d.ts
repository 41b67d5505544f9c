import { writeFileSync } from 'node:fs';
import { Lab } from '../lab/lab.js';
import { launchAll, waitForMesh, weaveOk, dockerOk } from '../lab/weave.js';
const lab = await Lab.create({ hosts: 2 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
try {
  await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
  await launchAll(lab, ['h1', 'h2']);
  await waitForMesh(lab);
  await weaveOk(lab, 'h1', ['run', '-d', '--name', 'web1', '-l', 'weave.namespace=shop', '-l', 'app=web', 'busybox', 'sleep', '3600']);
  await weaveOk(lab, 'h2', ['run', '-d', '--name', 'c2', 'busybox', 'sleep', '3600']);
  const ip = (await weaveOk(lab, 'h1', ['ps', 'web1'])).trim().split(' ')[2].split('/')[0];
  await dockerOk(lab, 'h1', ['exec', '-d', 'web1', 'sh', '-c', 'sleep 3600 | nc -l -p 9000 > /tmp/got']);
  await sleep(500);
  await dockerOk(lab, 'h2', ['exec', '-d', 'c2', 'sh', '-c', `while true; do echo tick; sleep 0.1; done | nc ${ip} 9000`]);
  const got = async () => (await dockerOk(lab, 'h1', ['exec', 'web1', 'wc', '-c', '/tmp/got'])).trim();
  await sleep(1000);
  console.log('before', await got());
  writeFileSync('/tmp/pol.yaml', 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {}\n');
  await weaveOk(lab, 'h1', ['policy', 'apply', '/tmp/pol.yaml']);
  for (let i = 0; i < 4; i++) { await sleep(1000); console.log('after', await got()); }
  console.log(await lab.execOk('h1', ['/usr/sbin/nft', 'list', 'ruleset']));
  console.log(await lab.execOk('h1', ['sh', '-c', 'ls /proc/sys/net/netfilter/ | head -50; cat /proc/sys/net/netfilter/nf_conntrack_count']));
  console.log(await dockerOk(lab, 'h2', ['exec', 'c2', 'netstat', '-tn']));
} finally {
  await lab.down();
}
