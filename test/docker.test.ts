import assert from 'node:assert/strict';
import { Lab, waitFor } from '../lab/lab.js';
import { dockerOk, launchAll, report, waitForMesh, weave, weaveOk } from '../lab/weave.js';

const GRACE_S = 6;
const WEB = ['sh', '-c', 'echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'];

describe('Docker containers in the lab: weave run, attach, ps, expose across two hosts with a dockerd each', function () {
  this.timeout(180_000);
  let lab: Lab;
  const ip = new Map<string, string>();
  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab, ['h1', 'h2'], ['--release-grace', String(GRACE_S)]);
    await waitForMesh(lab);
  });

  const ps = async (host: string, ...names: string[]) =>
    (await weaveOk(lab, host, ['ps', ...names])).trim().split('\n').filter(Boolean);
  const ipOf = async (host: string, name: string) => (await ps(host, name))[0]?.split(' ')[2]?.split('/')[0];
  const fetch = (host: string, from: string, addr: string) =>
    dockerOk(lab, host, ['exec', from, 'timeout', '3', 'wget', '-qO-', `http://${addr}/`]);
  const allocated = async (host: string, addr: string) =>
    (await report(lab, host)).ipam.allocations.some((a) => a.address === addr);

  it('runs containers on two hosts that reach each other by IP as soon as weave run returns', async () => {
    const id = (await weaveOk(lab, 'h1', ['run', '-d', '--name', 'web', '-h', 'web', 'busybox', ...WEB])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    await weaveOk(lab, 'h2', ['run', '--name', 'client', '-e', 'ROLE=client', 'busybox', 'sleep', '3600']);
    ip.set('web', (await ipOf('h1', 'web'))!);
    ip.set('client', (await ipOf('h2', 'client'))!);
    assert.match(ip.get('web')!, /^10\.(3[2-9]|4[0-7])\.\d+\.\d+$/);
    assert.equal(await fetch('h2', 'client', ip.get('web')!), 'hello from web\n');
    const [line] = await ps('h1', 'web');
    assert.match(
      line,
      new RegExp(`^${id.slice(0, 12)} ([0-9a-f]{2}:){5}[0-9a-f]{2} ${ip.get('web')!.replace(/\./g, '\\.')}/12$`),
    );
    const mtu = await dockerOk(lab, 'h1', ['exec', 'web', 'cat', '/sys/class/net/ethwe/mtu']);
    assert.equal(Number(mtu), (await report(lab, 'h1')).mtu);
  });

  it('attaches and detaches a container started with docker run, by name, with a given address', async () => {
    await dockerOk(lab, 'h1', ['run', '-d', '--network', 'none', '--name', 'plain', 'busybox', 'sleep', '3600']);
    assert.equal((await weaveOk(lab, 'h1', ['attach', '10.32.200.7/12', 'plain'])).trim(), '10.32.200.7');
    await waitFor(
      'ping 10.32.200.7 from h2',
      async () =>
        (
          await lab.exec('h2', ['docker', 'exec', 'client', 'ping', '-c1', '-W1', '10.32.200.7'], {
            env: { DOCKER_HOST: `unix://${lab.host('h2').dataDir}/docker.sock` },
          })
        ).code === 0,
    );
    assert.equal((await weaveOk(lab, 'h1', ['detach', 'plain'])).trim(), '10.32.200.7');
    assert.deepEqual(await ps('h1', 'plain'), []);
    assert.ok(!(await allocated('h1', '10.32.200.7')), 'detach released the address');
  });

  it('keeps the address through docker stop and docker start', async () => {
    await dockerOk(lab, 'h1', ['stop', '-t', '0', 'web']);
    await waitFor('web detached', async () => (await ps('h1', 'web')).length === 0);
    await dockerOk(lab, 'h1', ['start', 'web']);
    await waitFor('web attached again', async () => (await ipOf('h1', 'web')) === ip.get('web'));
    await waitFor(
      'web answers again',
      async () => (await fetch('h2', 'client', ip.get('web')!)) === 'hello from web\n',
    );
  });

  it('releases the address of a container that stays dead after the grace period, and at once on docker rm -f', async () => {
    await weaveOk(lab, 'h1', ['run', '--name', 'brief', 'busybox', 'sleep', '3600']);
    const brief = (await ipOf('h1', 'brief'))!;
    await dockerOk(lab, 'h1', ['stop', '-t', '0', 'brief']);
    assert.ok(await allocated('h1', brief), 'kept during the grace period');
    await waitFor(
      'brief released after the grace',
      async () => !(await allocated('h1', brief)),
      (GRACE_S + 5) * 1000,
      250,
    );
    await dockerOk(lab, 'h1', ['rm', '-f', 'web']);
    await waitFor('web released at once', async () => !(await allocated('h1', ip.get('web')!)), 3000);
  });

  it('finds attached containers again after a router restart, with their addresses', async () => {
    await weaveOk(lab, 'h2', ['stop']);
    await weaveOk(lab, 'h2', [
      'launch',
      '--nickname',
      'h2',
      '--release-grace',
      String(GRACE_S),
      lab.host('h1').addrs[0],
    ]);
    await waitFor('client found again', async () => (await ipOf('h2', 'client')) === ip.get('client'));
    await waitForMesh(lab);
    await weaveOk(lab, 'h1', ['run', '--name', 'web2', '-h', 'web2', 'busybox', ...WEB]);
    assert.equal(await fetch('h2', 'client', (await ipOf('h1', 'web2'))!), 'hello from web2\n');
  });

  it('exposes the host on the overlay and hides it again', async () => {
    const addr = (await weaveOk(lab, 'h1', ['expose'])).trim();
    assert.match(addr, /^10\.(3[2-9]|4[0-7])\.\d+\.\d+$/);
    assert.match((await ps('h1'))[0], new RegExp(`^weave:expose \\S+ ${addr.replace(/\./g, '\\.')}/12$`));
    await waitFor(
      'h2 container pings the host',
      async () =>
        (
          await lab.exec('h2', ['docker', 'exec', 'client', 'ping', '-c1', '-W1', addr], {
            env: { DOCKER_HOST: `unix://${lab.host('h2').dataDir}/docker.sock` },
          })
        ).code === 0,
    );
    assert.equal((await weaveOk(lab, 'h1', ['hide'])).trim(), addr);
    assert.ok(!(await ps('h1')).some((l) => l.startsWith('weave:expose')));
  });

  it('refuses bad input with one clear line, a non-zero exit, and nothing left behind', async () => {
    const before = JSON.stringify((await report(lab, 'h1')).ipam.allocations);
    const containers = await dockerOk(lab, 'h1', ['ps', '-aq']);
    const cases: [string[], RegExp][] = [
      [['attach', 'nosuch'], /^weave: unknown target "nosuch": no such container/],
      [
        ['run', '10.99.0.1/24', 'busybox', 'sleep', '60'],
        /^weave: 10\.99\.0\.1\/24 is outside the allocation range 10\.32\.0\.0\/12/,
      ],
      [['run', `${ip.get('client')}/12`, 'busybox', 'sleep', '60'], /^weave: .*held by another identity/],
      [['run', '--privileged', 'busybox'], /^weave: unsupported docker run flag "--privileged"/],
      [['run', '-d'], /^weave: missing image/],
      [['run', '--memory', 'lots', 'busybox'], /^weave: invalid --memory "lots"/],
      [['run', 'nosuchimage'], /^weave: No such image: nosuchimage/],
    ];
    for (const [args, re] of cases) {
      const r = await weave(lab, 'h1', args);
      assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, re, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(await dockerOk(lab, 'h1', ['ps', '-aq']), containers, 'no container left behind');
    assert.equal(JSON.stringify((await report(lab, 'h1')).ipam.allocations), before, 'no address left allocated');
  });
});
