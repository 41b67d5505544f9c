import assert from 'node:assert/strict';
import { Lab, type LabContainer, waitFor } from '../lab/lab.js';
import { attachEach, launchAll, report, waitForMesh, waitForPing, weaveOk } from '../lab/weave.js';
import { iperf } from '../lab/iperf.js';

const ip = (i: number) => `10.32.0.${i}`;
const PASSWORD = { WEAVE_PASSWORD: 'correct horse battery staple' };
const MARKER = '4d41524b45524d41524b'; // "MARKERMARK", the pattern ping fills its payload with

/**
 * Datagrams to or from UDP 6784 on a host's underlay while fn runs (at least min of them): how many, how many sealed,
 * and whether the marker was in any.
 */
async function onTheWire(
  lab: Lab,
  host: string,
  min: number,
  fn: () => Promise<unknown>,
): Promise<{ datagrams: number; marker: boolean; sealed: number }> {
  const dump = lab.spawn(host, ['tcpdump', '-l', '-n', '-x', '-i', 'eth0', 'udp', 'port', '6784']);
  let out = '',
    err = '';
  dump.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  dump.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const parse = () => {
    const packets = out.split(/\n(?=\S)/).filter((p) => /IP /.test(p));
    return packets.map((p) =>
      p
        .split('\n')
        .slice(1)
        .map((l) => l.replace(/^\s*0x[0-9a-f]+:\s*/, '').replace(/\s/g, ''))
        .join(''),
    );
  };
  try {
    await waitFor('tcpdump listening', async () => /listening on/.test(err));
    await fn();
    await waitFor(`${min} datagrams captured`, async () => parse().length >= min);
  } finally {
    dump.kill('SIGINT');
  }
  const hex = parse();
  // IPv4 header (20 bytes) + UDP header (8): the datagram's first byte is at hex offset 56.
  return {
    datagrams: hex.length,
    marker: hex.some((h) => h.includes(MARKER)),
    sealed: hex.filter((h) => h.slice(56, 58) === '45').length,
  };
}

/** Sends raw UDP payloads (hex) from a host's namespace to addr:6784: its datagrams come from that host's address. */
const sendRaw = (lab: Lab, host: string, addr: string, payloads: string[]) =>
  lab.execOk(host, [
    'python3',
    '-c',
    `import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor p in sys.argv[1:]: s.sendto(bytes.fromhex(p),('${addr}',6784))`,
    ...payloads,
  ]);

/** The next sealed datagram a host sends to addr, as hex (captured on its underlay). */
const captureSealed = (lab: Lab, host: string, addr: string, during: () => Promise<unknown>) =>
  Promise.all([
    lab.execOk(host, [
      'timeout',
      '10',
      'python3',
      '-c',
      `import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(3))\ns.bind(('eth0',0))\nwhile True:\n f=s.recv(65535)\n if f[12:14]!=b'\\x08\\x00' or f[23]!=17: continue\n ihl=(f[14]&15)*4; u=14+ihl\n if socket.inet_ntoa(f[30:34])=='${addr}' and f[u+2:u+4]==(6784).to_bytes(2,'big') and f[u+8]==0x45:\n  print(f[u+8:].hex()); break`,
    ]),
    during(),
  ]).then(([hex]) => hex.trim());

const dropped = async (lab: Lab, host: string, reason: string) =>
  (await report(lab, host)).counters.dropped[reason] ?? 0;

describe('encrypted data plane: h1 sleeve, h2 asks for fastdp, h3 sleeve-pcap, one password', function () {
  this.timeout(180_000);
  let lab: Lab;
  let c: LabContainer[] = [];
  let _names: Map<string, string>;
  const addr = (h: string) => lab.host(h).addrs[0];

  before(async () => {
    lab = await Lab.create({ hosts: 4 });
    _names = new Map([
      ...(await launchAll(lab, ['h1'], ['--datapath', 'sleeve'], PASSWORD)),
      ...(await launchAll(lab, ['h2'], ['--datapath', 'fastdp', addr('h1')], PASSWORD)),
      ...(await launchAll(lab, ['h3'], ['--datapath', 'sleeve-pcap', addr('h1')], PASSWORD)),
    ]);
    await waitForMesh(lab, ['h1', 'h2', 'h3']);
    c = await attachEach(lab, ['h1', 'h2', 'h3']);
  });
  after(async () => {
    await lab?.down();
  });

  it('says encryption is enabled, and per connection which cipher; fastdp gives way to the sleeve', async () => {
    assert.match(await weaveOk(lab, 'h1', ['status']), /^\s+Encryption: enabled \(/m);
    const r2 = await report(lab, 'h2');
    assert.equal(r2.datapath, 'sleeve', 'fastdp cannot seal: the native sleeve runs');
    for (const h of ['h1', 'h2', 'h3']) {
      await waitFor(`${h}: keys with both others`, async () => {
        const conns = (await weaveOk(lab, h, ['status', 'connections'])).trim().split('\n');
        return conns.length === 2 && conns.every((l) => /encrypted\((aes-256-gcm|chacha20-poly1305)\)/.test(l));
      });
    }
  });

  it('every pair pings, and TCP crosses native to native and native to sleeve-pcap', async () => {
    for (const [i, from] of c.entries())
      for (const j of [0, 1, 2]) if (j !== i) await waitForPing(lab, from.netns, ip(j + 1));
    for (const to of [1, 2]) {
      const end = await iperf(lab, c[0].netns, c[to].netns, ip(to + 1));
      assert.ok(end.sum_received.bytes > 1_000_000, `to h${to + 1}: received ${end.sum_received.bytes} bytes`);
    }
  });

  it('shows nothing of the frames on the underlay: only sealed datagrams, no payload', async () => {
    for (const to of [1, 2]) {
      const seen = await onTheWire(lab, `h${to + 1}`, 6, () =>
        lab.execIn(c[0].netns, ['ping', '-c', '3', '-i', '0.1', '-p', MARKER, ip(to + 1)]),
      );
      assert.ok(seen.datagrams >= 6, `h${to + 1} saw ${seen.datagrams} datagrams`);
      assert.equal(seen.sealed, seen.datagrams, 'every datagram sealed');
      assert.equal(seen.marker, false, 'the payload marker is not on the wire');
    }
  });

  it("drops and counts replayed, truncated, forged, too old and unencrypted datagrams from a peer's own address", async () => {
    const to = addr('h2');
    const sealed = await captureSealed(lab, 'h1', to, () =>
      lab.execIn(c[0].netns, ['ping', '-c', '3', '-i', '0.2', ip(2)]),
    );
    const before = {
      replay: await dropped(lab, 'h2', 'replay'),
      truncated: await dropped(lab, 'h2', 'truncated'),
      auth: await dropped(lab, 'h2', 'auth'),
      unencrypted: await dropped(lab, 'h2', 'unencrypted'),
    };
    // a counter never used: the window lets it through to the tag
    const fresh = `${sealed.slice(0, 16)}ffffffff00000000${sealed.slice(32)}`;
    await sendRaw(lab, 'h1', to, [
      sealed,
      sealed,
      sealed.slice(0, 40),
      fresh,
      `08000000${'001a80'}00${'ff'.repeat(60)}`,
    ]);
    await waitFor(
      'h2 counted them',
      async () =>
        (await dropped(lab, 'h2', 'replay')) >= before.replay + 2 &&
        (await dropped(lab, 'h2', 'truncated')) >= before.truncated + 1 &&
        (await dropped(lab, 'h2', 'auth')) >= before.auth + 1 &&
        (await dropped(lab, 'h2', 'unencrypted')) >= before.unencrypted + 1,
    );
    // Beyond the window: a datagram 4096 or more behind the newest one opened.
    await iperf(lab, c[0].netns, c[1].netns, ip(2), { seconds: 1 });
    const tooOld = await dropped(lab, 'h2', 'too-old');
    await sendRaw(lab, 'h1', to, [sealed]);
    await waitFor('h2 counted it too old', async () => (await dropped(lab, 'h2', 'too-old')) === tooOld + 1);
    await waitForPing(lab, c[0].netns, ip(2));
  });

  it('a host with another password joins nothing, and nothing it sends reaches a container', async () => {
    // Its own allocation range, so its container's address is a static one it needs no peer for.
    await launchAll(lab, ['h4'], ['--datapath', 'sleeve', '--ipalloc-range', '10.99.0.0/16', addr('h1')], {
      WEAVE_PASSWORD: 'wrong',
    });
    const c4 = await lab.addContainer('h4', 'c1');
    await weaveOk(lab, 'h4', ['attach', `${ip(4)}/12`, `netns:${c4.netns}`]);
    await waitFor('h4 gives up on h1', async () =>
      (await report(lab, 'h4')).connections.some((x) => x.state === 'failed'),
    );
    assert.equal(
      (await report(lab, 'h1')).connections.filter((x) => x.state === 'established').length,
      2,
      'h1 still has only h2 and h3',
    );
    const before = (await dropped(lab, 'h1', 'no-key')) + (await dropped(lab, 'h1', 'unencrypted'));
    await sendRaw(lab, 'h4', addr('h1'), [
      `08000000${'001a80'}00${'ff'.repeat(60)}`,
      `45010000000000000000000000000001${'00'.repeat(80)}`,
    ]);
    await waitFor(
      'h1 dropped both',
      async () => (await dropped(lab, 'h1', 'no-key')) + (await dropped(lab, 'h1', 'unencrypted')) >= before + 2,
    );
    assert.notEqual(
      (await lab.execIn(c4.netns, ['ping', '-c', '2', '-W', '1', ip(1)])).code,
      0,
      "h4's container reaches nobody",
    );
  });
});

describe('encrypted data plane: keys rotating every second, and trusted subnets', function () {
  this.timeout(120_000);
  let lab: Lab;
  let c: LabContainer[] = [];
  let names: Map<string, string>;

  before(async () => {
    lab = await Lab.create({ hosts: 3 });
    const trusted = ['--trusted-subnets', '198.18.0.0/15'];
    names = new Map([
      ...(await launchAll(lab, ['h1', 'h2'], ['--datapath', 'sleeve', '--key-rotation', '1', ...trusted], PASSWORD)),
      ...(await launchAll(
        lab,
        ['h3'],
        ['--datapath', 'sleeve', '--key-rotation', '1', lab.host('h1').addrs[0]],
        PASSWORD,
      )),
    ]);
    await waitForMesh(lab);
    c = await attachEach(lab, ['h1', 'h2', 'h3']);
  });
  after(async () => {
    await lab?.down();
  });

  it('a TCP stream runs through several key rotations without losing its connection', async () => {
    await waitForPing(lab, c[0].netns, ip(3));
    const r0 = (await report(lab, 'h1')).encryption.peers![names.get('h3')!];
    const before = [(await report(lab, 'h1')).counters.dropped, (await report(lab, 'h3')).counters.dropped];
    const end = await iperf(lab, c[0].netns, c[2].netns, ip(3), { seconds: 5 });
    const r1 = (await report(lab, 'h1')).encryption.peers![names.get('h3')!];
    console.log(`      ${r1.rotations - r0.rotations} rotations in a 5 s run`);
    assert.ok(r1.rotations - r0.rotations >= 3, `${r1.rotations - r0.rotations} rotations during the run`);
    assert.ok(end.sum_received.bytes > 10_000_000, `received ${end.sum_received.bytes} bytes`);
    for (const [i, h] of ['h1', 'h3'].entries()) {
      const d = (await report(lab, h)).counters.dropped;
      const lost = (x: Record<string, number>) => (x.auth ?? 0) + (x['no-key'] ?? 0);
      assert.equal(lost(d), lost(before[i]), `${h}: no frame lost to the keys during the run: ${JSON.stringify(d)}`);
    }
  });

  it('a router killed and started again agrees new keys with its neighbours, and traffic resumes (time printed)', async () => {
    const before = await report(lab, 'h3');
    for (const pid of [before.supervisorPid!, before.pid]) process.kill(pid, 'SIGKILL'); // nothing restarts it
    await waitFor(
      'h1 notices h3 is gone',
      async () =>
        !(await report(lab, 'h1')).connections.some((x) => x.name === names.get('h3') && x.state === 'established'),
    );
    const t0 = Date.now();
    await weaveOk(
      lab,
      'h3',
      ['launch', '--nickname', 'h3', '--datapath', 'sleeve', '--key-rotation', '1', lab.host('h1').addrs[0]],
      PASSWORD,
    );
    await waitFor(
      'pings again',
      async () => (await lab.execIn(c[0].netns, ['ping', '-c1', '-W1', ip(3)])).code === 0,
      20_000,
      100,
    );
    console.log(`      launch to pinging through new keys: ${Date.now() - t0} ms`);
    assert.match(
      await weaveOk(lab, 'h1', ['status', 'connections']),
      /encrypted\((aes-256-gcm|chacha20-poly1305)\) \S+\(h3\)/,
    );
  });

  it("peers that both trust each other's subnet go unencrypted; with a third that does not, frames are sealed", async () => {
    const conns = await weaveOk(lab, 'h1', ['status', 'connections']);
    assert.match(conns, new RegExp(`unencrypted h2|unencrypted ${names.get('h2')}`));
    assert.match(conns, /encrypted\((aes-256-gcm|chacha20-poly1305)\)/);
    await waitForPing(lab, c[0].netns, ip(2));
    const plain = await onTheWire(lab, 'h2', 6, () =>
      lab.execIn(c[0].netns, ['ping', '-c', '3', '-i', '0.1', '-p', MARKER, ip(2)]),
    );
    assert.equal(
      plain.marker,
      true,
      'between trusted peers the payload is on the wire (the check sees it when it is there)',
    );
    const sealed = await onTheWire(lab, 'h3', 6, () =>
      lab.execIn(c[0].netns, ['ping', '-c', '3', '-i', '0.1', '-p', MARKER, ip(3)]),
    );
    assert.equal(sealed.marker, false);
  });
});
