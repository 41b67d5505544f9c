import assert from 'node:assert/strict';
import { Lab, type LabContainer, waitFor } from '../lab/lab.js';
import { attachEach, launchAll, report, waitForMesh, waitForPing, waitForReachable, weaveOk } from '../lab/weave.js';
import { iperf } from '../lab/iperf.js';

const ip = (i: number) => `10.32.0.${i}`;
const macOf = async (lab: Lab, c: LabContainer): Promise<string> =>
  (JSON.parse((await lab.execIn(c.netns, ['ip', '-j', 'link', 'show', 'ethwe'])).stdout) as { address: string }[])[0]
    .address;

describe('native sleeve: h1, h2 sleeve; h3 sleeve-pcap; h4 fastdp', function () {
  this.timeout(120_000);
  let lab: Lab;
  let c: LabContainer[] = [];
  let names: Map<string, string>;
  const HOSTS = ['h1', 'h2', 'h3', 'h4'];

  before(async () => {
    lab = await Lab.create({ hosts: 4 });
    names = new Map([
      ...(await launchAll(lab, ['h1', 'h2'], ['--datapath', 'sleeve'])),
      ...(await launchAll(lab, ['h3'], ['--datapath', 'sleeve-pcap', lab.host('h1').addrs[0]])),
      ...(await launchAll(lab, ['h4'], ['--datapath', 'fastdp', lab.host('h1').addrs[0]])),
    ]);
    await waitForMesh(lab);
    c = await attachEach(lab, HOSTS);
  });
  after(async () => {
    await lab?.down();
  });

  it('says it runs the native sleeve, with the offloads this kernel gives it', async () => {
    assert.match(await weaveOk(lab, 'h1', ['status']), /Datapath: sleeve\n/);
    const r = await report(lab, 'h1');
    assert.equal(r.datapath, 'sleeve');
    assert.equal(r.offloads?.tso, true, JSON.stringify(r.offloads));
    assert.equal(r.offloads?.gro, true, JSON.stringify(r.offloads));
    assert.equal((await report(lab, 'h4')).paths[names.get('h1')!].reason, 'it runs sleeve');
  });

  it('every pair pings: sleeve with sleeve, sleeve-pcap and fastdp', async () => {
    for (const [i, from] of c.entries()) {
      for (const j of HOSTS.keys()) if (j !== i) await waitForPing(lab, from.netns, ip(j + 1));
    }
  });

  it('carries TCP between native sleeves in super-frames: split and sent with GSO, merged on the way in', async () => {
    const [b1, b2] = [await report(lab, 'h1'), await report(lab, 'h2')];
    const end = await iperf(lab, c[0].netns, c[1].netns, ip(2));
    const [a1, a2] = [await report(lab, 'h1'), await report(lab, 'h2')];
    const gb = end.sum_received.bytes;
    assert.ok(gb > 10_000_000, `received ${gb} bytes`);
    const sends = Number(a1.offloads!.gsoSends) - Number(b1.offloads!.gsoSends),
      writes = Number(a2.offloads!.gsoWrites) - Number(b2.offloads!.gsoWrites);
    const datagrams = a1.counters.sent.datagrams - b1.counters.sent.datagrams;
    assert.ok(sends > 0 && datagrams / sends > 4, `${datagrams} datagrams in ${sends} GSO sends`);
    assert.ok(
      writes > 0 && (a2.counters.injected.frames - b2.counters.injected.frames) / writes > 4,
      `${writes} merged TAP writes`,
    );
    // The threads moved it: what went up to the forwarder is a trickle (ARP, heartbeats).
    assert.ok(a1.counters.captured.frames - b1.counters.captured.frames > 1000);
    assert.deepEqual(a2.counters.dropped, b2.counters.dropped, 'nothing dropped');
  });

  it('carries TCP to and from sleeve-pcap and fastdp hosts', async () => {
    for (const [from, to] of [
      [0, 2],
      [2, 0],
      [0, 3],
      [3, 0],
    ]) {
      const end = await iperf(lab, c[from].netns, c[to].netns, ip(to + 1));
      assert.ok(
        end.sum_received.bytes > 1_000_000,
        `${HOSTS[from]} to ${HOSTS[to]}: received ${end.sum_received.bytes} bytes`,
      );
    }
  });

  it('delivers a broadcast from a native sleeve to every host exactly once', async () => {
    // Counted by a firewall rule in each receiving container: echo requests to the broadcast address only, not the ARP
    // around them.
    const BCAST = '10.47.255.255';
    const others = c.slice(1);
    for (const x of others) {
      await lab.execIn(x.netns, ['sysctl', '-qw', 'net.ipv4.icmp_echo_ignore_broadcasts=0']);
      await lab.execIn(x.netns, ['iptables', '-I', 'INPUT', '-p', 'icmp', '--icmp-type', 'echo-request', '-d', BCAST]);
    }
    const N = 20;
    await lab.execIn(c[0].netns, ['ping', '-b', '-c', String(N), '-i', '0.05', '-W', '1', BCAST]);
    for (const x of others) {
      const rules = (await lab.execIn(x.netns, ['iptables', '-L', 'INPUT', '-v', '-x', '-n'])).stdout;
      const got = Number(/^\s*(\d+)\s+\d+\s.*icmptype 8/m.exec(rules)?.[1]);
      assert.equal(got, N, `${x.host} received ${got} echo requests for ${N} broadcasts:\n${rules}`);
    }
  });

  it('follows a MAC that moves from one host to another', async () => {
    const MAC = '02:00:00:5e:00:42';
    const mover = '10.32.1.9';
    const m2 = await lab.addContainer('h2', 'mover');
    await weaveOk(lab, 'h2', ['attach', '--mac', MAC, `${mover}/12`, `netns:${m2.netns}`]);
    await waitForPing(lab, c[0].netns, mover);
    assert.equal((await report(lab, 'h1')).macs.find((m) => m.mac === MAC)?.peer, names.get('h2'));
    await weaveOk(lab, 'h2', ['detach', `netns:${m2.netns}`]);
    const m3 = await lab.addContainer('h3', 'mover');
    await weaveOk(lab, 'h3', ['attach', '--mac', MAC, `${mover}/12`, `netns:${m3.netns}`]);
    await waitForPing(lab, c[0].netns, mover);
    await waitFor(
      'h1 places the MAC at h3',
      async () => (await report(lab, 'h1')).macs.find((m) => m.mac === MAC)?.peer === names.get('h3'),
    );
    await waitForPing(lab, c[1].netns, mover);
    assert.equal(await macOf(lab, m3), MAC);
  });
});

describe('native sleeve on a line: h1 — h2 — h3, h1 and h3 not directly reachable', function () {
  this.timeout(120_000);
  let lab: Lab;
  let c: LabContainer[] = [];
  before(async () => {
    lab = await Lab.create({ hosts: 3, topology: 'line' });
    await launchAll(lab, ['h2'], ['--datapath', 'sleeve']);
    await launchAll(lab, ['h1'], ['--datapath', 'sleeve', lab.host('h2').addrs[0]]);
    await launchAll(lab, ['h3'], ['--datapath', 'sleeve', lab.host('h2').addrs[1]]);
    await waitForReachable(lab);
    c = await attachEach(lab, ['h1', 'h2', 'h3']);
  });
  after(async () => {
    await lab?.down();
  });

  it('h1 and h3 reach each other through h2, which relays, and a TCP stream crosses', async () => {
    await waitForPing(lab, c[0].netns, ip(3));
    await waitForPing(lab, c[2].netns, ip(1));
    const end = await iperf(lab, c[0].netns, c[2].netns, ip(3));
    assert.ok(end.sum_received.bytes > 1_000_000, `received ${end.sum_received.bytes} bytes`);
    assert.ok((await report(lab, 'h2')).counters.relayed > 0, 'h2 passed the frames on');
  });
});
