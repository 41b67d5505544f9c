import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { DnsRecords } from '../../dns/records.js';
import { DnsServer } from '../../dns/server.js';
import { Upstream } from '../../dns/upstream.js';
import { rng } from '../fixtures/fake-gossip-net.js';

const rcode = (b: Buffer | undefined) => (packet.decode(b!) as { rcode?: string }).rcode;
const query = (name: string, type: packet.RecordType = 'A', id = 7) =>
  packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, name }] });

describe('DNS records', () => {
  it('converge whatever the order and repetition; a removal wins over the record it removes', () => {
    let clock = 1000;
    const a = new DnsRecords('a', () => clock),
      b = new DnsRecords('b', () => clock);
    const deltas = [
      { from: 'a', d: a.add('web', '10.32.0.1', 'c1') },
      { from: 'b', d: b.add('web', '10.32.0.2', 'c2') },
    ];
    clock++;
    deltas.push({ from: 'a', d: a.remove({ ident: 'c1' })! });
    for (const order of [
      [0, 1, 2],
      [2, 1, 0],
      [2, 0, 1, 0, 2],
    ]) {
      const z = new DnsRecords('z', () => clock);
      for (const i of order) z.merge(deltas[i].d, deltas[i].from);
      assert.deepEqual(z.lookup('web'), ['10.32.0.2']);
    }
  });

  it("refuses records written in another peer's name, bad names and versions from the future", () => {
    const me = new DnsRecords('me', () => 1000);
    assert.equal(me.merge(new DnsRecords('x', () => 1000).add('web', '10.32.0.1', 'c'), 'y'), false);
    assert.equal(me.merge(new DnsRecords('x', () => 1000).add('Bad Name', '10.32.0.1', 'c'), 'x'), false);
    assert.equal(me.merge(new DnsRecords('x', () => 1000 + 48 * 3600_000).add('web', '10.32.0.1', 'c'), 'x'), false);
    assert.equal(me.rejected, 3);
    assert.deepEqual(me.lookup('web'), []);
  });

  it("answers our own records from before a restart with tombstones, and collects a departed peer's", () => {
    const before = new DnsRecords('me', () => 1000);
    const old = before.add('web', '10.32.0.1', 'c1');
    const restarted = new DnsRecords('me', () => 2000);
    assert.equal(restarted.merge(old, undefined), true);
    assert.deepEqual(restarted.lookup('web'), [], 'not attached here any more');
    const other = new DnsRecords('other', () => 1000);
    const seen = new DnsRecords('seen', () => 1000);
    seen.merge(restarted.state(), undefined);
    assert.deepEqual(seen.lookup('web'), [], 'the tombstone travels');
    seen.merge(other.add('db', '10.32.0.9', 'c9'), 'other');
    assert.equal(
      seen.collect((p) => p !== 'other'),
      true,
    );
    assert.deepEqual(seen.lookup('db'), []);
    seen.merge(other.state(), undefined);
    assert.deepEqual(seen.lookup('db'), [], 'an old copy does not bring it back');
  });
});

describe('DNS server', () => {
  const records = new DnsRecords('me');
  for (const ip of ['10.32.0.1', '10.32.0.2', '10.32.0.3'])
    records.merge(new DnsRecords(`p${ip}`).add('web', ip, 'x'), `p${ip}`);
  const server = new DnsServer({
    domain: 'weave.local',
    records,
    upstream: new Upstream('/nonexistent', () => []),
    mayAsk: (ip) => ip.startsWith('10.'),
    inOverlay: (ip) => ip.startsWith('10.'),
  });

  it('answers every address of a name, TTL 1, in varying order; NXDOMAIN for an unknown one; PTR', async () => {
    const orders = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const r = packet.decode((await server.answer(query('web.weave.local'), '10.32.0.9'))!);
      assert.equal(r.id, 7);
      assert.deepEqual(r.answers!.map((a) => (a as { data: string }).data).sort(), [
        '10.32.0.1',
        '10.32.0.2',
        '10.32.0.3',
      ]);
      assert.ok(r.answers!.every((a) => (a as { ttl: number }).ttl === 1));
      orders.add(r.answers!.map((a) => (a as { data: string }).data).join());
    }
    assert.ok(orders.size > 1, 'shuffled');
    assert.equal(rcode(await server.answer(query('nope.weave.local'), '10.32.0.9')), 'NXDOMAIN');
    const ptr = packet.decode((await server.answer(query('2.0.32.10.in-addr.arpa', 'PTR'), '10.32.0.9'))!);
    assert.deepEqual(
      ptr.answers!.map((a) => (a as { data: string }).data),
      ['web.weave.local'],
    );
    assert.equal(rcode(await server.answer(query('web.weave.local'), '198.18.0.1')), 'REFUSED');
    assert.equal(rcode(await server.answer(query('example.com'), '10.32.0.9')), 'SERVFAIL', 'no upstream');
  });

  it('never throws on hostile input: random bytes and mutated queries (seeded), each dropped or answered', async () => {
    const random = rng(42);
    const valid = [query('web.weave.local'), query('2.0.32.10.in-addr.arpa', 'PTR'), query('weave.local', 'AAAA')];
    const before = server.counters.malformed;
    let answered = 0;
    for (let i = 0; i < 5000; i++) {
      let msg: Buffer;
      if (i % 2) msg = Buffer.from(Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
      else {
        msg = Buffer.from(valid[i % valid.length]);
        for (let k = 1 + Math.floor(random() * 4); k > 0; k--)
          msg[Math.floor(random() * msg.length)] = Math.floor(random() * 256);
        if (random() < 0.3) msg = msg.subarray(0, Math.floor(random() * msg.length));
      }
      const r = await server.answer(msg, '10.32.0.9');
      if (r) {
        answered++;
        packet.decode(r);
      }
    }
    assert.ok(server.counters.malformed - before > 1000, 'most were dropped and counted');
    assert.ok(answered > 0, 'some mutations are still queries and got answers');
  });
});
