import assert from 'node:assert/strict';
import { Lab, type LabContainer, waitFor } from '../lab/lab.js';
import { attachEach, launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';
import { iperf as runIperf } from '../lab/iperf.js';

const ip = (i: number) => `10.32.0.${i}`;
/** The bridge port of a fastdp host's sleeve: the native sleeve's TAP. */
const SLEEVE_PORT = 'vethwe-tap';

interface FdbEntry {
  mac: string;
  dst?: string;
  master?: string;
  state?: string;
  flags?: string[];
}
const fdb = async (lab: Lab, host: string, dev: string): Promise<FdbEntry[]> =>
  JSON.parse(await lab.execOk(host, ['bridge', '-j', 'fdb', 'show', 'dev', dev])) as FdbEntry[];
const macOf = async (lab: Lab, c: LabContainer): Promise<string> =>
  (JSON.parse((await lab.execIn(c.netns, ['ip', '-j', 'link', 'show', 'ethwe'])).stdout) as { address: string }[])[0]
    .address;
const pathTo = async (lab: Lab, from: string, peer: string) => (await report(lab, from)).paths[peer];
const rxPackets = async (lab: Lab, ns: string) =>
  Number(JSON.parse((await lab.execIn(ns, ['ip', '-s', '-j', 'link', 'show', 'ethwe'])).stdout)[0].stats64.rx.packets);

/** iperf3 from one container to another; returns Gbit/s received. */
const iperf = async (lab: Lab, from: LabContainer, to: LabContainer, toIp: string): Promise<number> =>
  (await runIperf(lab, from.netns, to.netns, toIp)).sum_received.bits_per_second / 1e9;

describe('fastdp: the kernel forwards, programmed from gossip (h1, h2 fastdp; h3 sleeve-pcap)', function () {
  this.timeout(120_000);
  let lab: Lab;
  let c: LabContainer[] = [];
  let names: Map<string, string>;
  const addr = (h: string) => lab.host(h).addrs[0];

  before(async () => {
    lab = await Lab.create({ hosts: 3 });
    names = new Map([
      ...(await launchAll(lab, ['h1', 'h2'], ['--datapath', 'fastdp'])),
      ...(await launchAll(lab, ['h3'], ['--datapath', 'sleeve-pcap', addr('h1')])),
    ]);
    await waitForMesh(lab);
    c = await attachEach(lab, ['h1', 'h2', 'h3']);
  });
  after(async () => {
    await lab?.down();
  });

  it('says which datapath each host runs and, per connection, which path the frames take', async () => {
    assert.match(await weaveOk(lab, 'h1', ['status']), /Datapath: fastdp\n/);
    assert.match(await weaveOk(lab, 'h3', ['status']), /Datapath: sleeve-pcap\n/);
    await waitFor(
      'h1 reaches h2 by fastdp',
      async () => (await pathTo(lab, 'h1', names.get('h2')!))?.mode === 'fastdp',
    );
    const conns = await weaveOk(lab, 'h1', ['status', 'connections']);
    assert.match(conns, new RegExp(`established +fastdp ${names.get('h2')}\\(h2\\)`));
    assert.match(
      await weaveOk(lab, 'h3', ['status', 'connections']),
      new RegExp(`established +sleeve ${names.get('h1')}\\(h1\\)`),
    );
  });

  it('every pair pings, and iperf3 completes between fastdp hosts and with the sleeve host', async () => {
    for (const [i, from] of c.entries())
      for (const j of [0, 1, 2].filter((j) => j !== i)) await waitForPing(lab, from.netns, ip(j + 1));
    assert.ok((await iperf(lab, c[0], c[1], ip(2))) > 0);
    assert.ok((await iperf(lab, c[0], c[2], ip(3))) > 0);
    assert.ok((await iperf(lab, c[2], c[1], ip(2))) > 0);
  });

  it("programs the kernel: a fastdp host's MAC points at it through the vxlan device, a sleeve host's at the sleeve port", async () => {
    const [m2, m3] = [await macOf(lab, c[1]), await macOf(lab, c[2])];
    await waitFor('h1 holds a vxlan entry for c2', async () =>
      (await fdb(lab, 'h1', 'vxlan-6784')).some((e) => e.mac === m2 && e.dst === addr('h2')),
    );
    const bridge = (await fdb(lab, 'h1', 'vxlan-6784'))
      .filter((e) => e.master === 'weave' && e.state === 'static')
      .map((e) => e.mac);
    assert.ok(bridge.includes(m2), 'and the bridge sends that MAC to the vxlan port');
    assert.ok(
      (await fdb(lab, 'h1', SLEEVE_PORT)).some((e) => e.mac === m3 && e.state === 'static'),
      'c3 (on the sleeve host) goes to the sleeve',
    );
    assert.equal((await pathTo(lab, 'h1', names.get('h3')!)).reason, 'it runs sleeve-pcap');
  });

  it('delivers a broadcast to every host exactly once', async () => {
    const before = [await rxPackets(lab, c[1].netns), await rxPackets(lab, c[2].netns)];
    const N = 20;
    await lab.execIn(c[0].netns, ['ping', '-b', '-c', String(N), '-i', '0.05', '-W', '1', '10.47.255.255']);
    const after = [await rxPackets(lab, c[1].netns), await rxPackets(lab, c[2].netns)];
    for (const [i, host] of ['h2', 'h3'].entries()) {
      const got = after[i] - before[i];
      assert.ok(
        got >= N && got <= N + 2,
        `${host} received ${got} frames for ${N} broadcasts (an ARP exchange may add two)`,
      );
    }
  });

  it('falls back to the sleeve when the VXLAN port is blocked, keeps pinging, and returns by itself when it is open again', async () => {
    const h2 = names.get('h2')!;
    const rule = (op: '-A' | '-D', host: string, from: string) =>
      lab.execOk(host, ['iptables', op, 'INPUT', '-p', 'udp', '--dport', '6784', '-s', addr(from), '-j', 'DROP']);
    await rule('-A', 'h2', 'h1');
    await rule('-A', 'h1', 'h2');
    try {
      await waitFor(
        'h1 falls back to the sleeve for h2',
        async () => (await pathTo(lab, 'h1', h2))?.mode === 'sleeve',
        10_000,
      );
      const m2 = await macOf(lab, c[1]);
      await waitFor("the bridge sends c2's MAC to the sleeve port", async () =>
        (await fdb(lab, 'h1', SLEEVE_PORT)).some((e) => e.mac === m2 && e.state === 'static'),
      );
      assert.ok(!(await fdb(lab, 'h1', 'vxlan-6784')).some((e) => e.mac === m2 && e.dst), 'no vxlan entry left for it');
      await waitForPing(lab, c[0].netns, ip(2));
      assert.ok((await iperf(lab, c[0], c[1], ip(2))) > 0, 'a TCP stream crosses on the sleeve');
    } finally {
      await rule('-D', 'h2', 'h1');
      await rule('-D', 'h1', 'h2');
    }
    const lifted = Date.now();
    await waitFor('h1 back on fastdp for h2', async () => (await pathTo(lab, 'h1', h2))?.mode === 'fastdp', 10_000);
    await waitFor(
      'h2 back on fastdp for h1',
      async () => (await pathTo(lab, 'h2', names.get('h1')!))?.mode === 'fastdp',
      10_000 - (Date.now() - lifted),
    );
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it('sends through the third host when every UDP port between two hosts is blocked, and goes direct again after', async () => {
    const h2 = names.get('h2')!;
    const rule = (op: '-A' | '-D', host: string, from: string) =>
      lab.execOk(host, ['iptables', op, 'INPUT', '-p', 'udp', '-s', addr(from), '-j', 'DROP']);
    await rule('-A', 'h2', 'h1');
    await rule('-A', 'h1', 'h2');
    try {
      let last: unknown;
      await waitFor(
        'h1 relays through h3 for h2',
        async () => /relayed by h3/.test((last = await pathTo(lab, 'h1', h2))?.reason ?? ''),
        10_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; h1's path to h2: ${JSON.stringify(last)}`);
      });
      await waitForPing(lab, c[0].netns, ip(2));
      await waitForPing(lab, c[1].netns, ip(1));
      assert.ok((await iperf(lab, c[0], c[1], ip(2))) > 0, 'a TCP stream crosses through h3');
      assert.ok((await report(lab, 'h3')).counters.relayed > 0, 'h3 passed the frames on');
    } finally {
      await rule('-D', 'h2', 'h1');
      await rule('-D', 'h1', 'h2');
    }
    await waitFor('h1 back on fastdp for h2', async () => (await pathTo(lab, 'h1', h2))?.mode === 'fastdp', 10_000);
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it('a restarted router rebuilds the FDB, removes stale entries, and traffic resumes within 3 s', async () => {
    const STALE = '02:de:ad:00:00:01';
    await lab.execOk('h1', [
      'bridge',
      'fdb',
      'replace',
      STALE,
      'dev',
      'vxlan-6784',
      'dst',
      '198.18.0.99',
      'self',
      'permanent',
    ]);
    await lab.execOk('h1', ['bridge', 'fdb', 'replace', STALE, 'dev', SLEEVE_PORT, 'master', 'static']);
    const pid = (await report(lab, 'h1')).pid;
    // Pings every 20 ms from h2 across the restart: the longest silence is how long traffic stopped.
    const ping = lab.spawnIn(c[1].netns, ['ping', '-D', '-n', '-i', '0.02', '-W', '1', '-w', '8', ip(1)], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    ping.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const done = new Promise((r) => ping.once('close', r));
    await waitFor('pings answered before the kill', async () => /bytes from .*icmp_seq=/.test(out), 5000, 20);
    process.kill(pid, 'SIGKILL'); // the supervisor starts it again
    const killed = Date.now() / 1000;
    await done;
    const answered = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=/gm)].map((m) => Number(m[1]));
    assert.ok(
      answered.some((t) => t > killed + 0.5),
      'h1 answers again after the kill',
    );
    const gap = Math.max(...answered.slice(1).map((t, i) => t - answered[i]));
    assert.ok(gap < 3, `traffic stopped for ${Math.round(gap * 1000)} ms around the kill`);
    await waitFor('a new router pid', async () => (await report(lab, 'h1').catch(() => undefined))?.pid !== pid);
    const m2 = await macOf(lab, c[1]);
    await waitFor(
      'stale entries gone, c2 programmed',
      async () => {
        const vx = await fdb(lab, 'h1', 'vxlan-6784'),
          br = await fdb(lab, 'h1', SLEEVE_PORT);
        return (
          !vx.some((e) => e.mac === STALE) &&
          !br.some((e) => e.mac === STALE) &&
          vx.some((e) => e.mac === m2 && e.dst === addr('h2'))
        );
      },
      20_000,
    );
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it("while a router is stopped (an upgrade restarts it), its containers and the far end's still reach each other through the kernels", async () => {
    await weaveOk(lab, 'h1', ['stop']);
    await waitForPing(lab, c[1].netns, ip(1));
    await waitForPing(lab, c[0].netns, ip(2));
    await weaveOk(lab, 'h1', ['launch', '--nickname', 'h1', '--datapath', 'fastdp', addr('h2')]);
    await waitFor(
      'h1 back on fastdp for h2',
      async () => (await pathTo(lab, 'h1', names.get('h2')!))?.mode === 'fastdp',
    );
    await waitForPing(lab, c[1].netns, ip(1));
  });
});

describe('path MTU: a host whose underlay MTU is lower', function () {
  this.timeout(90_000);
  let lab: Lab;
  after(async () => {
    await lab?.down();
  });

  it('answers a DF ping too big for it with "fragmentation needed", and a large TCP transfer completes', async () => {
    lab = await Lab.create({ hosts: 2 });
    await lab.execOk('h2', ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1300']); // the overlay there is 1250
    await launchAll(lab, ['h1', 'h2'], ['--datapath', 'fastdp']);
    await waitForMesh(lab);
    const [c1, c2] = [await lab.addContainer('h1', 'c1'), await lab.addContainer('h2', 'c2')];
    await weaveOk(lab, 'h1', ['attach', `${ip(1)}/12`, `netns:${c1.netns}`]);
    await weaveOk(lab, 'h2', ['attach', `${ip(2)}/12`, `netns:${c2.netns}`]);
    assert.equal((await report(lab, 'h2')).mtu, 1250);
    await waitForPing(lab, c1.netns, ip(2));
    const big = await lab.execIn(c1.netns, ['ping', '-c', '2', '-W', '1', '-s', '1400', '-M', 'do', ip(2)]);
    assert.notEqual(big.code, 0);
    assert.match(big.stdout + big.stderr, /mtu ?= ?1250/);
    const ok = await lab.execIn(c1.netns, ['ping', '-c', '1', '-W', '1', '-s', '1222', '-M', 'do', ip(2)]);
    assert.equal(ok.code, 0, 'a packet of exactly the path MTU passes');
    assert.ok((await iperf(lab, c1, c2, ip(2))) > 0);
    assert.ok((await iperf(lab, c2, c1, ip(1))) > 0);
  });
});
