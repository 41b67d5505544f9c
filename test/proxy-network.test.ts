import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, waitFor } from '../lab/lab.js';
import { WEAVE, dockerHost, launchAll, waitForMesh, weaveOk } from '../lab/weave.js';

describe('plain docker run through the proxy joins the overlay (network adapter, two hosts with a dockerd each)', function () {
  this.timeout(180_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab, ['h1', 'h2']);
    await waitForMesh(lab);
  });

  const proxy = (h: string) => `unix://${join(lab.host(h).dataDir, 'weave.sock')}`;
  /** The docker CLI as a user runs it after eval $(weave env). */
  const docker = (h: string, args: string[]) =>
    lab.exec(h, ['docker', ...args], { env: { DOCKER_HOST: proxy(h) }, timeoutMs: 60_000 });
  const dockerOk = async (h: string, args: string[]) => {
    const r = await docker(h, args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const logs = (h: string, name: string) => dockerOk(h, ['logs', name]);

  it('eval $(weave env) points the docker CLI at the proxy, and --restore points it back', async () => {
    const env = await weaveOk(lab, 'h1', ['env']);
    assert.equal(env, `export DOCKER_HOST=${proxy('h1')} ORIG_DOCKER_HOST=${dockerHost(lab, 'h1')}\n`);
    const r = await lab.exec(
      'h1',
      [
        'bash',
        '-c',
        `eval $(${WEAVE} env) && docker version --format '{{.Server.Version}}' && echo "$DOCKER_HOST" && eval $(${WEAVE} env --restore) && echo "$DOCKER_HOST"`,
      ],
      { env: { WEAVE_DATA_DIR: lab.host('h1').dataDir, DOCKER_HOST: dockerHost(lab, 'h1') } },
    );
    assert.equal(r.code, 0, r.stderr);
    const [version, through, back] = r.stdout.trim().split('\n');
    assert.match(version, /^\d+\.\d+/);
    assert.deepEqual([through, back], [proxy('h1'), dockerHost(lab, 'h1')]);
  });

  it('web servers on two hosts reach each other by address before their first line of output', async () => {
    await dockerOk('h1', [
      'run',
      '-d',
      '--name',
      'web1',
      '-e',
      'WEAVE_CIDR=10.32.5.1/12',
      'busybox',
      'sh',
      '-c',
      'ip -4 -o addr show ethwe | grep -o "10.32.5.1/12"; echo "hello from web1" > /www/index.html; exec httpd -f -p 80 -h /www',
    ]);
    await waitFor('web1 printed its address', async () => (await logs('h1', 'web1')).includes('10.32.5.1/12'));
    assert.equal(
      (await logs('h1', 'web1')).split('\n')[0],
      '10.32.5.1/12',
      'ethwe was up with its address before the first line',
    );
    await dockerOk('h2', [
      'run',
      '-d',
      '--name',
      'web2',
      'busybox',
      'sh',
      '-c',
      'timeout 5 wget -qO- http://10.32.5.1/; exec sleep 3600',
    ]);
    await waitFor('web2 fetched web1', async () => (await logs('h2', 'web2')) !== '', 10_000);
    assert.equal(
      (await logs('h2', 'web2')).split('\n')[0],
      'hello from web1',
      'the first thing web2 did was reach web1 on the other host',
    );
    assert.match(await weaveOk(lab, 'h2', ['ps', 'web2']), / 10\.(3[2-9]|4[0-7])\.\d+\.\d+\/12\n$/);
    await waitFor(
      'web1 answers by name from h2',
      async () =>
        (await docker('h2', ['exec', 'web2', 'timeout', '3', 'wget', '-qO-', 'http://web1/'])).stdout ===
        'hello from web1\n',
    );
  });

  it('publishes -p 8080:80 on the host for an overlay container', async () => {
    await dockerOk('h1', [
      'run',
      '-d',
      '--name',
      'pub',
      '-p',
      '8080:80',
      'busybox',
      'sh',
      '-c',
      'echo published > /www/index.html; exec httpd -f -p 80 -h /www',
    ]);
    const get = (h: string, url: string) => lab.exec(h, ['timeout', '3', 'busybox', 'wget', '-qO-', url]);
    await waitFor(
      'port 8080 answers on h1',
      async () => (await get('h1', 'http://127.0.0.1:8080/')).stdout === 'published\n',
    );
    assert.equal(
      (await get('h2', `http://${lab.host('h1').addrs[0]}:8080/`)).stdout,
      'published\n',
      'and from another host, at the host address',
    );
    await dockerOk('h1', ['rm', '-f', 'pub']);
    await waitFor(
      'the port is closed with the container',
      async () => (await get('h1', 'http://127.0.0.1:8080/')).code !== 0,
    );
  });

  it('WEAVE_CIDR=none leaves a container off the overlay', async () => {
    const out = await dockerOk('h1', [
      'run',
      '--rm',
      '-e',
      'WEAVE_CIDR=none',
      'busybox',
      'sh',
      '-c',
      'ls /sys/class/net',
    ]);
    assert.equal(out.trim().split(/\s+/).sort().join(' '), 'lo');
  });

  it('refuses a bad WEAVE_CIDR with one line from the daemon, and creates nothing', async () => {
    const before = (await dockerOk('h1', ['ps', '-aq'])).trim().split('\n').filter(Boolean).length;
    const r = await docker('h1', ['run', '-d', '-e', 'WEAVE_CIDR=10.32.0.300/12', 'busybox', 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error response from daemon: invalid WEAVE_CIDR "10\.32\.0\.300\/12"/);
    assert.equal(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => !/^(See|Run) 'docker run --help'|^$/.test(l)).length,
      1,
      r.stderr,
    );
    assert.equal((await dockerOk('h1', ['ps', '-aq'])).trim().split('\n').filter(Boolean).length, before);
  });

  it('removes a container it could not attach, and says why', async () => {
    await dockerOk('h1', [
      'run',
      '-d',
      '--name',
      'holder',
      '-e',
      'WEAVE_CIDR=10.32.6.6/12',
      'busybox',
      'sleep',
      '3600',
    ]);
    const r = await docker('h1', [
      'run',
      '-d',
      '--name',
      'clash',
      '-e',
      'WEAVE_CIDR=10.32.6.6/12',
      'busybox',
      'sleep',
      '3600',
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error response from daemon: weave could not attach container [0-9a-f]{12} \(removed\): /);
    assert.equal(
      (await dockerOk('h1', ['ps', '-aq', '--filter', 'name=clash'])).trim(),
      '',
      'no half-made container is left',
    );
  });
});

describe("the Docker API proxy's adapters file", function () {
  this.timeout(60_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  it('a bad one stops weave launch with one line naming the place, before anything is made', async () => {
    lab = await Lab.create({ hosts: 1 });
    const file = join(lab.host('h1').dataDir, 'adapters.yml');
    await lab.execOk('h1', [
      'sh',
      '-c',
      `mkdir -p ${lab.host('h1').dataDir} && printf 'version: 1\\nendpoints:\\n  "POST /*/containers/create":\\n    pre: [nosuch]\\n' > ${file}`,
    ]);
    const links = async () =>
      (await lab.execOk('h1', ['ip', '-br', 'link']))
        .split('\n')
        .map((l) => l.split(/\s+/)[0])
        .filter(Boolean)
        .sort();
    const before = await links();
    const r = await lab.exec('h1', [WEAVE, 'launch', '--proxy-adapters', file], {
      env: { WEAVE_DATA_DIR: lab.host('h1').dataDir },
    });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `weave: ${file}:4:11: endpoint "POST /*/containers/create": unknown adapter "nosuch" (known: weave)\n`,
    );
    assert.deepEqual(await links(), before, 'no bridge, no vxlan device');
  });
});
