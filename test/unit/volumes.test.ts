import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { weave } from '../../proto/gen/weave.js';
import { VolumesState } from '../../volumes/state.js';
import { CHUNK_BYTES, Outgoing, pull, type Chunk } from '../../volumes/transfer.js';
import type { SendStream } from '../../volumes/backend.js';

/** What a delta looks like on the wire: encoded and decoded again. */
const wire = (m: weave.IVolumesState) => weave.VolumesState.decode(weave.VolumesState.encode(m).finish());

describe('volumes channel: one owner per volume', () => {
  it('takes a handover only from the owner who wrote it, and everyone ends with the same owner', () => {
    let t = 1000;
    const a = new VolumesState('a', () => t),
      b = new VolumesState('b', () => t),
      c = new VolumesState('c', () => t);
    const created = a.put({ name: 'data', owner: 'a', replicas: 2, deleted: false, gen: 0 });
    assert.ok(b.merge(wire(created), 'a'));
    assert.ok(c.merge(wire(created), 'a'));
    t++;
    const handover = a.put({ name: 'data', owner: 'b', replicas: 2, deleted: false, gen: 7 });
    // c passing off a record of a's, changed, as its own delta:
    const forged = wire({ volumes: [{ ...handover.volumes![0], owner: 'c', version: 99_999 }] });
    assert.equal(c.merge(forged, 'c'), false, 'a delta claiming another author is refused');
    assert.equal(c.rejected, 1);
    assert.ok(b.merge(wire(handover), 'a'));
    assert.ok(c.merge(wire(a.state()), undefined));
    for (const s of [a, b, c]) assert.deepEqual([s.live('data')?.owner, s.live('data')?.gen], ['b', 7], s.self);
    assert.equal(b.merge(wire(created), 'a'), false, 'the older record never comes back');
  });

  it('settles two creations of one name at once the same way on every host', () => {
    const a = new VolumesState('a', () => 5000),
      b = new VolumesState('b', () => 5000);
    const da = a.put({ name: 'x', owner: 'a', replicas: 1, deleted: false, gen: 0 });
    const db = b.put({ name: 'x', owner: 'b', replicas: 1, deleted: false, gen: 0 });
    a.merge(wire(db), 'b');
    b.merge(wire(da), 'a');
    assert.equal(a.live('x')?.owner, b.live('x')?.owner);
  });

  it("keeps each host's snapshots as that host wrote them, and orders copies freshest first", () => {
    const a = new VolumesState('a'),
      b = new VolumesState('b'),
      c = new VolumesState('c');
    const hb = b.putHeld(new Map([['v', 20]]))!,
      hc = c.putHeld(new Map([['v', 30]]))!;
    assert.equal(b.putHeld(new Map([['v', 20]])), undefined, 'nothing to say when nothing changed');
    assert.ok(a.merge(wire(hb), 'b'));
    assert.equal(a.merge(wire(hc), 'b'), false, 'b cannot speak for c');
    assert.ok(a.merge(wire(hc), 'c'));
    assert.deepEqual(a.holders('v'), [
      { peer: 'c', gen: 30 },
      { peer: 'b', gen: 20 },
    ]);
    assert.equal(a.merge(wire(a.state()), undefined), false, 'a full state of what we have changes nothing');
  });
});

/** A send stream over bytes, in pieces of odd sizes; `fail` makes the producer fail at the end. */
function source(data: Buffer, fail = false): SendStream {
  const pieces: Buffer[] = [];
  for (let i = 0; i < data.length; i += 300_001) pieces.push(data.subarray(i, i + 300_001));
  return {
    data: Readable.from(pieces),
    done: fail ? Promise.reject(new Error('btrfs send: failed')) : Promise.resolve(),
    cancel: () => {},
  };
}

const collect = (out: Buffer[]) => async (r: Readable) => {
  for await (const b of r) out.push(b as Buffer);
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('volume transfers: pulled in chunks', () => {
  it('delivers every byte in order, asking again for chunks whose replies were lost', async () => {
    const data = randomBytes(5 * CHUNK_BYTES + 12345);
    const out = new Outgoing('v', 1, 'b', source(data));
    const lost = new Set([1, 3]);
    const asked: number[] = [];
    const ask = async (seq: number): Promise<Chunk> => {
      asked.push(seq);
      const c = await out.chunk(seq);
      if (lost.delete(seq)) throw new Error('reply lost');
      return c;
    };
    const got: Buffer[] = [];
    const bytes = await pull(ask, collect(got));
    assert.equal(bytes, data.length);
    assert.equal(sha(Buffer.concat(got)), sha(data));
    assert.equal(asked.filter((s) => s === 1).length, 2, 'chunk 1 asked twice');
    assert.equal(out.bytes, data.length);
  });

  it("fails the receiver when the sender's producer fails, and the sender stops when the receiver fails", async () => {
    const out = new Outgoing('v', 1, 'b', source(randomBytes(3 * CHUNK_BYTES), true));
    await assert.rejects(
      pull((s) => out.chunk(s), collect([])),
      /btrfs send: failed/,
    );
    const out2 = new Outgoing('v', 2, 'b', source(randomBytes(40 * CHUNK_BYTES)));
    let asked = 0;
    await assert.rejects(
      pull(
        (s) => {
          asked++;
          return out2.chunk(s);
        },
        async () => {
          throw new Error('no space left');
        },
      ),
      /no space left|receiver stopped/,
    );
    assert.ok(asked < 20, `the puller stopped early (${asked} chunks asked of 40)`);
  });
});
