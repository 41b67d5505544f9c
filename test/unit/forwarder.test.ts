import assert from 'node:assert/strict';
import { Forwarder } from '../../router/forwarder.js';
import { MacTable, LOCAL } from '../../router/mac-table.js';
import { Endpoint, Endpoints, makeEndpoint } from '../../router/endpoints.js';
import { encode } from '../../router/vxlan.js';
import { formatMac, parseMac } from '../../router/mac.js';

const VNI = 7;
const A = '02:00:00:00:00:0a', B = '02:00:00:00:00:0b', C = '02:00:00:00:00:0c', BCAST = 'ff:ff:ff:ff:ff:ff';

function frame(dst: string, src: string): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(parseMac(dst), 0, 6);
  f.writeUIntBE(parseMac(src), 6, 6);
  f.writeUInt16BE(0x0800, 12);
  return f;
}

function setup() {
  const macs = new MacTable();
  const endpoints = new Endpoints();
  endpoints.add(makeEndpoint('p1', 'one', '198.18.0.1', 6784, 'router'));
  endpoints.add(makeEndpoint('p2', 'two', '198.18.0.2', 6784, 'router'));
  const sent: { to: string; d: Buffer }[] = [];
  const injected: Buffer[] = [];
  const f = new Forwarder({ vni: VNI, maxFrame: 1518, macs, endpoints,
    send: (d: Buffer, to: Endpoint) => sent.push({ to: to.name, d }), inject: (fr: Buffer) => injected.push(Buffer.from(fr)) });
  return { f, macs, sent, injected };
}

describe('forwarder', () => {
  it('floods broadcast and unknown unicast from the bridge to every peer, and learns the source as local', () => {
    const { f, macs, sent } = setup();
    f.fromBridge(frame(BCAST, A));
    f.fromBridge(frame(B, A));
    assert.deepEqual(sent.map((s) => s.to), ['p1', 'p2', 'p1', 'p2']);
    assert.equal(macs.lookup(parseMac(A)), LOCAL);
  });

  it('sends a frame for a learned MAC only to the peer that owns it', () => {
    const { f, sent, macs } = setup();
    f.fromPeer(encode(VNI, frame(A, B)), '198.18.0.2');
    assert.equal(macs.lookup(parseMac(B)), 'p2');
    f.fromBridge(frame(B, A));
    assert.deepEqual(sent.map((s) => s.to), ['p2']);
  });

  it('does not tunnel frames for local MACs', () => {
    const { f, sent } = setup();
    f.fromBridge(frame(BCAST, C));
    sent.length = 0;
    f.fromBridge(frame(C, A));
    assert.equal(sent.length, 0);
    assert.equal(f.counters.dropped['local-destination'], 1);
  });

  it('injects frames from peers for local, unknown and group destinations, never relays to another peer', () => {
    const { f, injected, sent } = setup();
    f.fromPeer(encode(VNI, frame(BCAST, B)), '198.18.0.2');
    f.fromPeer(encode(VNI, frame(A, B)), '198.18.0.2');
    f.fromPeer(encode(VNI, frame(C, A)), '198.18.0.1'); // C unknown: inject
    assert.equal(injected.length, 3);
    f.fromPeer(encode(VNI, frame(B, A)), '198.18.0.1'); // B lives at p2: not ours to deliver
    assert.equal(injected.length, 3);
    assert.equal(sent.length, 0);
    assert.equal(f.counters.dropped['not-for-us'], 1);
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

describe('MAC table', () => {
  it('ages entries out and forgets a departed peer', () => {
    let t = 0;
    const m = new MacTable(1000, () => t);
    m.learn(1, 'p1'); m.learn(2, 'p2');
    t = 500; m.learn(2, 'p2');
    t = 1200;
    assert.equal(m.lookup(1), undefined);
    assert.equal(m.lookup(2), 'p2');
    m.forgetPeer('p2');
    assert.equal(m.size, 0);
  });

  it('formats MACs as colon-separated hex', () => {
    assert.equal(formatMac(parseMac('0a:1b:2c:3d:4e:5f')), '0a:1b:2c:3d:4e:5f');
  });
});
