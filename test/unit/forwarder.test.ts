import assert from 'node:assert/strict';
import { Forwarder } from '../../router/forwarder.js';
import type { Routing } from '../../router/datapath.js';
import { HEARS_VXLAN, heartbeatDatagram } from '../../router/heartbeat.js';
import { encodeDirected } from '../../router/vxlan.js';
import { MacTable, LOCAL } from '../../router/mac-table.js';
import { type Endpoint, Endpoints, makeEndpoint } from '../../router/endpoints.js';
import { encode, encodeRelay } from '../../router/vxlan.js';
import { formatMac, parseMac } from '../../common/mac.js';

const VNI = 7;
const A = '02:00:00:00:00:0a',
  B = '02:00:00:00:00:0b',
  C = '02:00:00:00:00:0c',
  BCAST = 'ff:ff:ff:ff:ff:ff';

function frame(dst: string, src: string): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(parseMac(dst), 0, 6);
  f.writeUIntBE(parseMac(src), 6, 6);
  f.writeUInt16BE(0x0800, 12);
  return f;
}

/** A full mesh of us, p1 and p2: every peer is one hop away and nobody passes on another's broadcast. */
const mesh: Routing = {
  self: 'me',
  nextHop: (p) => p,
  children: (s) => (s === 'me' ? ['p1', 'p2'] : []),
  linked: () => true,
  peerOf: (id) => (({ 1: 'p1', 2: 'p2' }) as Record<string, string>)[String(id)],
  shortIdOf: (p) => (p === 'me' ? 9n : BigInt(p.slice(1) || 0)),
};

function setup(routing: Routing = mesh, blocked?: string) {
  const macs = new MacTable();
  const endpoints = new Endpoints();
  endpoints.add(makeEndpoint('p1', 'one', '198.18.0.1', 6784, 'router', 1500));
  endpoints.add(makeEndpoint('p2', 'two', '198.18.0.2', 6784, 'router', 1200));
  const sent: { to: string; d: Buffer; final: boolean }[] = [];
  const injected: Buffer[] = [];
  const beats: string[] = [];
  const f = new Forwarder({
    vni: VNI,
    maxFrame: 1518,
    macs,
    endpoints,
    routing: () => routing,
    announced: () => undefined,
    send: (d: Buffer, to: Endpoint, final: boolean) => sent.push({ to: to.name, d, final }),
    inject: (fr: Buffer) => injected.push(Buffer.from(fr)),
    heartbeat: (_f: Buffer, from: Endpoint) => beats.push(from.name),
    via: (ep: Endpoint) => (ep.name === blocked ? endpoints.named(blocked === 'p1' ? 'p2' : 'p1') : ep),
  });
  return { f, macs, sent, injected, beats };
}

describe('forwarder', () => {
  it('floods broadcast and unknown unicast from the bridge to every peer, and learns the source as local', () => {
    const { f, macs, sent } = setup();
    f.fromBridge(frame(BCAST, A));
    f.fromBridge(frame(B, A));
    assert.deepEqual(
      sent.map((s) => s.to),
      ['p1', 'p2', 'p1', 'p2'],
    );
    assert.equal(macs.lookup(parseMac(A)), LOCAL);
  });

  it('sends a frame for a learned MAC only to the peer that owns it', () => {
    const { f, sent, macs } = setup();
    f.fromPeer(encode(VNI, frame(A, B)), '198.18.0.2');
    assert.equal(macs.lookup(parseMac(B)), 'p2');
    f.fromBridge(frame(B, A));
    assert.deepEqual(
      sent.map((s) => s.to),
      ['p2'],
    );
  });

  it('does not tunnel frames for local MACs', () => {
    const { f, sent } = setup();
    f.fromBridge(frame(BCAST, C));
    sent.length = 0;
    f.fromBridge(frame(C, A));
    assert.equal(sent.length, 0);
    assert.equal(f.counters.dropped['local-destination'], 1);
  });

  it('injects frames from peers for local, unknown and group destinations; passes on one whose owner is elsewhere', () => {
    const { f, injected, sent } = setup();
    f.fromPeer(encode(VNI, frame(BCAST, B)), '198.18.0.2');
    f.fromPeer(encode(VNI, frame(A, B)), '198.18.0.2');
    f.fromPeer(encode(VNI, frame(C, A)), '198.18.0.1'); // C unknown: inject
    assert.equal(injected.length, 3);
    assert.equal(sent.length, 0, 'a broadcast from p2 is not passed on in a full mesh');
    f.fromPeer(encode(VNI, frame(B, A)), '198.18.0.1'); // B lives at p2: p1 had a stale table; pass it on
    assert.equal(injected.length, 3);
    assert.deepEqual(
      sent.map((s) => s.to),
      ['p2'],
    );
    f.fromPeer(encode(VNI, frame(B, '02:00:00:00:00:0d')), '198.18.0.2'); // for B, from B's own peer: never back
    assert.equal(f.counters.dropped['no-route'], 1);
  });

  it('counts and drops datagrams from unknown senders and with bad headers', () => {
    const { f, injected } = setup();
    f.fromPeer(encode(VNI, frame(A, B)), '198.18.9.9');
    f.fromPeer(encode(VNI + 1, frame(A, B)), '198.18.0.1');
    f.fromPeer(Buffer.from('garbage'), '198.18.0.1');
    f.fromPeer(encode(VNI, frame(A, BCAST)), '198.18.0.1');
    assert.equal(injected.length, 0);
    assert.deepEqual(f.counters.dropped, { 'unknown-sender': 1, 'wrong-vni': 1, truncated: 1, 'group-source': 1 });
  });

  it('moves a MAC to the peer it is now seen at', () => {
    const { f, macs } = setup();
    f.fromPeer(encode(VNI, frame(BCAST, B)), '198.18.0.2');
    f.fromPeer(encode(VNI, frame(BCAST, B)), '198.18.0.1');
    assert.equal(macs.lookup(parseMac(B)), 'p1');
    f.fromBridge(frame(BCAST, B));
    assert.equal(macs.lookup(parseMac(B)), LOCAL);
  });
});

/** An IPv4 packet of the given total length from 10.32.0.1 to 10.32.0.2, DF set or not. */
function ipFrame(dst: string, src: string, ipLength: number, df: boolean): Buffer {
  const f = Buffer.alloc(14 + ipLength);
  frame(dst, src).copy(f, 0, 0, 14);
  f[14] = 0x45;
  f.writeUInt16BE(ipLength, 16);
  f[20] = df ? 0x40 : 0;
  f[22] = 64;
  f[23] = 17;
  Buffer.from([10, 32, 0, 1, 10, 32, 0, 2]).copy(f, 26);
  return f;
}

describe('forwarder: path MTU and heartbeats', () => {
  it('answers a DF packet too big for the peer with ICMP "fragmentation needed" carrying the peer\'s MTU', () => {
    const { f, macs, sent, injected } = setup();
    macs.learn(parseMac(B), 'p2'); // p2's MTU is 1200
    f.fromBridge(ipFrame(B, A, 1300, true));
    assert.equal(sent.length, 0);
    assert.equal(injected.length, 1);
    const icmp = injected[0];
    assert.equal(formatMac(icmp.readUIntBE(0, 6)), A, 'back to the sender');
    assert.deepEqual([...icmp.subarray(26, 30)], [10, 32, 0, 2], 'from the address it wrote to');
    assert.deepEqual([...icmp.subarray(30, 34)], [10, 32, 0, 1]);
    assert.deepEqual([icmp[34], icmp[35], icmp.readUInt16BE(40)], [3, 4, 1200]);
    assert.equal(f.counters.dropped['too-big'], 1);
    f.fromBridge(ipFrame(B, A, 1300, false));
    assert.equal(injected.length, 1, 'no ICMP without DF');
    f.fromBridge(ipFrame(B, A, 1200, true));
    assert.equal(sent.length, 1, 'a packet of exactly the MTU goes');
    assert.equal(sent[0].final, true, 'to the peer that owns the MAC: its kernel may take it');
    f.fromBridge(frame(BCAST, A));
    assert.deepEqual(
      sent.slice(1).map((x) => x.final),
      [false, false],
      "a flood goes to the peers' userspace, which passes it on",
    );
  });

  it('hands a heartbeat to the heartbeats, never to the bridge', () => {
    const { f, injected, beats } = setup();
    f.fromPeer(heartbeatDatagram(VNI, 1n, HEARS_VXLAN), '198.18.0.1');
    assert.deepEqual(beats, ['p1']);
    assert.equal(injected.length, 0);
  });
});

describe('forwarder: a neighbour our datagrams cannot reach', () => {
  it('sends its frames, floods included, to another router that passes them on', () => {
    const { f, macs, sent } = setup(mesh, 'p1');
    macs.learn(parseMac(B), 'p1');
    f.fromBridge(frame(B, A));
    assert.deepEqual(
      sent.map((x) => [x.to, x.d[0], x.d.readBigUInt64BE(16), x.final]),
      [['p2', 0x44, 1n, false]],
      'to p2, addressed to p1',
    );
    sent.length = 0;
    f.fromBridge(frame(BCAST, A));
    assert.deepEqual(
      sent.map((x) => [x.to, x.d[0]]),
      [
        ['p2', 0x44],
        ['p2', 0x08],
      ],
      "p1's copy of a flood goes through p2 too",
    );
  });

  it('passes such a frame on to its destination as a relayed frame, once', () => {
    const { f, sent, injected } = setup();
    f.fromPeer(encodeDirected(VNI, 2n, 1n, 5, frame(B, A)), '198.18.0.2'); // from p2, for p1
    assert.deepEqual(
      sent.map((x) => [x.to, x.d[0], x.d.readBigUInt64BE(8), x.d[1]]),
      [['p1', 0x57, 2n, 4]],
    );
    assert.equal(injected.length, 0, 'not delivered here');
    f.fromPeer(encodeDirected(VNI, 2n, 1n, 5, frame(B, A)), '198.18.0.1'); // p1 sending p1's own back to it
    assert.equal(sent.length, 1, 'never back where it came from');
  });
});

describe('forwarder on a line p1 - me - p2', () => {
  const line: Routing = {
    ...mesh,
    nextHop: (p) => p,
    children: (s) => (s === 'p1' ? ['p2'] : s === 'p2' ? ['p1'] : ['p1', 'p2']),
  };

  it('passes a broadcast from p1 on to p2 with p1 as origin, and injects it once', () => {
    const { f, sent, injected } = setup(line);
    f.fromPeer(encode(VNI, frame(BCAST, A)), '198.18.0.1');
    assert.equal(injected.length, 1);
    assert.deepEqual(
      sent.map((s) => s.to),
      ['p2'],
    );
    assert.equal(sent[0].d[0], 0x57, 'relayed frames carry our header');
    assert.equal(sent[0].d.readBigUInt64BE(8), 1n, 'with the origin peer');
  });

  it('relays a unicast frame towards the owner of its destination, not back', () => {
    const { f, sent, injected } = setup(line);
    f.fromPeer(encode(VNI, frame(BCAST, B)), '198.18.0.2'); // B lives behind p2
    sent.length = 0;
    f.fromPeer(encode(VNI, frame(B, A)), '198.18.0.1');
    assert.deepEqual(
      sent.map((s) => s.to),
      ['p2'],
    );
    assert.equal(injected.length, 1, 'only the first (broadcast) frame was delivered here');
  });

  it('drops a relayed frame whose hop limit is spent, or whose origin is unknown', () => {
    const { f, injected } = setup(line);
    f.fromPeer(encodeRelay(VNI, 1n, 0, frame(BCAST, A)), '198.18.0.1');
    f.fromPeer(encodeRelay(VNI, 99n, 5, frame(BCAST, A)), '198.18.0.1');
    assert.equal(injected.length, 0);
    assert.deepEqual(f.counters.dropped, { 'hop-limit': 1, 'unknown-origin': 1 });
  });
});

describe('endpoints', () => {
  it('keeps datagrams from an address with the peer that had it first, until it goes', () => {
    const e = new Endpoints();
    e.add(makeEndpoint('router', 'r', '198.18.0.2', 6784, 'router', 1500));
    e.add(makeEndpoint('rogue', 'x', '198.18.0.2', 9999, 'router', 1500));
    assert.equal(e.fromIp('198.18.0.2')?.name, 'router');
    e.remove('rogue');
    assert.equal(e.fromIp('198.18.0.2')?.name, 'router');
    e.add(makeEndpoint('rogue', 'x', '198.18.0.2', 9999, 'router', 1500));
    e.remove('router');
    assert.equal(e.fromIp('198.18.0.2')?.name, 'rogue', 'the other one at that address takes over');
  });
});

describe('MAC table', () => {
  it('ages entries out and forgets a departed peer', () => {
    let t = 0;
    const m = new MacTable(1000, () => t);
    m.learn(1, 'p1');
    m.learn(2, 'p2');
    t = 500;
    m.learn(2, 'p2');
    t = 1200;
    assert.equal(m.lookup(1), undefined);
    assert.equal(m.lookup(2), 'p2');
    m.forgetPeer('p2');
    assert.equal(m.size, 0);
  });

  it('holds at most its limit: the entry learnt first goes, counted, and the first eviction is told once', () => {
    let told = 0;
    const m = new MacTable(
      60_000,
      () => 0,
      100,
      () => told++,
    );
    for (let i = 1; i <= 150; i++) m.learn(i, 'p');
    assert.equal(m.size, 100);
    assert.equal(m.evicted, 50);
    assert.equal(told, 1);
    assert.equal(m.lookup(1), undefined);
    assert.equal(m.lookup(150), 'p');
  });

  it('formats MACs as colon-separated hex', () => {
    assert.equal(formatMac(parseMac('0a:1b:2c:3d:4e:5f')), '0a:1b:2c:3d:4e:5f');
  });
});
