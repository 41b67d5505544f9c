import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { CHECKOUT } from '../common/checkout.js';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerHost, dockerOk, launchAll, pluginDir, report, waitForMesh, weaveOk } from '../lab/weave.js';

const WEB = ['sh', '-c', 'echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'];
const COMPOSE_FILE = join(CHECKOUT, 'docker', 'compose-example', 'docker-compose.yml');

describe("Docker's network API on the overlay: the weavemesh plugin, docker run --network weave, compose", function () {
  this.timeout(240_000);
  let lab: Lab;
  const ids = new Map<string, string>();
  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab, ['h1', 'h2'], ['--volume-backend', 'dir']);
    await waitForMesh(lab);
  });

  const docker = (host: string, args: string[]) => dockerOk(lab, host, args);
  const run = async (host: string, args: string[]) => {
    const id = (await docker(host, ['run', '-d', ...args])).trim();
    ids.set(args[args.indexOf('--name') + 1], id);
    return id;
  };
  const ipOn = async (host: string, name: string, net = 'weave') =>
    (await docker(host, ['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name])).trim();
  const fetch = (host: string, from: string, addr: string) =>
    docker(host, ['exec', from, 'timeout', '5', 'wget', '-qO-', `http://${addr}/`]).catch(() => '');
  const allocated = async (host: string, ip: string) =>
    (await report(lab, host)).ipam.allocations.some((a) => a.address === ip);
  const weaveNetworks = async (host: string) =>
    (await docker(host, ['network', 'ls', '--filter', 'name=weave', '--format', '{{.Name}} {{.Driver}}']))
      .trim()
      .split('\n')
      .filter((l) => l.split(' ')[0] === 'weave');
  /** A plugin call as dockerd makes it, on the host's weavemesh.sock. */
  const call = (host: string, path: string, body: string) =>
    new Promise<{ status: number; body: { Err?: string } }>((resolve, reject) => {
      const req = http.request(
        { socketPath: join(pluginDir(lab, host), 'weavemesh.sock'), method: 'POST', path },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { Err?: string } }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });

  it('has the network weave on each host, on the weavemesh network and IPAM drivers, over our range', async () => {
    for (const h of ['h1', 'h2']) {
      // `weave launch` returns once the router answers; its subsystems (this one makes the network) start after
      await waitFor(`the network weave on ${h}`, async () => (await weaveNetworks(h)).length > 0, 30_000);
      assert.deepEqual(await weaveNetworks(h), ['weave weavemesh']);
      const ipam = await docker(h, [
        'network',
        'inspect',
        '-f',
        '{{.IPAM.Driver}} {{range .IPAM.Config}}{{.Subnet}}{{end}}',
        'weave',
      ]);
      assert.equal(ipam.trim(), 'weavemesh 10.32.0.0/12');
    }
  });

  it('docker run --network weave: our address, in weave ps, reachable across hosts by address and by name', async () => {
    await run('h1', ['--name', 'web1', '-h', 'web1', '--network', 'weave', 'busybox', ...WEB]);
    const wr2 = (await weaveOk(lab, 'h2', ['run', '-d', '--name', 'wr2', '-h', 'wr2', 'busybox', ...WEB])).trim();
    const dnsArgs = (await weaveOk(lab, 'h2', ['dns-args'])).trim().split(' ');
    await run('h2', ['--name', 'client2', '--network', 'weave', ...dnsArgs, 'busybox', 'sleep', '3600']);
    const ip1 = await ipOn('h1', 'web1');
    assert.match(ip1, /^10\.(3[2-9]|4[0-7])\./);
    assert.ok(await allocated('h1', ip1), 'allocated by our IPAM');
    await waitFor(
      'web1 in weave ps',
      async () => (await weaveOk(lab, 'h1', ['ps'])).includes(`${ids.get('web1')!.slice(0, 12)} `),
      10_000,
    );
    assert.match(await weaveOk(lab, 'h1', ['ps', 'web1']), new RegExp(`${ip1}/12`));
    await waitFor('web1 from h2 by address', async () => (await fetch('h2', 'client2', ip1)).includes('web1'), 15_000);
    await waitFor('web1 from h2 by name', async () => (await fetch('h2', 'client2', 'web1')).includes('web1'), 15_000);
    // weave run's containers and docker run's reach each other, by name too
    await waitFor('web1 from weave run', async () => (await fetch('h2', wr2, 'web1')).includes('web1'), 15_000);
    await waitFor('wr2 from docker run', async () => (await fetch('h2', 'client2', 'wr2')).includes('wr2'), 15_000);
  });

  it('--ip claims an address; a network of another subnet of our range works too; docker rm releases', async () => {
    await run('h1', ['--name', 'fixed', '--network', 'weave', '--ip', '10.32.9.9', 'busybox', ...WEB]);
    assert.equal(await ipOn('h1', 'fixed'), '10.32.9.9');
    await waitFor('fixed from h2', async () => (await fetch('h2', 'client2', '10.32.9.9')).includes('hello'), 15_000);
    const taken = await dockerOk(lab, 'h2', ['run', '--network', 'weave', '--ip', '10.32.9.9', 'busybox', 'true']).then(
      () => '',
      (err: Error) => err.message,
    );
    assert.match(taken, /10\.32\.9\.9 is held by another identity/);

    for (const h of ['h1', 'h2'])
      await docker(h, [
        'network',
        'create',
        '-d',
        'weavemesh',
        '--ipam-driver',
        'weavemesh',
        '--subnet',
        '10.40.0.0/16',
        'other',
      ]);
    await run('h1', ['--name', 'other1', '--network', 'other', 'busybox', ...WEB]);
    await run('h2', ['--name', 'other2', '--network', 'other', 'busybox', 'sleep', '3600']);
    const ip = await ipOn('h1', 'other1', 'other');
    assert.match(ip, /^10\.40\./);
    assert.ok(await allocated('h1', ip));
    await waitFor('other1 from h2', async () => (await fetch('h2', 'other2', ip)).includes('hello'), 15_000);

    await docker('h1', ['rm', '-f', 'other1', 'fixed']);
    assert.ok(!(await allocated('h1', ip)), `${ip} released`);
    assert.ok(!(await allocated('h1', '10.32.9.9')), '10.32.9.9 released');
    assert.ok(!(await weaveOk(lab, 'h1', ['ps'])).includes(ids.get('fixed')!.slice(0, 12)));
  });

  it('refuses wrong use with our message through Docker, leaving no network or address behind', async () => {
    const before = JSON.stringify((await report(lab, 'h1')).ipam.allocations);
    const fails = async (args: string[]) =>
      dockerOk(lab, 'h1', args).then(
        () => assert.fail(`docker ${args.join(' ')} succeeded`),
        (err: Error) => err.message,
      );
    assert.match(
      await fails([
        'network',
        'create',
        '-d',
        'weavemesh',
        '--ipam-driver',
        'weavemesh',
        '--subnet',
        '192.168.7.0/24',
        'bad',
      ]),
      /subnet 192\.168\.7\.0\/24 is outside weave's allocation range 10\.32\.0\.0\/12/,
    );
    assert.match(
      await fails(['network', 'create', '-d', 'weavemesh', '--subnet', '10.41.0.0/16', 'bad']),
      /weavemesh takes its addresses from weave's IPAM.*--ipam-driver weavemesh/,
    );
    // dockerd itself refuses to remove a network with a container on it
    assert.match(await fails(['network', 'rm', 'weave']), /active endpoints/);
    assert.deepEqual(await weaveNetworks('h1'), ['weave weavemesh']);
    assert.ok(!(await docker('h1', ['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('bad'));
    // plugin calls with bodies dockerd never sends: {"Err"} with status 200, as the protocol wants
    for (const [path, body, err] of [
      ['/IpamDriver.RequestAddress', 'garbage', /not JSON/],
      ['/IpamDriver.RequestAddress', '{"PoolID": 7}', /PoolID must be a string/],
      [
        '/IpamDriver.RequestAddress',
        '{"PoolID": "weave-10.32.0.0/12-10.32.0.0/12", "Address": "x"}',
        /invalid address/,
      ],
      ['/IpamDriver.RequestPool', '{"Pool": "10.32.0.0/33"}', /invalid subnet/],
      ['/NetworkDriver.Join', '{"EndpointID": "../../etc"}', /not a Docker id/],
      ['/NetworkDriver.Join', `{"EndpointID": "${'a'.repeat(64)}"}`, /not created by this router/],
      ['/NetworkDriver.CreateEndpoint', '[]', /not a JSON object/],
    ] as const) {
      const r = await call('h1', path, body);
      assert.equal(r.status, 200, `${path} ${body}`);
      assert.match(r.body.Err ?? '', err, `${path} ${body}`);
    }
    assert.equal((await call('h1', '/NetworkDriver.Nope', '{}')).status, 404);
    assert.equal(JSON.stringify((await report(lab, 'h1')).ipam.allocations), before, 'no address leaked');
  });

  it('keeps running containers attached through a router restart, with still one network weave', async () => {
    const ip1 = await ipOn('h1', 'web1');
    await weaveOk(lab, 'h1', ['stop']);
    await weaveOk(lab, 'h1', ['launch', '--nickname', 'h1', '--volume-backend', 'dir']);
    assert.deepEqual(await weaveNetworks('h1'), ['weave weavemesh'], 'not made twice');
    assert.ok(await allocated('h1', ip1), 'the address of a running container is kept');
    await waitFor(
      'web1 in weave ps after the restart',
      async () => (await weaveOk(lab, 'h1', ['ps'])).includes(`${ids.get('web1')!.slice(0, 12)} `),
      10_000,
    );
    await waitFor(
      'web1 from h2 after the restart',
      async () => (await fetch('h2', 'client2', ip1)).includes('web1'),
      15_000,
    );
    await waitFor('web1 by name after', async () => (await fetch('h2', 'client2', 'web1')).includes('web1'), 30_000);
    await docker('h1', ['rm', '-f', 'web1']);
    assert.ok(!(await allocated('h1', ip1)), 'released at docker rm');
  });

  it('docker-compose up of services on the network weave with a weave volume', async () => {
    const env = { DOCKER_HOST: dockerHost(lab, 'h1'), WEAVE_PLUGIN_DIR: pluginDir(lab, 'h1') };
    const compose = (args: string[]) =>
      lab.execOk('h1', ['docker-compose', '-f', COMPOSE_FILE, '-p', 'demo', ...args], { env, timeoutMs: 120_000 });
    try {
      await compose(['up', '-d']);
      await waitFor(
        'the client got the page',
        async () => (await compose(['logs', 'client'])).includes('hello from compose'),
        30_000,
      );
      assert.match(await weaveOk(lab, 'h1', ['volume', 'ls']), /demo_data/);
      const web = await ipOn('h1', 'demo_web_1');
      await waitFor('compose web from h2', async () => (await fetch('h2', 'client2', web)).includes('compose'), 15_000);
    } finally {
      await compose(['down']).catch(() => {});
    }
    assert.deepEqual(await weaveNetworks('h1'), ['weave weavemesh'], 'an external network stays');
  });
});
