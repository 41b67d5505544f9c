import assert from 'node:assert/strict';
import { decode, encode } from '../../router/vxlan.js';
import { parseVni } from '../../router/options.js';

const frame = Buffer.from(`ffffffffffff0200000000010806${'00'.repeat(28)}`, 'hex');

describe('VXLAN header', () => {
  it('encodes the RFC 7348 header: flags 0x08, VNI in bytes 4-6, reserved bytes zero', () => {
    const d = encode(0x123456, frame);
    assert.equal(d.subarray(0, 8).toString('hex'), '0800000012345600');
    assert.deepEqual(d.subarray(8), frame);
  });

  it('decodes what it encodes', () => {
    assert.deepEqual(decode(encode(42, frame), 42, 1518), { frame, hops: 32 });
  });

  it('names the reason a bad datagram is dropped', () => {
    assert.equal(decode(Buffer.alloc(10), 42, 1518), 'truncated');
    assert.equal(decode(Buffer.alloc(8 + 2000), 42, 1518), 'oversized');
    const badFlags = encode(42, frame);
    badFlags[0] = 0x0c;
    assert.equal(decode(badFlags, 42, 1518), 'bad-flags');
    assert.equal(decode(encode(43, frame), 42, 1518), 'wrong-vni');
  });

  it('parses VNIs in range and rejects others', () => {
    assert.equal(parseVni('6784'), 6784);
    assert.throws(() => parseVni('16777216'), /invalid VNI/);
    assert.throws(() => parseVni('x'), /invalid VNI/);
  });
});
