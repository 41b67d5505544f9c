import assert from 'node:assert/strict';
import { DataKeys, ROTATE_FRAMES, type PeerSecurity } from '../../router/data-keys.js';
import { waitFor } from '../../lab/lab.js';

/** Two routers' key agreements wired to each other, as their control connection would carry the requests. */
function pair(o: { trustA?: boolean; trustB?: boolean; rotateMs?: number; password?: [string, string] } = {}) {
  const installed = { a: [] as (PeerSecurity | undefined)[], b: [] as (PeerSecurity | undefined)[] };
  const sent = { a: 0, b: 0 };
  // 'a…' < 'b…': a is the lower-named peer, the one that asks.
  const names = { a: 'a-peer', b: 'b-peer' };
  let a: DataKeys, b: DataKeys;
  const deps = (me: 'a' | 'b', other: () => DataKeys, trusts: boolean, password: string) => ({
    self: names[me],
    password,
    trusts: () => trusts,
    aes: true,
    rotateMs: o.rotateMs ?? 60_000,
    ask: (_peer: string, req: object) => other().handle(names[me], req),
    install: (_peer: string, s: PeerSecurity | undefined) => {
      installed[me].push(s);
    },
    sent: () => sent[me],
  });
  a = new DataKeys(deps('a', () => b, o.trustA ?? false, o.password?.[0] ?? 'pw'));
  b = new DataKeys(deps('b', () => a, o.trustB ?? false, o.password?.[1] ?? 'pw'));
  const last = (who: 'a' | 'b') => installed[who].at(-1);
  return {
    a,
    b,
    installed,
    sent,
    last,
    start: () => {
      a.setNeighbours([{ name: names.b, ip: '198.18.0.2' }]);
      b.setNeighbours([{ name: names.a, ip: '198.18.0.1' }]);
    },
  };
}

const sealed = (s: PeerSecurity | undefined) => {
  assert.ok(s && !s.plain, `sealed keys, not ${JSON.stringify(s)}`);
  return s;
};

describe('data-plane keys between two neighbours', function () {
  this.timeout(20_000);
  const stops: DataKeys[] = [];
  afterEach(() => {
    for (const k of stops.splice(0)) k.stop();
  });

  it('agree: each side sends under the key the other opens with, one per direction, AES-GCM when both have it', async () => {
    const p = pair();
    p.start();
    await waitFor('both installed', async () => p.installed.a.length > 0 && p.installed.b.length > 0);
    const [a, b] = [sealed(p.last('a')), sealed(p.last('b'))];
    assert.equal(a.cipher, 'aes-256-gcm');
    assert.deepEqual(a.tx, b.rx[0]);
    assert.deepEqual(b.tx, a.rx[0]);
    assert.notDeepEqual(a.tx.key, b.tx.key, 'a key per direction');
  });

  it('with different passwords the keys differ (nothing one seals opens at the other)', async () => {
    const p = pair({ password: ['one', 'two'] });
    p.start();
    await waitFor('both installed', async () => p.installed.a.length > 0 && p.installed.b.length > 0);
    assert.notDeepEqual(sealed(p.last('a')).tx.key, sealed(p.last('b')).rx[0].key);
  });

  it('rotate on time, keeping the previous receive key; the answering side switches its sending key only after a moment', async () => {
    const p = pair({ rotateMs: 300 });
    stops.push(p.a, p.b);
    p.start();
    p.a.start();
    p.b.start();
    await waitFor(
      'a second epoch at both ends',
      async () => p.a.report()['b-peer'].epoch >= 2 && p.b.report()['a-peer'].epoch >= 2,
    );
    const a = sealed(p.last('a'));
    assert.equal(a.rx.length, 2, 'the previous receive key is kept while its frames drain');
    await waitFor(
      'b sends under the new key',
      async () => {
        const b = sealed(p.last('b'));
        return b.tx.id === sealed(p.last('a')).rx[0].id;
      },
      5000,
    );
  });

  it('rotate after 2^32 datagrams under one key, long before the time is up', async () => {
    const p = pair();
    stops.push(p.a, p.b);
    p.start();
    p.a.start();
    await waitFor('keys', async () => p.a.report()['b-peer'].epoch === 1);
    p.sent.a += ROTATE_FRAMES;
    await waitFor('a new epoch', async () => p.a.report()['b-peer'].epoch === 2, 5000);
  });

  it("go plain only when both trust each other's subnet", async () => {
    const both = pair({ trustA: true, trustB: true });
    both.start();
    await waitFor('installed', async () => both.installed.a.length > 0 && both.installed.b.length > 0);
    assert.deepEqual([both.last('a'), both.last('b')], [{ plain: true }, { plain: true }]);
    const one = pair({ trustA: true });
    one.start();
    await waitFor('installed', async () => one.installed.a.length > 0 && one.installed.b.length > 0);
    sealed(one.last('a'));
    sealed(one.last('b'));
  });

  it('a neighbour that goes away loses its keys', async () => {
    const p = pair();
    p.start();
    await waitFor('keys', async () => p.installed.a.length > 0);
    p.a.setNeighbours([]);
    assert.equal(p.last('a'), undefined);
  });
});
