import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { CHECKOUT } from '../common/checkout.js';
import { Lab, waitFor } from '../lab/lab.js';
import {
  createSwarmNetwork,
  createWebService,
  formSwarm,
  leaveSwarm,
  runAttached,
  waitForPlugin,
} from '../lab/swarm.js';
import { dockerOk, killHost, launchAll, report, waitForMesh, weaveOk } from '../lab/weave.js';

const HOSTS = ['h1', 'h2', 'h3'];
const PLUGIN = 'weave-net:latest';
const STACK_FILE = join(CHECKOUT, 'docker', 'swarm-example', 'docker-stack.yml');

describe('Docker Swarm on the overlay: the managed plugin weave-net:latest on 3 lab hosts', function () {
  this.timeout(300_000);
  let lab: Lab;
  let live = HOSTS;
  after(async () => {
    if (lab) await leaveSwarm(lab, live);
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 3 });
    await Promise.all(HOSTS.map((h) => lab.startDockerd(h)));
    await launchAll(lab, HOSTS, ['--volume-backend', 'dir']);
    await waitForMesh(lab);
    await formSwarm(lab, HOSTS, { h1: { os: 'ubuntu' }, h2: { os: 'centos' }, h3: { os: 'ubuntu' } });
  });

  const docker = (host: string, args: string[]) => dockerOk(lab, host, args);
  /** The running tasks of a service on each live host: container name and address on the network. */
  const tasks = async (service: string, net: string) => {
    const out: { host: string; name: string; ip: string }[] = [];
    for (const host of live) {
      const names = (
        await docker(host, [
          'ps',
          '--filter',
          `label=com.docker.swarm.service.name=${service}`,
          '--format',
          '{{.Names}}',
        ])
      )
        .split('\n')
        .filter(Boolean);
      for (const name of names) {
        const ip = (
          await docker(host, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name])
        ).trim();
        out.push({ host, name, ip });
      }
    }
    return out;
  };
  const fetch = (host: string, from: string, addr: string) =>
    docker(host, ['exec', from, 'timeout', '3', 'wget', '-qO-', `http://${addr}/`]).catch(() => '');
  /** Addresses our IPAM holds for Swarm (the manager's requests), cluster-wide. */
  const swarmHeld = async (prefix: string) => {
    const held = new Set<string>();
    for (const h of live)
      for (const a of (await report(lab, h)).ipam.allocations)
        if (a.address.startsWith(prefix) && a.container.startsWith('docker-swarm:')) held.add(a.address);
    return held;
  };
  /** n tasks running, on distinct addresses, each answering from `from` on h3 by address. */
  const allAnswer = async (service: string, n: number, net = 'swarmnet', from = 'client3') => {
    let seen = 'nothing yet';
    try {
      return await waitFor(
        `${n} tasks of ${service} answering`,
        async () => {
          const t = await tasks(service, net);
          seen = `tasks ${t.map((x) => `${x.host}:${x.ip}`).join(' ') || 'none'}`;
          if (t.length !== n || new Set(t.map((x) => x.ip)).size !== n) return false;
          for (const x of t)
            if (!(await fetch('h3', from, x.ip)).includes('hello from')) return ((seen += `; ${x.ip} silent`), false);
          return t;
        },
        90_000,
        1000,
      );
    } catch (err) {
      const states = await docker('h1', [
        'service',
        'ps',
        '--no-trunc',
        '--format',
        '{{.CurrentState}} {{.Error}}',
        service,
      ]);
      const log = await lab.execOk('h1', ['cat', join(lab.host('h1').dataDir, 'dockerd.log')]);
      const allocErrors = log.split('\n').filter((l) => /level=error.*alloc/i.test(l));
      throw new Error(
        `${(err as Error).message}: last seen ${seen}; swarm says ${states.split('\n').slice(0, 12).join(' | ')}; the manager's last allocation errors: ${allocErrors.slice(-3).join(' | ') || 'none'}`,
      );
    }
  };

  it('weave plugin install builds and enables weave-net:latest on each host; every node offers it to Swarm', async () => {
    for (const h of HOSTS) {
      assert.match(await weaveOk(lab, h, ['plugin', 'install']), /installed and enabled weave-net:latest/);
      assert.match(await weaveOk(lab, h, ['plugin', 'install']), /is installed and enabled/);
      assert.equal((await docker(h, ['plugin', 'inspect', '-f', '{{.Enabled}}', PLUGIN])).trim(), 'true');
    }
    await waitForPlugin(lab, 'h1', PLUGIN);
  });

  it('docker network create -d weave-net:latest --attachable: a swarm network on our IPAM; a subnet outside our range is refused with our message', async () => {
    await createSwarmNetwork(lab, 'h1', 'swarmnet', '10.40.0.0/16');
    assert.equal((await docker('h1', ['network', 'inspect', '-f', '{{.Scope}}', 'swarmnet'])).trim(), 'swarm');
    // Swarm allocates a network's pool after the create call has answered: our refusal is in the engine's log
    await docker('h1', ['network', 'create', '-d', PLUGIN, '--ipam-driver', PLUGIN, '--subnet', '10.99.0.0/16', 'bad']);
    await waitFor(
      'the refusal of 10.99.0.0/16',
      async () =>
        (await lab.execOk('h1', ['cat', join(lab.host('h1').dataDir, 'dockerd.log')])).includes(
          "subnet 10.99.0.0/16 is outside weave's allocation range 10.32.0.0/12",
        ),
      30_000,
    );
    await docker('h1', ['network', 'rm', 'bad']);
  });

  it('docker service create --replicas 6: tasks on every host, each reachable from another host by address and by the service name', async () => {
    await createWebService(lab, 'h1', 'web', 6, 'swarmnet');
    await runAttached(lab, 'h3', 'client3', 'swarmnet');
    const t = await allAnswer('web', 6);
    assert.deepEqual([...new Set(t.map((x) => x.host))].sort(), HOSTS, 'spread over the three hosts');
    for (const x of t) assert.match(x.ip, /^10\.40\./);
    const held = await swarmHeld('10.40.');
    for (const x of t) assert.ok(held.has(x.ip), `${x.ip} is held in our IPAM`);
    // the service's name: Docker's DNS in the container, answering with the tasks' addresses
    const named = await docker('h3', ['exec', 'client3', 'nslookup', 'web', '127.0.0.11']);
    for (const x of t) assert.ok(named.includes(x.ip), `web resolves to ${x.ip}`);
    assert.match(await fetch('h3', 'client3', 'web'), /hello from/);
  });

  it('docker service scale down and up: no address twice, none left over', async () => {
    await docker('h1', ['service', 'scale', '-d', 'web=2']);
    const two = await allAnswer('web', 2);
    const held = () => swarmHeld('10.40.');
    // the tasks' addresses, client3's and nothing else once the stopped tasks are gone
    await waitFor('the 4 stopped tasks to give their addresses back', async () => (await held()).size === 3, 60_000);
    await docker('h1', ['service', 'scale', '-d', 'web=8']);
    const eight = await allAnswer('web', 8);
    for (const x of two)
      assert.ok(
        eight.some((y) => y.ip === x.ip && y.name === x.name),
        'the 2 kept theirs',
      );
    assert.equal((await held()).size, 9);
  });

  it("a router restarts under running tasks: they still answer, and a scale down then frees only the stopped tasks' addresses", async () => {
    const before = await allAnswer('web', 8);
    await weaveOk(lab, 'h2', ['stop']);
    await weaveOk(lab, 'h2', ['launch', '--nickname', 'h2', '--volume-backend', 'dir']);
    await waitForMesh(lab);
    const after = await allAnswer('web', 8);
    assert.deepEqual(
      after.map((x) => x.ip).sort(),
      before.map((x) => x.ip).sort(),
      'the same tasks, the same addresses',
    );
    // h2's uses were read back from its engine: the release of a stopped task's use on h2 frees nothing twice
    await docker('h1', ['service', 'scale', '-d', 'web=4']);
    const four = await allAnswer('web', 4);
    await waitFor(
      "the 4 stopped tasks' addresses given back, the running ones' kept",
      async () => {
        const held = await swarmHeld('10.40.');
        return held.size === 5 && four.every((x) => held.has(x.ip));
      },
      60_000,
    );
    await docker('h1', ['service', 'scale', '-d', 'web=8']);
    await allAnswer('web', 8);
  });

  it('docker stack deploy of the seeds: half on the ubuntu nodes, half on centos, all reachable', async () => {
    await docker('h1', ['stack', 'deploy', '-c', STACK_FILE, 'seeds']);
    await runAttached(lab, 'h3', 'seedclient', 'seeds_weave');
    const ubuntu = await allAnswer('seeds_web-ubuntu', 3, 'seeds_weave', 'seedclient');
    const centos = await allAnswer('seeds_web-centos', 3, 'seeds_weave', 'seedclient');
    assert.ok(ubuntu.every((x) => x.host !== 'h2'));
    assert.ok(centos.every((x) => x.host === 'h2'));
    for (const x of [...ubuntu, ...centos]) assert.match(x.ip, /^10\.41\./);
    await docker('h3', ['rm', '-f', 'seedclient']);
    await docker('h1', ['stack', 'rm', 'seeds']).catch(() => ''); // its network goes once its tasks have
    await waitFor(
      "the stack's network to go",
      async () =>
        !(await docker('h1', ['network', 'ls', '--format', '{{.Name}}'])).includes('seeds_weave') ||
        (await docker('h1', ['network', 'rm', 'seeds_weave']).then(
          () => true,
          () => false,
        )),
      60_000,
      1000,
    );
  });

  it("a service's named volume on weave-net:latest moves with its task to another host, its data with it", async () => {
    await docker('h1', [
      'service',
      'create',
      '-d',
      '--name',
      'vol',
      '--constraint',
      'node.labels.host==h1',
      '--network',
      'swarmnet',
      '--stop-grace-period',
      '1s',
      '--mount',
      `type=volume,source=swarmdata,target=/data,volume-driver=${PLUGIN}`,
      'busybox',
      'sh',
      '-c',
      'echo run >> /data/log && exec sleep 3600',
    ]);
    const log = (host: string) =>
      waitFor(
        `the vol task on ${host} to have written its line`,
        async () => {
          const [t] = await tasks('vol', 'swarmnet').then((x) => x.filter((y) => y.host === host));
          return t ? (await docker(host, ['exec', t.name, 'cat', '/data/log']).catch(() => '')) || false : false;
        },
        90_000,
        1000,
      );
    assert.equal(await log('h1'), 'run\n');
    await docker('h1', [
      'service',
      'update',
      '-d',
      '--constraint-rm',
      'node.labels.host==h1',
      '--constraint-add',
      'node.labels.host==h3',
      'vol',
    ]);
    assert.equal(await log('h3'), 'run\nrun\n', "the first task's line came along");
    await docker('h1', ['service', 'rm', 'vol']);
  });

  it("a plugin call with a bad body gets our one-line error from the router's managed socket", async () => {
    const socketPath = join(lab.host('h1').dataDir, 'run', 'plugin.sock');
    const call = (path: string, body: string) =>
      new Promise<{ Err?: string }>((resolve, reject) => {
        const req = http.request({ socketPath, method: 'POST', path }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c));
          res.on('end', () => resolve(JSON.parse(text) as { Err?: string }));
        });
        req.on('error', reject);
        req.end(body);
      });
    assert.match((await call('/IpamDriver.RequestAddress', '{"PoolID": 7}')).Err ?? '', /PoolID must be a string/);
    assert.match((await call('/NetworkDriver.CreateEndpoint', '[1,2]')).Err ?? '', /not a JSON object/);
    assert.match(
      (await call('/IpamDriver.ReleaseAddress', '{"PoolID":"weave-10.40.0.0/16-10.40.0.0/16"}')).Err ?? '',
      /Address is missing/,
    );
  });

  it('a node dies (its dockerd and router killed): Swarm runs its tasks elsewhere, and they answer', async () => {
    const before = await tasks('web', 'swarmnet');
    assert.ok(
      before.some((x) => x.host === 'h2'),
      'h2 runs some of the tasks',
    );
    await killHost(lab, 'h2');
    live = ['h1', 'h3'];
    const after = await allAnswer('web', 8);
    assert.ok(after.every((x) => x.host !== 'h2'));
  });

  it('docker service rm: every address the service held is given back (and the network in use is not removed before)', async () => {
    const refused = await docker('h1', ['network', 'rm', 'swarmnet']).then(
      () => 'removed',
      (e: Error) => e.message,
    );
    assert.match(refused, /in use/);
    await docker('h1', ['service', 'rm', 'web']);
    await docker('h3', ['rm', '-f', 'client3']);
    // h2's tasks stay Swarm's (the node may come back) until the node is removed from the Swarm
    const h2 = (await docker('h1', ['node', 'ls', '--filter', 'node.label=host=h2', '-q'])).trim();
    if (h2) await docker('h1', ['node', 'rm', '--force', h2]);
    await waitFor('no address held for Swarm', async () => (await swarmHeld('10.40.')).size === 0, 60_000);
  });
});
