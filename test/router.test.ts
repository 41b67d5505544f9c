import assert from 'node:assert/strict';
import { Lab, type LabContainer, waitFor } from '../lab/lab.js';
import { launchAll, report, waitForMesh, waitForPing, weave, weaveOk } from '../lab/weave.js';
import { iperf } from '../lab/iperf.js';

const ip = (i: number) => `10.32.0.${i}`;

describe('router core: three hosts, full mesh, sleeve-pcap', function () {
  this.timeout(120_000);
  let lab: Lab;
  const c: LabContainer[] = [];
  let names: Map<string, string>;

  before(async () => {
    lab = await Lab.create({ hosts: 3 });
    names = await launchAll(lab, undefined, ['--datapath', 'sleeve-pcap']);
    await waitForMesh(lab);
    for (const [i, h] of ['h1', 'h2', 'h3'].entries()) {
      c.push(await lab.addContainer(h, 'c1'));
      assert.equal((await weaveOk(lab, h, ['attach', `${ip(i + 1)}/12`, `netns:${c[i].netns}`])).trim(), ip(i + 1));
    }
  });
  after(async () => {
    await lab?.down();
  });

  it('every container pings every other across hosts', async () => {
    for (const [i, from] of c.entries()) {
      for (const j of [0, 1, 2].filter((j) => j !== i)) await waitForPing(lab, from.netns, ip(j + 1));
    }
  });

  it('resolves neighbours with ARP and carries broadcasts to every host', async () => {
    const neigh = await lab.execIn(c[0].netns, ['ip', 'neigh', 'show', ip(2)]);
    assert.match(neigh.stdout, /lladdr ([0-9a-f]{2}:){5}[0-9a-f]{2}/);
    for (const x of c.slice(1)) await lab.execIn(x.netns, ['sysctl', '-qw', 'net.ipv4.icmp_echo_ignore_broadcasts=0']);
    const seen = await waitFor('broadcast ping answered by h2 and h3', async () => {
      const r = await lab.execIn(c[0].netns, ['ping', '-b', '-c3', '-i0.2', '-W1', '10.47.255.255']);
      const from = new Set([...r.stdout.matchAll(/from (10\.32\.0\.\d+)/g)].map((m) => m[1]));
      return from.has(ip(2)) && from.has(ip(3)) ? from : undefined;
    });
    assert.ok(seen.size >= 2);
  });

  it('shows each remote MAC at the peer it lives on', async () => {
    const macOf = async (x: LabContainer) =>
      JSON.parse((await lab.execIn(x.netns, ['ip', '-j', 'link', 'show', 'ethwe'])).stdout)[0].address as string;
    const r = await report(lab, 'h1');
    const table = new Map(r.macs.map((m) => [m.mac, m.peer]));
    assert.equal(table.get(await macOf(c[1])), names.get('h2'));
    assert.equal(table.get(await macOf(c[2])), names.get('h3'));
    assert.equal(
      r.macs.find((m) => m.mac === ''),
      undefined,
    );
  });

  it('carries a TCP stream (iperf3) across hosts', async () => {
    const end = await iperf(lab, c[0].netns, c[1].netns, ip(2));
    assert.ok(end.sum_received.bytes > 1_000_000, `received ${end.sum_received.bytes} bytes`);
  });

  it("prints the router status in Weave's shape", async () => {
    const s = await weaveOk(lab, 'h1', ['status']);
    for (const label of [
      'Version',
      'Service',
      'Name',
      'Encryption',
      'PeerDiscovery',
      'Targets',
      'Connections',
      'Peers',
    ]) {
      assert.match(s, new RegExp(`^ {${15 - label.length}}${label}: `, 'm'), `${label} right-aligned at column 15`);
    }
    assert.match(s, /^\s+Name: \S+\(h1\)$/m);
    assert.match(s, /^\s+Connections: 2 \(2 established\)$/m);
    assert.match(s, /^\s+Peers: 3 /m);
    assert.match(await weaveOk(lab, 'h1', ['status', 'connections']), /established .*\(h2\)/);
  });

  it('drops and counts truncated, oversized, garbage and foreign VXLAN datagrams without crashing', async () => {
    const h1 = lab.host('h1').addrs[0];
    const script = `
      const s = require('dgram').createSocket('udp4');
      const vx = (flags, vni, n) => { const b = Buffer.alloc(8 + n); b[0] = flags; b.writeUIntBE(vni, 4, 3); return b; };
      const msgs = [Buffer.from('x'), Buffer.alloc(7), Buffer.alloc(9000, 1), Buffer.from('garbage garbage garbage garbage'), vx(0x0c, 6784, 60), vx(0x08, 99, 60)];
      let n = 0; for (const m of msgs) s.send(m, 6784, '${h1}', () => { if (++n === msgs.length) s.close(); });`;
    await lab.execOk('h2', ['node', '-e', script]);
    const r = await waitFor('drops counted', async () => {
      const d = (await report(lab, 'h1')).counters.dropped;
      return d.truncated >= 2 && d.oversized >= 1 && d['bad-flags'] >= 2 && d['wrong-vni'] >= 1 ? d : undefined;
    });
    assert.ok(r);
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it('closes a control connection that sends garbage, and keeps the others', async () => {
    const h1 = lab.host('h1').addrs[0];
    const script = `const s = require('net').connect(6783, '${h1}', () => s.write(Buffer.from([0xde,0xad,0xbe,0xef,10]))); s.resume(); s.on('error', () => {}); s.on('close', () => process.exit(0)); setTimeout(() => process.exit(3), 5000);`;
    assert.equal((await lab.exec('h3', ['node', '-e', script])).code, 0, 'the router closed the garbage connection');
    await waitForPing(lab, c[0].netns, ip(3));
  });

  it('recovers when a router is killed with -9 and launched again, keeping its name', async () => {
    const before = await report(lab, 'h2');
    // supervisor and router: nothing restarts it
    for (const pid of [before.supervisorPid!, before.pid]) process.kill(pid, 'SIGKILL');
    await waitFor(
      'h1 notices h2 is gone',
      async () =>
        !(await report(lab, 'h1')).connections.some((x) => x.name === before.name && x.state === 'established'),
    );
    const name = (await weaveOk(lab, 'h2', ['launch', '--nickname', 'h2', lab.host('h1').addrs[0]])).trim();
    assert.equal(name, before.name);
    await waitForMesh(lab);
    await waitForPing(lab, c[0].netns, ip(2));
    await waitForPing(lab, c[1].netns, ip(3));
  });

  it('refuses a second launch on the same host', async () => {
    const r = await weave(lab, 'h1', ['launch']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^weave: the weave router is already running here as \S+\(h1\)\n$/);
  });

  it('refuses a launch whose ports are taken, with one line and nothing changed', async () => {
    // Its own data directory (a shared one is refused first), the same ports as the router there.
    const r = await weave(lab, 'h1', [
      'launch',
      '--http-addr',
      '127.0.0.1:7784',
      '--data-dir',
      `${lab.host('h1').dataDir}/second`,
    ]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^weave: UDP port 6784 is already in use\n$/);
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it('rejects a bad CIDR, an unknown target and a bad VNI with a one-line error', async () => {
    const cases: [string[], RegExp][] = [
      [['attach', '10.32.0.300/12', `netns:${c[0].netns}`], /^weave: invalid CIDR "10\.32\.0\.300\/12"/],
      [['attach', '10.32.0.9/12', 'netns:no-such-ns'], /^weave: unknown target "netns:no-such-ns"/],
      [['attach', '10.32.0.9/12', 'box'], /^weave: unknown target "box"/],
      [['launch', '--vni', '99999999'], /^weave: invalid VNI "99999999"/],
      [['detach', 'netns:no-such-ns'], /^weave: unknown target/],
      [['run', 'busybox'], /^weave: no Docker engine answers at unix:\/\/\S+\/docker\.sock/], // the router's engine: none on these hosts
    ];
    for (const [args, re] of cases) {
      const r = await weave(lab, 'h1', args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  it('detaches a container: it drops off the overlay', async () => {
    await weaveOk(lab, 'h3', ['detach', `netns:${c[2].netns}`]);
    assert.notEqual((await lab.execIn(c[0].netns, ['ping', '-c1', '-W1', ip(3)])).code, 0);
    const r = await lab.execIn(c[2].netns, ['ip', 'link', 'show', 'ethwe']);
    assert.notEqual(r.code, 0);
  });

  it('stops with weave stop', async () => {
    await weaveOk(lab, 'h3', ['stop']);
    const r = await weave(lab, 'h3', ['status']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not running/);
  });
});

describe('interoperability with the Linux kernel vxlan driver', function () {
  this.timeout(60_000);
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.down();
    lab = undefined;
  });

  for (const datapath of ['sleeve-pcap', 'sleeve', 'fastdp']) {
    it(`a host with only a kernel vxlan device on a bridge pings a container behind our router, and TCP crosses both ways (${datapath})`, async () => {
      lab = await Lab.create({ hosts: 2 });
      const [a1, a2] = [lab.host('h1').addrs[0], lab.host('h2').addrs[0]];
      await weaveOk(lab, 'h1', [
        'launch',
        '--nickname',
        'h1',
        '--vni',
        '4242',
        '--vxlan-peer',
        a2,
        '--datapath',
        datapath,
      ]);
      const c1 = await lab.addContainer('h1', 'c1');
      await weaveOk(lab, 'h1', ['attach', '10.32.0.1/12', `netns:${c1.netns}`]);
      // h2 runs no router: a kernel vxlan device on a bridge, and a namespace with a veth on that bridge.
      // Its underlay computes checksums as a real NIC would: a lab veth would pass the inner TCP
      // checksum on unfinished (the kernel leaves it to the NIC), and a receiving socket sees it so.
      const k = await lab.addContainer('h2', 'k1');
      for (const argv of [
        ['ethtool', '-K', 'eth0', 'tx', 'off'],
        [
          'ip',
          'link',
          'add',
          'vx0',
          'type',
          'vxlan',
          'id',
          '4242',
          'dstport',
          '6784',
          'remote',
          a1,
          'local',
          a2,
          'dev',
          'eth0',
        ],
        ['ip', 'link', 'add', 'br0', 'type', 'bridge'],
        ['ip', 'link', 'set', 'vx0', 'master', 'br0', 'up'],
        ['ip', 'link', 'set', 'br0', 'up'],
        ['ip', 'link', 'add', 'vk1', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', k.netns],
        ['ip', 'link', 'set', 'vk1', 'master', 'br0', 'up'],
      ])
        await lab.execOk('h2', argv);
      await lab.execIn(k.netns, ['ip', 'link', 'set', 'eth0', 'mtu', '1450', 'up']);
      await lab.execIn(k.netns, ['ip', 'addr', 'add', '10.32.0.2/12', 'dev', 'eth0']);
      await waitForPing(lab, k.netns, '10.32.0.1');
      await waitForPing(lab, c1.netns, '10.32.0.2');
      for (const [from, to, toIp] of [
        [c1.netns, k.netns, '10.32.0.2'],
        [k.netns, c1.netns, '10.32.0.1'],
      ]) {
        const end = await iperf(lab, from, to, toIp);
        assert.ok(end.sum_received.bytes > 1_000_000, `TCP to ${toIp}: received ${end.sum_received.bytes} bytes`);
      }
      const r = await report(lab, 'h1');
      assert.equal(r.datapath, datapath);
      if (datapath !== 'fastdp')
        assert.ok(
          r.macs.some((m) => m.peer === `vxlan:${a2}`),
          'learned the kernel side MAC at the vxlan endpoint',
        );
      else {
        const flood = JSON.parse(await lab.execOk('h1', ['bridge', '-j', 'fdb', 'show', 'dev', 'vxlan-6784'])) as {
          mac: string;
          dst?: string;
        }[];
        assert.ok(
          flood.some((e) => e.mac === '00:00:00:00:00:00' && e.dst === a2),
          'the kernel floods to the plain peer',
        );
      }
    });
  }
});
