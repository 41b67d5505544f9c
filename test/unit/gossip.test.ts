import assert from 'node:assert/strict';
import { FORGET_AFTER_MS, MAX_PEERS, TOPOLOGY, TopologyChannel } from '../../gossip/topology.js';
import { GossipChannel } from '../../gossip/typed-channel.js';
import { MACS_PER_PEER, MacsChannel, TOMBSTONE_TTL_MS } from '../../gossip/macs.js';
import { Routes } from '../../gossip/routes.js';
import type { weave } from '../../proto/gen/weave.js';

const rec = (links: string[]) => ({
  nickname: '',
  udpPort: 6784,
  sleevePort: 0,
  mtu: 0,
  datapath: '',
  addrs: [],
  links: links.map((peer) => ({ peer, addr: '', outbound: true })),
});

/** A topology as seen by `self` once every peer's own record (from `graph`) has arrived. */
function topologyOf(self: string, graph: Record<string, string[]>, now = () => 1000): TopologyChannel {
  const t = new TopologyChannel(self, now);
  t.setSelf(rec(graph[self]));
  for (const [name, links] of Object.entries(graph)) {
    if (name === self) continue;
    const author = new TopologyChannel(name, now);
    t.merge(author.setSelf(rec(links)), name);
  }
  return t;
}

function shuffle<T>(xs: T[], seed: number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const j = seed % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

describe('topology channel', () => {
  it('converges to the same state whatever the order and repetition of deltas', () => {
    const deltas: { from: string; d: weave.ITopology }[] = [];
    let clock = 1000;
    const authors = ['a', 'b', 'c', 'd'].map((n) => new TopologyChannel(n, () => clock));
    for (let round = 0; round < 5; round++) {
      for (const a of authors) {
        clock++;
        deltas.push({
          from: a.self,
          d: a.setSelf(rec(['a', 'b', 'c', 'd'].filter((x) => x !== a.self).slice(0, 1 + (round % 3)))),
        });
      }
    }
    const states = [1, 2, 3].map((seed) => {
      const t = new TopologyChannel('z', () => clock);
      t.setSelf(rec(['a', 'b', 'c', 'd']));
      for (const { from, d } of shuffle([...deltas, ...deltas], seed)) t.merge(d, from);
      return JSON.stringify([...t.peers.values()].sort((x, y) => x.name.localeCompare(y.name)));
    });
    assert.equal(states[0], states[1]);
    assert.equal(states[1], states[2]);
  });

  it("knows each peer's neighbours over links both ends report, as records change, come and are forgotten", () => {
    let clock = 1000;
    const names = ['me', 'a', 'b', 'c', 'd', 'e'];
    const authors = new Map(names.map((n) => [n, new TopologyChannel(n, () => clock)]));
    const t = authors.get('me')!;
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    // What neighbours() must say, computed from the records as they stand.
    const expected = (name: string) =>
      names
        .filter(
          (p) =>
            t.peers.get(name)?.links.some((l) => l.peer === p) && t.peers.get(p)?.links.some((l) => l.peer === name),
        )
        .sort();
    let forgotten = 0;
    for (let step = 0; step < 300; step++) {
      clock += 100 + rnd(2000); // now and then past FORGET_AFTER_MS, so some unreachable peers are forgotten
      const author = names[rnd(names.length)];
      const links = names.filter((p) => p !== author && rnd(3) === 0);
      const d = authors.get(author)!.setSelf(rec(links));
      if (author !== 'me') t.merge(d, author);
      if (t.gc()) forgotten++;
      for (const n of names) assert.deepEqual(t.neighbours(n), expected(n), `step ${step}: ${n}'s neighbours`);
    }
    assert.ok(forgotten > 0, 'some peers were forgotten on the way');
  });

  it('refuses a peer claiming to be us, a delta about someone else, and versions from the future', () => {
    const t = new TopologyChannel('me', () => 1000);
    t.setSelf(rec([]));
    const impostor = new TopologyChannel('me', () => 5000);
    assert.equal(t.merge(impostor.setSelf(rec(['x'])), undefined), false);
    const b = new TopologyChannel('b', () => 1000);
    assert.equal(t.merge(b.setSelf(rec(['me'])), 'c'), false, 'c cannot speak for b');
    const future = new TopologyChannel('b', () => 1000 + 48 * 3600_000);
    assert.equal(t.merge(future.setSelf(rec(['me'])), 'b'), false);
    assert.equal(t.rejected, 3);
    assert.deepEqual(t.peers.get('me')!.links, []);
    assert.throws(
      () => new GossipChannel(TOPOLOGY, () => t).merge(Buffer.from([0xff, 0xff, 0xff]), 'b', 'b'),
      'undecodable bytes are an error for the engine to count',
    );
  });

  it('returns only the records a full state changed: that is what is passed on, not the whole state', () => {
    let clock = 1000;
    const a = topologyOf('a', { a: ['b'], b: ['a', 'c'], c: ['b'] }, () => clock);
    const b = topologyOf('b', { a: ['b'], b: ['a', 'c'], c: ['b'] }, () => clock);
    clock = 2000;
    const c = new TopologyChannel('c', () => clock);
    b.merge(c.setSelf(rec(['b', 'd'])), 'c'); // b hears of c's new link first
    const changed = a.merge(b.state(), undefined);
    assert.ok(changed, 'something changed');
    assert.deepEqual(
      changed.peers!.map((p) => p.name),
      ['c'],
    );
    assert.equal(a.merge(b.state(), undefined), false, 'and the same state again changes nothing');
  });

  it('summarises by versions: equal for equal states, whatever the order they arrived in; newer() is just what the other lacks', () => {
    let clock = 1000;
    const graph = { a: ['b'], b: ['a', 'c'], c: ['b'] };
    const a = topologyOf('a', graph, () => clock);
    const b = topologyOf('b', graph, () => clock);
    a.merge(b.state(), undefined);
    b.merge(a.state(), undefined);
    assert.deepEqual(a.summary(), b.summary());
    assert.deepEqual(new GossipChannel(TOPOLOGY, () => a).summary!(), new GossipChannel(TOPOLOGY, () => b).summary!());
    assert.equal(a.newer(b.summary()), undefined, 'nothing to send');
    clock = 2000;
    const c = new TopologyChannel('c', () => clock);
    b.merge(c.setSelf(rec(['b', 'd'])), 'c');
    assert.notDeepEqual(a.summary(), b.summary(), 'a newer record of c');
    assert.deepEqual(
      b.newer(a.summary())!.peers!.map((p) => [p.name, p.version]),
      [['c', 2000]],
      "only c's new record",
    );
    assert.equal(a.newer(b.summary()), undefined, 'a has nothing b lacks');
    a.merge(b.newer(a.summary())!, undefined);
    assert.deepEqual(a.summary(), b.summary(), 'and equal again once merged');
  });

  it('forgets peers that can no longer be reached, after a grace period', () => {
    let clock = 1000;
    const t = topologyOf('a', { a: ['b'], b: ['a', 'c'], c: ['b'] }, () => clock);
    assert.deepEqual([...t.peers.keys()].sort(), ['a', 'b', 'c']);
    clock = 2000;
    const b = new TopologyChannel('b', () => clock);
    t.merge(b.setSelf(rec(['a'])), 'b'); // b lost c
    assert.equal(t.gc(), false, 'the router runs gc on a timer: c is unreachable from now');
    assert.deepEqual([...t.reachable()].sort(), ['a', 'b']);
    assert.ok(t.peers.has('c'), 'kept for a while: its link may be in a record still on its way');
    clock += FORGET_AFTER_MS;
    assert.equal(t.gc(), true);
    assert.deepEqual([...t.peers.keys()].sort(), ['a', 'b']);
  });
});

describe('routes', () => {
  it('routes a line through the middle peer', () => {
    const t = topologyOf('h1', { h1: ['h2'], h2: ['h1', 'h3'], h3: ['h2'] });
    const r = new Routes(t);
    assert.equal(r.nextHop('h3'), 'h2');
    assert.deepEqual(r.children('h1'), ['h2']);
    assert.deepEqual(new Routes(topologyOf('h2', { h1: ['h2'], h2: ['h1', 'h3'], h3: ['h2'] })).children('h1'), ['h3']);
  });

  it('gives every peer exactly one parent in every broadcast tree (random graphs)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const names = Array.from({ length: 8 }, (_, i) => `p${i}`);
      const graph: Record<string, string[]> = Object.fromEntries(names.map((n) => [n, []]));
      const link = (x: string, y: string) => {
        if (x !== y && !graph[x].includes(y)) {
          graph[x].push(y);
          graph[y].push(x);
        }
      };
      // a random spanning tree: connected
      for (let i = 1; i < names.length; i++) link(names[i], names[(seed * 7 + i * 13) % i]);
      for (const [x, y] of shuffle(
        names.flatMap((x) => names.map((y) => [x, y] as const)),
        seed,
      ).slice(0, 6))
        link(x, y);
      const views = names.map((n) => new Routes(topologyOf(n, graph)));
      for (const source of names) {
        const received = new Map<string, number>([[source, 1]]);
        for (const [i, v] of views.entries())
          for (const child of v.children(source)) {
            assert.ok(graph[names[i]].includes(child), 'a tree edge is a link');
            received.set(child, (received.get(child) ?? 0) + 1);
          }
        for (const n of names)
          assert.equal(received.get(n), 1, `seed ${seed}: ${n} receives ${source}'s broadcast exactly once`);
      }
    }
  });
});

describe('MAC channel', () => {
  it('lets a move win over the old location, whatever the clocks and the order', () => {
    const h1 = new MacsChannel('h1', () => 5000); // h1's clock is ahead
    const h2 = new MacsChannel('h2', () => 1000);
    const announce1 = h1.announce(42);
    h2.merge(announce1, 'h1');
    const withdraw1 = h1.withdraw(42)!;
    const announce2 = h2.announce(42);
    for (const order of [
      [announce1, withdraw1, announce2],
      [announce2, withdraw1, announce1],
      [withdraw1, announce2, announce1],
    ]) {
      const h3 = new MacsChannel('h3', () => 1000);
      for (const d of order) h3.merge(d, d.entries![0].peer!);
      assert.equal(h3.owner(42), 'h2');
    }
  });

  it('refuses entries written in our name or by someone else', () => {
    const me = new MacsChannel('me');
    const other = new MacsChannel('x');
    assert.equal(me.merge(other.announce(7), 'y'), false);
    const impostor = new MacsChannel('me', () => Date.now() + 1000);
    assert.equal(me.merge(impostor.announce(8), undefined), false);
    assert.equal(me.rejected, 2);
  });
});

describe('bounded gossip state', () => {
  it('refuses MAC records over the per-peer limit, counted, and keeps what it had', () => {
    const me = new MacsChannel('me');
    const flood = {
      entries: Array.from({ length: MACS_PER_PEER + 100 }, (_, i) => ({
        mac: i + 1,
        peer: 'rogue',
        ts: 1000 + i,
        deleted: false,
      })),
    };
    me.merge({ entries: [{ mac: 999_999, peer: 'good', ts: 1, deleted: false }] }, 'good');
    me.merge(flood, 'rogue');
    assert.equal(me.entries.size, MACS_PER_PEER + 1);
    assert.equal(me.rejected, 100);
    assert.equal(me.owner(999_999), 'good');
  });

  it('keeps at most MAX_PEERS peers, whatever a full state claims', () => {
    const t = new TopologyChannel('me', () => 1000);
    const peers = Array.from({ length: MAX_PEERS + 5 }, (_, i) => ({
      name: `p${i}`,
      version: 1,
      nickname: '',
      udpPort: 1,
      sleevePort: 0,
      mtu: 0,
      datapath: '',
      addrs: [],
      links: [],
    }));
    t.merge({ peers }, undefined);
    assert.equal(t.peers.size, MAX_PEERS);
    assert.equal(t.rejected, 5);
  });
});

describe('MAC withdrawals', () => {
  it('are forgotten after their time, do not count against a peer, and do not come back from an old copy', () => {
    let t = 1_000_000;
    const a = new MacsChannel('a', () => t),
      b = new MacsChannel('b', () => t);
    const announce = a.announce(1);
    b.merge(announce, 'a');
    t += 1000;
    const withdraw = a.withdraw(1)!;
    b.merge(withdraw, 'a');
    assert.equal(b.owner(1), undefined);
    t += TOMBSTONE_TTL_MS + 1;
    assert.equal(b.collect(), true);
    assert.equal(b.entries.size, 0);
    assert.equal(b.merge(withdraw, 'a'), false, 'an old withdrawal is not taken again');
    assert.equal(b.entries.size, 0);
  });
});
