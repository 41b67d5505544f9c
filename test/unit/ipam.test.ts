import assert from 'node:assert/strict';
import { IpamNet } from '../fixtures/ipam-net.js';
import { statusOf } from '../../common/errors.js';
import { ipToNum, parseSubnet } from '../../common/subnet.js';
import { IpamState } from '../../ipam/state.js';

const RANGE = parseSubnet('10.40.0.0/24');

/** Two or three allocators wired directly; `gossip` false loses every broadcast (only requests get through). */
const cluster = (names: string[], opts: { gossip: boolean } = { gossip: true }) =>
  IpamNet.of(names, { range: RANGE, loss: opts.gossip ? 0 : 1 });

describe('IPAM allocator', () => {
  it('splits the range among the initial peers and gives distinct addresses', async () => {
    const c = cluster(['a', 'b', 'c']);
    const got = await Promise.all(['a', 'b', 'c'].flatMap((n) => [1, 2, 3].map((i) => c.get(n).allocate(`${n}${i}`))));
    assert.equal(new Set(got.map((g) => g.ip)).size, 9);
    assert.deepEqual(
      c
        .get('a')
        .shares()
        .map((s) => s.peer)
        .sort(),
      ['a', 'b', 'c'],
    );
  });

  it('is idempotent: asking twice for an identity gives the same address', async () => {
    const c = cluster(['a']);
    const x = await c.get('a').allocate('web');
    assert.equal((await c.get('a').allocate('web')).ip, x.ip);
  });

  it('gets space donated when its own runs out', async () => {
    const c = cluster(['a', 'b']);
    for (let i = 0; i < 200; i++) await c.get('a').allocate(`x${i}`); // a owns ~128: the rest is donated by b
    const mine = c
      .get('a')
      .shares()
      .find((s) => s.peer === 'a')!;
    assert.ok(mine.owned > 128);
  });

  it("hands a moved identity's address over, even when gossip lost every update", async () => {
    const c = cluster(['a', 'b'], { gossip: false });
    const onA = await c.get('a').allocate('db');
    const onB = await c.get('b').claim('db', onA.addr, 24);
    assert.equal(onB.ip, onA.ip);
    assert.deepEqual(
      await c.get('a').release('db'),
      [],
      'the old home no longer owns it: detaching there releases nothing',
    );
    await assert.rejects(c.get('a').claim('other', onA.addr, 24), /held by another identity/);
    const next = await c.get('a').allocate('other');
    assert.notEqual(next.ip, onA.ip, 'the old owner never gives the moved address to someone else');
  });

  it('refuses a claim of an address held by another identity, outside the range, or of an unreachable owner', async () => {
    const c = cluster(['a', 'b']);
    const x = await c.get('a').allocate('one');
    await assert.rejects(c.get('b').claim('two', x.addr, 24), /held by another identity \("one"\)/);
    await assert.rejects(c.get('b').claim('two', ipToNum('10.41.0.1'), 24), /outside the allocation range/);
    c.down.add('a');
    await assert.rejects(c.get('b').claim('one', x.addr, 24), /unreachable.*rmpeer/);
    await assert.rejects(c.get('b').release('nobody'), /unknown identity/);
  });

  it("takes over a dead peer's space with rmpeer, keeping its allocations", async () => {
    const c = cluster(['a', 'b']);
    const x = await c.get('a').allocate('keeper');
    c.down.add('a');
    assert.ok((await c.get('b').rmpeer('a')) > 0);
    assert.equal((await c.get('b').allocate('keeper')).ip, x.ip, 'the identity keeps its address at its new home');
    assert.deepEqual(
      c
        .get('b')
        .shares()
        .map((s) => s.peer),
      ['b'],
    );
  });

  it('never merges state from a different range', () => {
    const a = new IpamState(RANGE);
    const c = cluster(['z']);
    assert.equal(
      c
        .get('z')
        .onDelta({ range: '10.99.0.0/24', entries: [{ token: ipToNum('10.99.0.0'), peer: 'q', version: 1 }] }, 'q'),
      false,
    );
    assert.equal(c.get('z').mismatches.get('q'), '10.99.0.0/24');
    assert.ok(a.empty);
  });

  it("answers in Weave's HTTP statuses: 404 unknown identity, 409 someone else's address, 503 before the split", async () => {
    const c = cluster(['a', 'b']);
    const x = await c.get('a').allocate('one');
    const status = (p: Promise<unknown>) =>
      p.then(
        () => assert.fail('accepted'),
        (err: unknown) => statusOf(err),
      );
    assert.equal(await status(c.get('a').release('nobody')), 404);
    assert.equal(await status(c.get('b').claim('two', x.addr, 24)), 409);
    const alone = IpamNet.of(['c'], { range: RANGE, consensus: 2, waitMs: 50 });
    assert.equal(await status(alone.get('c').allocate('three')), 503);
    assert.equal(statusOf(new Error('a fault of ours')), 500);
  });
});
