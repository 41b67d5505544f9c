import assert from 'node:assert/strict';
import { weave } from '../../proto/gen/weave.js';
import { topologyWire } from '../../gossip/topology-wire.js';

const record = (name: string, version: number, nickname = 'n') => ({
  name,
  version,
  nickname,
  udpPort: 6784,
  addrs: ['198.18.0.1:6783'],
  links: [{ peer: 'other', addr: '198.18.0.2:6783', outbound: true }],
});

describe('topology wire format (records encoded and decoded once)', () => {
  it("is weave.Topology's, byte for byte, both ways", () => {
    const m = { peers: [record('a', 5), record('b', 7)] };
    const ours = topologyWire.encode(m).finish();
    assert.deepEqual(Buffer.from(ours), Buffer.from(weave.Topology.encode(m).finish()));
    const back = topologyWire.decode(ours);
    assert.deepEqual(
      back.peers!.map((p) => [p.name, Number(p.version), p.nickname, p.links![0].peer]),
      [
        ['a', 5, 'n', 'other'],
        ['b', 7, 'n', 'other'],
      ],
    );
    assert.deepEqual(
      Buffer.from(topologyWire.encode(back).finish()),
      Buffer.from(ours),
      'a decoded record is sent as it came',
    );
  });

  it('gives the same object for a record that arrives again, and decodes anew one whose bytes differ under the same name and version', () => {
    const bytes = weave.Topology.encode({ peers: [record('dup', 9)] }).finish();
    const first = topologyWire.decode(bytes).peers![0];
    assert.equal(topologyWire.decode(Uint8Array.from(bytes)).peers![0], first, 'a copy from another neighbour');
    const forged = topologyWire.decode(weave.Topology.encode({ peers: [record('dup', 9, 'evil')] }).finish()).peers![0];
    assert.notEqual(forged, first);
    assert.equal(forged.nickname, 'evil');
    assert.equal(topologyWire.decode(bytes).peers![0].nickname, 'n', 'the genuine one still decodes as itself');
    const summary = topologyWire.decode(weave.Topology.encode({ peers: [{ name: 'dup', version: 9 }] }).finish())
      .peers![0];
    assert.equal(summary.nickname ?? '', '', "a summary's entry is not mistaken for the record");
  });

  it('skips fields it does not know, and refuses what is not protobuf', () => {
    const w = weave.Topology.encode({ peers: [record('a', 1)] });
    w.uint32((9 << 3) | 0).uint32(42); // an unknown varint field, as a newer router might send
    assert.equal(topologyWire.decode(w.finish()).peers!.length, 1);
    assert.throws(() => topologyWire.decode(Buffer.from([0x0a, 0x50, 0x01])));
  });
});
