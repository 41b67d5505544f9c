import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, waitFor } from '../lab/lab.js';
import type { LabContainer } from '../lab/lab.js';
import { launchAll, report, waitForMesh, waitForPing } from '../lab/weave.js';

const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cni', 'weave-net.js');
const NATIVE = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'cni', 'build', 'weave-net');
const VERSIONS = ['0.3.1', '0.4.0', '1.0.0', '1.1.0'];
/** Both plugins pass the same tests: the TypeScript one (the reference) and the native one; `tag` keeps their ids apart. */
const PLUGINS = [
  { name: 'TypeScript', tag: 't', argv: [process.execPath, PLUGIN] },
  { name: 'native', tag: 'n', argv: [NATIVE] },
];

interface CniOut {
  code: number;
  json: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}
type Result = {
  cniVersion: string;
  interfaces: { name: string; mac: string; sandbox: string }[];
  ips: { address: string; gateway: string; interface: number; version?: string }[];
  routes: { dst: string; gw: string }[];
};

describe('CNI plugins: conformance against the real binaries, real namespaces and a live router', function () {
  this.timeout(180_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });
  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await launchAll(lab, ['h1', 'h2']);
    await waitForMesh(lab);
  });

  const nsPath = (c: LabContainer) => `/var/run/netns/${c.netns}`;
  /** Runs the plugin in a lab host as a runtime does: command and ids in the environment, config on stdin. */
  async function run(
    argv: string[],
    host: string,
    command: string,
    conf: object | string,
    o: { id?: string; netns?: string; ifname?: string } = {},
  ): Promise<CniOut> {
    const env: Record<string, string> = {
      CNI_COMMAND: command,
      CNI_PATH: '/usr/lib/cni',
      CNI_IFNAME: o.ifname ?? 'eth0',
    };
    if (o.id !== undefined) env.CNI_CONTAINERID = o.id;
    if (o.netns !== undefined) env.CNI_NETNS = o.netns;
    const r = await lab.exec(host, argv, {
      env,
      input: typeof conf === 'string' ? conf : JSON.stringify(conf),
      timeoutMs: 30_000,
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
    } catch {
      /* asserted by the caller */
    }
    return { code: r.code, json, stdout: r.stdout, stderr: r.stderr };
  }
  const conf = (v: string, extra: object = {}) => ({ cniVersion: v, name: 'weave', type: 'weave-net', ...extra });
  const ok = (r: CniOut) => {
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    return r.json as Result;
  };
  const err = (r: CniOut, code: number, msg: RegExp) => {
    assert.notEqual(r.code, 0, r.stdout);
    assert.equal(r.json?.code, code, r.stdout);
    assert.match(String(r.json?.msg), msg);
  };
  const held = async (host: string, id: string) =>
    (await report(lab, host)).ipam.allocations.filter((a) => a.container.startsWith(`cni:${id}:`)).map((a) => a.cidr);
  const inNs = (host: string, c: LabContainer, argv: string[]) =>
    lab.execOk(host, ['ip', 'netns', 'exec', c.netns, ...argv]);

  for (const plugin of PLUGINS) {
    describe(`the ${plugin.name} plugin`, () => {
      const cni = (...a: Parameters<typeof run> extends [string[], ...infer R] ? R : never) => run(plugin.argv, ...a);
      const t = (name: string) => `${plugin.tag}${name}`;
      for (const v of VERSIONS) {
        it(`${v}: ADD gives an address, a default route through the bridge and the overlay MTU; CHECK; DEL is idempotent and releases`, async () => {
          const c = await lab.addContainer('h1', t(`v${v.replace(/\./g, '')}`));
          const id = t(`ctr-${v}`);
          const res = ok(await cni('h1', 'ADD', conf(v), { id, netns: nsPath(c) }));
          assert.equal(res.cniVersion, v);
          assert.equal(res.interfaces[0].name, 'eth0');
          assert.equal(res.interfaces[0].sandbox, nsPath(c));
          assert.match(res.ips[0].address, /^10\.(3[2-9]|4[0-7])\.\d+\.\d+\/12$/);
          assert.equal(res.ips[0].interface, 0);
          assert.equal(res.ips[0].version, v < '1.0.0' ? '4' : undefined, 'ips carry a version before 1.0.0 only');
          assert.deepEqual(res.routes, [{ dst: '0.0.0.0/0', gw: res.ips[0].gateway }]);
          const link = JSON.parse(await inNs('h1', c, ['ip', '-j', 'addr', 'show', 'eth0']))[0];
          assert.equal(link.address, res.interfaces[0].mac);
          assert.equal(link.mtu, (await report(lab, 'h1')).mtu);
          assert.ok(
            link.addr_info.some(
              (a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}` === res.ips[0].address,
            ),
          );
          assert.match(
            await inNs('h1', c, ['ip', 'route', 'show', 'default']),
            new RegExp(`^default via ${res.ips[0].gateway.replace(/\./g, '\\.')} dev eth0`),
          );
          assert.deepEqual(await held('h1', id), [res.ips[0].address]);
          await waitForPing(lab, c.netns, res.ips[0].gateway);
          if (v >= '0.4.0') {
            assert.equal((await cni('h1', 'CHECK', conf(v, { prevResult: res }), { id, netns: nsPath(c) })).code, 0);
            await inNs('h1', c, ['ip', 'addr', 'del', res.ips[0].address, 'dev', 'eth0']);
            err(
              await cni('h1', 'CHECK', conf(v, { prevResult: res }), { id, netns: nsPath(c) }),
              101,
              /does not have 10\./,
            );
          } else {
            err(
              await cni('h1', 'CHECK', conf(v, { prevResult: res }), { id, netns: nsPath(c) }),
              1,
              /CHECK needs CNI version 0\.4\.0/,
            );
          }
          for (let i = 0; i < 2; i++)
            assert.equal(
              (await cni('h1', 'DEL', conf(v, { prevResult: res }), { id, netns: nsPath(c) })).code,
              0,
              `DEL #${i + 1}`,
            );
          assert.deepEqual(await held('h1', id), [], 'released');
          assert.equal(
            (await lab.exec('h1', ['ip', 'netns', 'exec', c.netns, 'ip', 'link', 'show', 'eth0'])).code,
            1,
            'interface gone',
          );
        });
      }

      it('reaches a CNI container on another host, and a DEL with the namespace gone or CNI_NETNS empty still succeeds', async () => {
        const [a, b] = [await lab.addContainer('h1', t('xa')), await lab.addContainer('h2', t('xb'))];
        ok(await cni('h1', 'ADD', conf('1.0.0'), { id: t('xa'), netns: nsPath(a) }));
        const rb = ok(await cni('h2', 'ADD', conf('1.0.0'), { id: t('xb'), netns: nsPath(b) }));
        await waitForPing(lab, a.netns, rb.ips[0].address.split('/')[0]);
        await lab.execOk('h2', ['ip', 'netns', 'del', b.netns]);
        assert.equal((await cni('h2', 'DEL', conf('1.0.0'), { id: t('xb'), netns: nsPath(b) })).code, 0);
        assert.equal((await cni('h1', 'DEL', conf('1.0.0'), { id: t('xa'), netns: '' })).code, 0);
        assert.deepEqual([...(await held('h1', t('xa'))), ...(await held('h2', t('xb')))], []);
      });

      it('ADD refuses an interface that exists, taking nothing; concurrent ADDs get distinct addresses', async () => {
        const c = await lab.addContainer('h1', t('taken'));
        await inNs('h1', c, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
        err(
          await cni('h1', 'ADD', conf('1.1.0'), { id: t('taken'), netns: nsPath(c) }),
          100,
          /has an interface eth0 already/,
        );
        assert.deepEqual(await held('h1', t('taken')), []);
        const cs = await Promise.all(Array.from({ length: 6 }, (_, i) => lab.addContainer('h1', t(`par${i}`))));
        const rs = await Promise.all(
          cs.map((x, i) => cni('h1', 'ADD', conf('1.1.0'), { id: t(`par${i}`), netns: nsPath(x) })),
        );
        const addrs = rs.map((r) => ok(r).ips[0].address);
        assert.equal(new Set(addrs).size, 6, addrs.join(' '));
        await Promise.all(cs.map((x, i) => cni('h1', 'DEL', conf('1.1.0'), { id: t(`par${i}`), netns: nsPath(x) })));
      });

      it('VERSION, STATUS and GC (with the current and the older attachments key)', async () => {
        const ver = ok(await cni('h1', 'VERSION', { cniVersion: '1.1.0' })) as unknown as {
          supportedVersions: string[];
        };
        assert.deepEqual(ver.supportedVersions, ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
        assert.equal((await cni('h1', 'STATUS', conf('1.1.0'))).code, 0);
        err(await cni('h1', 'STATUS', conf('1.1.0', { apiAddr: '127.0.0.1:1' })), 50, /does not answer/);
        const cs = await Promise.all(['gc1', 'gc2', 'gc3'].map((n) => lab.addContainer('h1', t(n))));
        for (const [i, c] of cs.entries())
          ok(await cni('h1', 'ADD', conf('1.1.0'), { id: t(`gc${i + 1}`), netns: nsPath(c) }));
        assert.equal(
          (
            await cni(
              'h1',
              'GC',
              conf('1.1.0', {
                'cni.dev/valid-attachments': [
                  { containerID: t('gc1'), ifname: 'eth0' },
                  { containerID: t('gc3'), ifname: 'eth0' },
                ],
              }),
            )
          ).code,
          0,
        );
        assert.deepEqual(
          [
            (await held('h1', t('gc1'))).length,
            (await held('h1', t('gc2'))).length,
            (await held('h1', t('gc3'))).length,
          ],
          [1, 0, 1],
        );
        assert.equal(
          (await cni('h1', 'GC', conf('1.1.0', { 'cni.dev/attachments': [{ containerID: t('gc1'), ifname: 'eth0' }] })))
            .code,
          0,
        );
        assert.deepEqual([(await held('h1', t('gc1'))).length, (await held('h1', t('gc3'))).length], [1, 0]);
        err(
          await cni('h1', 'GC', conf('1.0.0', { 'cni.dev/valid-attachments': [] })),
          1,
          /GC needs CNI version 1\.1\.0/,
        );
      });

      it("answers bad input with the spec's error codes as JSON on stdout, and logs on stderr", async () => {
        const c = await lab.addContainer('h1', t('bad'));
        err(await cni('h1', 'ADD', conf('1.0.0'), { netns: nsPath(c) }), 4, /CNI_CONTAINERID is not set/);
        err(await cni('h1', 'ADD', '{not json', { id: t('bad'), netns: nsPath(c) }), 6, /not JSON/);
        err(
          await cni('h1', 'ADD', conf('0.2.0'), { id: t('bad'), netns: nsPath(c) }),
          1,
          /CNI version 0\.2\.0 is not supported/,
        );
        err(
          await cni('h1', 'FROB', conf('1.0.0'), { id: t('bad'), netns: nsPath(c) }),
          4,
          /unknown CNI_COMMAND "FROB"/,
        );
        err(
          await cni('h1', 'ADD', conf('1.0.0'), { id: t('bad'), netns: '/var/run/netns/nonexistent' }),
          3,
          /does not exist/,
        );
        err(
          await cni('h1', 'ADD', conf('1.0.0', { apiAddr: '127.0.0.1:1' }), { id: t('bad'), netns: nsPath(c) }),
          11,
          /does not answer at 127\.0\.0\.1:1/,
        );
        const r = await cni('h1', 'ADD', conf('1.0.0'), { netns: nsPath(c) });
        assert.match(r.stderr, /^weave-net: ADD: CNI_CONTAINERID is not set$/m);
        assert.deepEqual(await held('h1', t('bad')), []);
      });

      it('chains: portmap after ours publishes a container port on the host', async () => {
        const port = plugin.tag === 't' ? 8080 : 8081; // the other's DNAT rule stays
        const c = await lab.addContainer('h1', t('web'));
        const res = ok(await cni('h1', 'ADD', conf('1.0.0'), { id: t('web'), netns: nsPath(c) }));
        await lab.execOk('h1', ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
        await lab.execOk('h1', [
          'sh',
          '-c',
          `mkdir -p ${lab.root}/www && echo hello from cni > ${lab.root}/www/index.html`,
        ]);
        lab.spawn('h1', [
          'ip',
          'netns',
          'exec',
          c.netns,
          'busybox',
          'httpd',
          '-f',
          '-p',
          '80',
          '-h',
          `${lab.root}/www`,
        ]);
        const pm = {
          cniVersion: '1.0.0',
          name: 'weave',
          type: 'portmap',
          snat: true,
          capabilities: { portMappings: true },
          runtimeConfig: { portMappings: [{ hostPort: port, containerPort: 80, protocol: 'tcp' }] },
          prevResult: res,
        };
        const r = await lab.exec('h1', ['/usr/lib/cni/portmap'], {
          env: {
            CNI_COMMAND: 'ADD',
            CNI_CONTAINERID: t('web'),
            CNI_NETNS: nsPath(c),
            CNI_IFNAME: 'eth0',
            CNI_PATH: '/usr/lib/cni',
          },
          input: JSON.stringify(pm),
        });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.deepEqual((JSON.parse(r.stdout) as Result).ips, res.ips, 'portmap passed our result through');
        const url = `http://${lab.host('h1').addrs[0]}:${port}/`;
        await waitFor(
          'the published port answers from h2',
          async () =>
            (await lab.exec('h2', ['timeout', '3', 'busybox', 'wget', '-qO-', url])).stdout === 'hello from cni\n',
        );
      });
    });
  }

  it('the native plugin prints byte for byte what the TypeScript one prints, where neither needs the router', async () => {
    const down = { apiAddr: '127.0.0.1:1' };
    const cases: [string, object | string, { id?: string; netns?: string }][] = [
      ['VERSION', { cniVersion: '0.4.0' }, {}],
      ['VERSION', {}, {}],
      ['VERSION', { cniVersion: '9.9.9', a: [{ b: [1, -2.5e3, null, true] }] }, {}],
      ['VERSION', '{not json', {}],
      ['VERSION', '[1]', {}],
      ['ADD', conf('1.0.0', down), { id: 'x', netns: '/x' }],
      ['STATUS', conf('1.1.0', down), {}],
      ['DEL', '{"cniVersion":"0.4.0","apiAddr":"\\u0031:1"}', { id: 'x' }],
      ['ADD', conf('1.0.0', { apiAddr: 'no-port' }), { id: 'x' }],
      ['ADD', conf('1.0.0', { pad: 'x'.repeat(70_000) }), { id: 'x' }],
    ];
    for (const [command, c, o] of cases) {
      const [ts, native] = await Promise.all(PLUGINS.map((p) => run(p.argv, 'h1', command, c, o)));
      assert.deepEqual(native, ts, `${command} ${JSON.stringify(c).slice(0, 80)}`);
    }
  });
});

describe('CNI plugins with real runtimes: containerd (ctr run --cni) with the native one that setup-cni installs, docker run --network none with the TypeScript one', function () {
  this.timeout(240_000);
  let lab: Lab;
  const NS = 'weavetest';
  const sock = (h: string) => `/run/${lab.host(h).netns}/containerd/containerd.sock`; // dockerd's own containerd
  const ctr = (h: string, args: string[], timeoutMs = 60_000) =>
    lab.execOk(h, ['ctr', '-a', sock(h), '-n', NS, ...args], { timeoutMs });
  const weaveCli = (h: string, args: string[]) =>
    lab.execOk(h, [join(dirname(PLUGIN), '..', '..', 'bin', 'weave'), ...args], {
      env: { WEAVE_DATA_DIR: lab.host(h).dataDir },
    });
  const ipIn = async (h: string, c: string) =>
    /inet (\d+\.\d+\.\d+\.\d+)\//.exec(
      await ctr(h, ['task', 'exec', '--exec-id', `ip${Date.now()}`, c, 'ip', '-4', '-o', 'addr', 'show', 'eth0']),
    )![1];
  let installed = false;

  before(async function () {
    // ctr reads the machine's CNI directories: run only where nothing else is configured there.
    const other = (await import('node:fs')).existsSync('/etc/cni/net.d')
      ? (await import('node:fs')).readdirSync('/etc/cni/net.d').filter((f) => f !== '10-weave.conflist')
      : [];
    if (other.length) {
      console.log(`      skipped: /etc/cni/net.d holds ${other.join(', ')}`);
      this.skip();
    }
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab.startDockerd(h)));
    await launchAll(lab, ['h1', 'h2']);
    await waitForMesh(lab);
    await weaveCli('h1', ['setup-cni']);
    installed = true;
    for (const h of ['h1', 'h2']) {
      const tar = join(lab.host(h).dataDir, 'busybox-image.tar');
      await lab.execOk(h, ['docker', 'save', '-o', tar, 'busybox:latest'], {
        env: { DOCKER_HOST: `unix://${lab.host(h).dataDir}/docker.sock` },
      });
      await ctr(h, ['images', 'import', tar]);
    }
  });

  after(async () => {
    for (const h of lab ? ['h1', 'h2'] : []) {
      for (const c of (await lab.exec(h, ['ctr', '-a', sock(h), '-n', NS, 'containers', 'ls', '-q'])).stdout
        .split('\n')
        .filter(Boolean)) {
        await lab.exec(h, ['ctr', '-a', sock(h), '-n', NS, 'task', 'kill', '-s', '9', c]);
        await waitFor(
          `${c} stopped`,
          async () =>
            (await lab.exec(h, ['ctr', '-a', sock(h), '-n', NS, 'task', 'rm', '-f', c])).code === 0 ||
            !(await lab.exec(h, ['ctr', '-a', sock(h), '-n', NS, 'task', 'ls', '-q'])).stdout.includes(c),
          10_000,
        ).catch(() => {});
        await lab.exec(h, ['ctr', '-a', sock(h), '-n', NS, 'containers', 'rm', c]);
      }
    }
    if (installed) await weaveCli('h1', ['setup-cni', '--remove']);
    await lab?.down();
  });

  it('containers started by ctr run --cni on two hosts reach each other, and a docker run --network none container joins through the plugin', async () => {
    assert.deepEqual(
      readFileSync('/opt/cni/bin/weave-net'),
      readFileSync(NATIVE),
      'setup-cni installed the native plugin',
    );
    await ctr('h1', ['run', '--cni', '-d', 'docker.io/library/busybox:latest', 'c1', 'sleep', '3600']);
    await ctr('h2', ['run', '--cni', '-d', 'docker.io/library/busybox:latest', 'c2', 'sleep', '3600']);
    const [ip1, ip2] = [await ipIn('h1', 'c1'), await ipIn('h2', 'c2')];
    assert.notEqual(ip1, ip2);
    await waitFor(
      `c1 pings c2 (${ip2})`,
      async () =>
        (
          await lab.exec('h1', [
            'ctr',
            '-a',
            sock('h1'),
            '-n',
            NS,
            'task',
            'exec',
            '--exec-id',
            `p${Date.now()}`,
            'c1',
            'ping',
            '-c1',
            '-W1',
            ip2,
          ])
        ).code === 0,
      15_000,
    );
    const env = { DOCKER_HOST: `unix://${lab.host('h2').dataDir}/docker.sock` };
    const id = (
      await lab.execOk('h2', ['docker', 'run', '-d', '--network', 'none', 'busybox', 'sleep', '3600'], { env })
    ).trim();
    const pid = (await lab.execOk('h2', ['docker', 'inspect', '-f', '{{.State.Pid}}', id], { env })).trim();
    const r = await lab.exec('h2', [process.execPath, PLUGIN], {
      input: JSON.stringify({ cniVersion: '1.1.0', name: 'weave', type: 'weave-net' }),
      env: {
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: id,
        CNI_NETNS: `/proc/${pid}/ns/net`,
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/opt/cni/bin',
      },
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await waitFor(
      `the docker container pings c1 (${ip1})`,
      async () => (await lab.exec('h2', ['docker', 'exec', id, 'ping', '-c1', '-W1', ip1], { env })).code === 0,
      15_000,
    );
  });
});
