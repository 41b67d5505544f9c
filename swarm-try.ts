import './common/polyfill.js';
import { Lab } from './lab/lab.js';
import { dockerOk, launchAll, waitForMesh, weaveOk } from './lab/weave.js';
import { formSwarm } from './lab/swarm.js';
const lab = await Lab.create({ hosts: 3 }, { id: 'sw', keep: true });
const hosts = ['h1', 'h2', 'h3'];
await Promise.all(hosts.map((h) => lab.startDockerd(h)));
await launchAll(lab, hosts, ['--volume-backend', 'dir']);
await waitForMesh(lab);
await formSwarm(lab, hosts);
for (const h of hosts) console.log(await weaveOk(lab, h, ['plugin', 'install']));
console.log(
  await dockerOk(lab, 'h1', [
    'network',
    'create',
    '-d',
    'weave-net:latest',
    '--ipam-driver',
    'weave-net:latest',
    '--attachable',
    '--subnet',
    '10.40.0.0/16',
    'swarmnet',
  ]),
);
console.log('ok');
process.exit(0);
