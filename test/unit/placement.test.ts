import assert from 'node:assert/strict';
import { eligible, place, unplaceable, type Placement } from '../../scheduler/placement.js';
import type { Constraint, SchedHost, ServiceSpec, Stack } from '../../scheduler/stack.js';

const svc = (replicas: number, more: Partial<ServiceSpec> = {}): ServiceSpec => ({
  image: 'busybox',
  replicas,
  env: {},
  constraints: [],
  volumes: [],
  restart: 'always',
  ...more,
});
const host = (name: string, labels: Record<string, string> = {}): SchedHost => ({
  name,
  labels: { arch: 'amd64', ...labels },
});
const c = (text: string): Constraint => {
  const m = /^(\w+)(==|!=)(\w+)$/.exec(text)!;
  return { label: m[1], op: m[2] as '==' | '!=', value: m[3] };
};
/** host-1..n, alternating centos (odd) and ubuntu (even). */
const hosts = (n: number): SchedHost[] =>
  Array.from({ length: n }, (_, i) => host(`host-${i + 1}`, { os: i % 2 ? 'ubuntu' : 'centos' }));
const one = (service: string, s: ServiceSpec): Stack[] => [{ name: 'app', services: { [service]: s } }];

/** Replicas per host name, and per value of a label. */
const counts = (ps: readonly Placement[], key: (p: Placement) => string | undefined) => {
  const m: Record<string, number> = {};
  for (const p of ps) {
    const k = key(p) ?? '(none)';
    m[k] = (m[k] ?? 0) + 1;
  }
  return m;
};
const labelOf = (hs: readonly SchedHost[], label: string) => (p: Placement) =>
  hs.find((h) => h.name === p.host)?.labels[label];

/** A seeded Fisher–Yates shuffle, so a failure reproduces. */
function shuffle<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('placement', () => {
  it('gives one entry per replica, indices from 1, sorted by ident, and none for 0 replicas', () => {
    const ps = place(
      [
        { name: 'app', services: { web: svc(12), idle: svc(0) } },
        { name: 'db', services: { pg: svc(1) } },
      ],
      hosts(3),
    );
    assert.equal(ps.length, 13);
    assert.deepEqual(
      ps.map((p) => p.ident),
      [...ps.map((p) => p.ident)].sort(),
    );
    assert.deepEqual(
      ps
        .filter((p) => p.service === 'web')
        .map((p) => p.index)
        .sort((a, b) => a - b),
      Array.from({ length: 12 }, (_, i) => i + 1),
    );
    assert.ok(
      ps.every((p) => p.ident === `${p.stack}/${p.service}/${p.index}` && p.host !== undefined && p.why === undefined),
    );
    assert.deepEqual(place(one('idle', svc(0)), hosts(3)), []);
    assert.deepEqual(place([], hosts(3)), []);
  });

  it('is the same whatever order hosts, stacks and services come in', () => {
    const hs = hosts(9);
    const stacks: Stack[] = [
      {
        name: 'app',
        services: { web: svc(17), api: svc(5, { spread: 'os' }), cron: svc(1, { constraints: [c('os==ubuntu')] }) },
      },
      {
        name: 'db',
        services: { pg: svc(3, { constraints: [c('os!=centos')] }), none: svc(2, { constraints: [c('os==solaris')] }) },
      },
      { name: 'zz', services: { one: svc(40, { spread: 'os' }) } },
    ];
    const want = place(stacks, hs);
    for (let seed = 1; seed <= 8; seed++) {
      const reordered = shuffle(stacks, seed).map((st) => ({
        name: st.name,
        services: Object.fromEntries(shuffle(Object.entries(st.services), seed + 100)),
      }));
      assert.deepEqual(place(reordered, shuffle(hs, seed)), want, `seed ${seed}`);
    }
    // One stack's placement does not depend on the others being there.
    assert.deepEqual(
      place([stacks[2]], hs),
      want.filter((p) => p.stack === 'zz'),
    );
  });

  it('shares replicas over eligible hosts, none more than 1.5 times its even share', () => {
    for (const [r, n] of [
      [100, 5],
      [7, 3],
      [30, 4],
      [1000, 100],
    ]) {
      const load = Object.values(counts(place(one('web', svc(r)), hosts(n)), (p) => p.host));
      assert.ok(Math.max(...load) <= Math.ceil((1.5 * r) / n), `${r} over ${n}: ${load}`);
      assert.equal(
        load.reduce((a, b) => a + b),
        r,
      );
    }
    assert.deepEqual(Object.values(counts(place(one('web', svc(2)), hosts(5)), (p) => p.host)), [1, 1]);
  });

  it('never moves a replica that stays when a service is scaled', () => {
    const hs = hosts(5);
    for (const name of ['web', 'api', 'db']) {
      const big = place(one(name, svc(60)), hs);
      for (const r of [1, 7, 20, 33, 59]) {
        const small = place(one(name, svc(r)), hs);
        for (const p of small)
          assert.equal(p.host, big.find((q) => q.ident === p.ident)!.host, `${p.ident} at ${r} and at 60 replicas`);
      }
    }
  });

  it('spreads exactly over a label: 10/10 over two os, 3/2/2 over three zones', () => {
    const hs = hosts(4);
    const ps = place(one('web', svc(20, { spread: 'os' })), hs);
    assert.deepEqual(counts(ps, labelOf(hs, 'os')), { centos: 10, ubuntu: 10 });
    assert.ok(
      Object.values(counts(ps, (p) => p.host)).every((n) => n <= 8),
      'within a group, at most 1.5 times the even share',
    );

    const zoned = [
      host('h1', { zone: 'c' }),
      host('h2', { zone: 'a' }),
      host('h3', { zone: 'b' }),
      host('h4', { zone: 'a' }),
      host('h5', { zone: 'c' }),
      host('h6'),
    ];
    const zs = place(one('web', svc(7, { spread: 'zone' })), zoned);
    // Groups are sorted by value, so the odd replica goes to the first: zone a.
    assert.deepEqual(counts(zs, labelOf(zoned, 'zone')), { a: 3, b: 2, c: 2 });
    assert.ok(
      zs.every((p) => p.host !== 'h6'),
      'a host without the spread label takes nothing',
    );
  });

  it('respects constraints', () => {
    const hs = [...hosts(6), host('arm-1', { os: 'ubuntu', arch: 'arm64' }), host('bsd', { os: 'freebsd' })];
    const osOf = labelOf(hs, 'os');
    assert.deepEqual(counts(place(one('web', svc(12, { constraints: [c('os==ubuntu')] })), hs), osOf), { ubuntu: 12 });
    const notCentos = place(one('web', svc(12, { constraints: [c('os!=centos')] })), hs);
    assert.ok(notCentos.every((p) => osOf(p) !== 'centos'));
    assert.ok(
      Object.values(counts(notCentos, (p) => p.host)).every((n) => n <= 4),
      'five eligible hosts: at most 1.5 × 12/5, rounded up',
    );
    const both = place(one('web', svc(5, { constraints: [c('os==ubuntu'), c('arch!=arm64')] })), hs);
    assert.ok(both.every((p) => ['host-2', 'host-4', 'host-6'].includes(p.host!)));
    // != also matches a host without the label at all.
    assert.deepEqual(eligible(svc(1, { constraints: [c('gpu!=none')] }), hs).length, hs.length);
    assert.deepEqual(
      eligible(svc(1, { constraints: [c('arch==arm64')], spread: 'os' }), hs).map((h) => h.name),
      ['arm-1'],
    );
    assert.deepEqual(eligible(svc(1, { spread: 'zone' }), hs), []);
  });

  it('leaves a service with no eligible host unplaced, and says why', () => {
    const hs = hosts(4);
    const ps = place(one('web', svc(2, { constraints: [c('os==solaris')] })), hs);
    const why = 'no host has os==solaris (hosts: os=centos ×2, os=ubuntu ×2)';
    assert.deepEqual(ps, [
      { ident: 'app/web/1', stack: 'app', service: 'web', index: 1, why },
      { ident: 'app/web/2', stack: 'app', service: 'web', index: 2, why },
    ]);
    const mixed = [...hs, host('odd', { os: 'ubuntu', arch: 'arm64' }), host('bare', {})];
    assert.equal(
      unplaceable(svc(1, { constraints: [c('os!=centos'), c('os!=ubuntu')] }), hs),
      'no host has os!=centos and os!=ubuntu (hosts: os=centos ×2, os=ubuntu ×2)',
    );
    assert.equal(
      unplaceable(svc(1, { constraints: [c('os==ubuntu'), c('arch!=amd64')] }), hs),
      'no host has arch!=amd64 (hosts: arch=amd64 ×4)',
    );
    assert.equal(
      unplaceable(svc(1, { constraints: [c('gpu==yes')] }), mixed),
      'no host has gpu==yes (hosts: gpu unset ×6)',
    );
    assert.equal(
      unplaceable(svc(1, { constraints: [c('os==centos'), c('arch==arm64')] }), mixed),
      'no host has os==centos and arch==arm64 (hosts: os unset arch=amd64, os=centos arch=amd64 ×2, os=ubuntu arch=amd64 ×2, os=ubuntu arch=arm64)',
    );
    assert.equal(
      unplaceable(svc(1, { constraints: [c('arch==amd64')], spread: 'zone' }), hs),
      'no host with arch==amd64 has label zone to spread on (hosts: zone unset ×4)',
    );
    assert.equal(
      unplaceable(svc(1, { spread: 'zone' }), hs),
      'no host has label zone to spread on (hosts: zone unset ×4)',
    );
    assert.equal(unplaceable(svc(1), []), 'no live hosts');
    assert.equal(unplaceable(svc(1, { constraints: [c('os==ubuntu')] }), hs), undefined);
    assert.equal(unplaceable(svc(0, { constraints: [c('os==solaris')] }), hs), undefined);
  });

  it('is stable: removing a host moves its replicas and only a few others; adding it back restores everything', () => {
    const hs = hosts(5);
    let worstMoved = 0;
    let worstOthers = 0;
    for (const name of ['web', 'api', 'db', 'cache', 'worker', 'a', 'b', 'c']) {
      const stacks = one(name, svc(100));
      const before = place(stacks, hs);
      for (const gone of hs) {
        const rest = hs.filter((h) => h !== gone);
        const after = place(stacks, rest);
        const moved = after.filter((p, i) => p.host !== before[i].host);
        const wasOnGone = before.filter((p) => p.host === gone.name).length;
        assert.ok(after.every((p) => p.host !== gone.name));
        worstMoved = Math.max(worstMoved, moved.length);
        worstOthers = Math.max(worstOthers, moved.length - wasOnGone);
        assert.deepEqual(place(stacks, [...rest, gone]), before, 'adding the host back restores the placement');
      }
    }
    // Measured: at most 31 of 100 move (the ≤ 29 that must, plus ≤ 6 that the load bound shuffles).
    assert.ok(worstMoved <= 31, `moved ${worstMoved}`);
    assert.ok(worstOthers <= 6, `others moved ${worstOthers}`);
  });

  it('is plain rendezvous when capacity does not bind, and keeps spread groups independent', () => {
    // One replica never moves unless its host goes.
    const hs = hosts(8);
    for (const name of ['web', 'api', 'db', 'cache']) {
      const [before] = place(one(name, svc(1)), hs);
      for (const gone of hs) {
        const [after] = place(
          one(name, svc(1)),
          hs.filter((h) => h !== gone),
        );
        if (gone.name !== before.host) assert.equal(after.host, before.host);
      }
    }
    // Losing a centos host leaves the ubuntu half where it was.
    const stacks = one('web', svc(20, { spread: 'os' }));
    const before = place(stacks, hs);
    const after = place(
      stacks,
      hs.filter((h) => h.name !== 'host-1'),
    );
    const ubuntu = (ps: Placement[]) => ps.filter((p) => labelOf(hs, 'os')(p) === 'ubuntu');
    assert.deepEqual(ubuntu(after), ubuntu(before));
    assert.equal(ubuntu(after).length, 10);
  });

  it('places 1000 replicas over 100 hosts quickly', () => {
    const t = performance.now();
    const ps = place(one('big', svc(1000)), hosts(100));
    const ms = performance.now() - t;
    assert.equal(ps.length, 1000);
    assert.ok(Object.values(counts(ps, (p) => p.host)).every((n) => n <= 15));
    assert.ok(ms < 2000, `${ms} ms`);
  });

  it('puts a replica where its volume is, whatever the hashes say, and leaves it unplaced when that host is not live', () => {
    const hs = hosts(4);
    const free = place(one('db', svc(6)), hs);
    // Pin each replica to a host it would not have had.
    const pinTo = new Map(free.map((p) => [p.index, hs.find((h) => h.name !== p.host)!.name]));
    const pinned = place(one('db', svc(6)), hs, (p) => pinTo.get(p.index));
    assert.deepEqual(
      pinned.map((p) => p.host),
      pinned.map((p) => pinTo.get(p.index)),
    );
    const gone = place(one('db', svc(2)), hs, (p) => (p.index === 1 ? 'host-9' : undefined));
    assert.equal(gone[0].host, undefined);
    assert.equal(gone[0].why, 'its volume is on host-9, which is not a live host');
    assert.equal(gone[1].host, free[1].host, 'an unpinned replica keeps its host');
    // Pins may pile every replica on one host: the others still find a host.
    const piled = place(one('db', svc(8)), hs.slice(0, 2), (p) => (p.index <= 6 ? 'host-1' : undefined));
    assert.ok(
      piled.every((p) => p.host),
      'all placed',
    );
  });
});
