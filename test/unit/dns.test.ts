import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import * as packet from 'dns-packet';
import { encodeWithin, OUR_OPT } from '../../dns/fit.js';
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

describe('DNS answers sized for their transport', () => {
  const records = new DnsRecords('me');
  const many = (name: string, n: number) => {
    for (let i = 1; i <= n; i++)
      records.merge(new DnsRecords(`p${name}${i}`).add(name, `10.40.${i >> 8}.${i & 255}`, 'x'), `p${name}${i}`);
  };
  many('big', 100);
  many('huge', 300);
  const server = new DnsServer({
    domain: 'weave.local',
    records,
    upstream: new Upstream('/nonexistent', () => []),
    mayAsk: () => true,
    inOverlay: (ip) => ip.startsWith('10.'),
  });
  const edns = (name: string, udpPayloadSize: number) =>
    packet.encode({
      type: 'query',
      id: 9,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type: 'A', name }],
      additionals: [{ ...OUR_OPT, udpPayloadSize }],
    });
  /** Decodes an answer (it must be valid DNS): its size, TC bit, A records and whether it carries an OPT record. */
  const read = (b: Buffer | undefined) => {
    const r = packet.decode(b!);
    return {
      size: b!.length,
      tc: ((r.flags ?? 0) & packet.TRUNCATED_RESPONSE) !== 0,
      as: r.answers!.filter((a) => a.type === 'A').length,
      opt: r.additionals!.some((a) => a.type === 'OPT'),
    };
  };

  it('fits UDP answers in 512 bytes without EDNS0, or the EDNS0 size within 512..4096, whole records and TC', async () => {
    const plain = read(await server.answer(query('big.weave.local'), '10.32.0.9'));
    assert.ok(plain.size <= 512 && plain.tc && plain.as > 10 && !plain.opt, JSON.stringify(plain));
    assert.deepEqual(read(await server.answer(edns('big.weave.local', 4096), '10.32.0.9')), {
      size: 33 + 100 * 31 + 11,
      tc: false,
      as: 100,
      opt: true,
    });
    const mid = read(await server.answer(edns('big.weave.local', 1232), '10.32.0.9'));
    assert.ok(mid.size <= 1232 && mid.size > 1232 - 31 && mid.tc && mid.opt, JSON.stringify(mid));
    const tiny = read(await server.answer(edns('big.weave.local', 100), '10.32.0.9'));
    assert.ok(tiny.size <= 512 && tiny.size > 512 - 31 && tiny.tc, 'below 512 is taken as 512');
    const greedy = read(await server.answer(edns('huge.weave.local', 65000), '10.32.0.9'));
    assert.ok(greedy.size <= 4096 && greedy.size > 4096 - 32 && greedy.tc, 'above 4096 is taken as 4096');
    assert.deepEqual(read(await server.answer(query('huge.weave.local'), '10.32.0.9', 'tcp')), {
      size: 34 + 300 * 32,
      tc: false,
      as: 300,
      opt: false,
    });
  });

  it('keeps whole records when their sizes differ', () => {
    const answers = Array.from(
      { length: 40 },
      (_, i): packet.Answer => ({
        type: 'PTR',
        name: '1.0.32.10.in-addr.arpa',
        ttl: 1,
        data: `${'x'.repeat(1 + (i % 7) * 9)}.weave.local`,
      }),
    );
    for (const limit of [512, 700, 1000]) {
      const b = encodeWithin({ type: 'response', id: 1, questions: [], answers }, limit);
      const r = packet.decode(b);
      assert.ok(b.length <= limit && (r.flags! & packet.TRUNCATED_RESPONSE) !== 0);
      assert.deepEqual(
        r.answers,
        answers.slice(0, r.answers!.length).map((a) => ({ ...a, class: 'IN', flush: false })),
      );
      const one = answers.slice(0, r.answers!.length + 1);
      assert.ok(packet.encode({ type: 'response', id: 1, questions: [], answers: one }).length > limit, 'the most');
    }
  });

  describe('over TCP', () => {
    let port = 0;
    let tcpServer: DnsServer;
    before(async () => {
      // A free port for both UDP and TCP: the kernel's choice for one, then both bound to it.
      const probe = dgram.createSocket('udp4');
      await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
      port = probe.address().port;
      probe.close();
      tcpServer = new DnsServer({
        domain: 'weave.local',
        records,
        upstream: new Upstream('/nonexistent', () => []),
        mayAsk: () => true,
        inOverlay: (ip) => ip.startsWith('10.'),
        port,
      });
      await tcpServer.listen(['127.0.0.1']);
    });
    after(() => tcpServer.close());
    const framed = (...msgs: Buffer[]) =>
      Buffer.concat(msgs.flatMap((m) => [Buffer.from([m.length >> 8, m.length & 255]), m]));
    /** Sends `bytes` on one connection (then half-closes it) and returns the messages read until the server closes. */
    const converse = (bytes: Buffer) =>
      new Promise<Buffer[]>((resolve, reject) => {
        const sock = net.connect(port, '127.0.0.1');
        let got = Buffer.alloc(0);
        sock.on('data', (c) => {
          got = Buffer.concat([got, c]);
        });
        sock.on('error', reject);
        sock.on('close', () => {
          const msgs: Buffer[] = [];
          while (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
            msgs.push(got.subarray(2, 2 + got.readUInt16BE(0)));
            got = got.subarray(2 + got.readUInt16BE(0));
          }
          resolve(msgs);
        });
        sock.end(bytes);
      });

    it('answers several queries on one connection in full, and hangs up on garbage or a short read, counted', async () => {
      const replies = await converse(
        framed(query('huge.weave.local', 'A', 1), query('big.weave.local', 'A', 2), query('no.weave.local', 'A', 3)),
      );
      assert.deepEqual(
        replies.map((b) => [packet.decode(b).id, read(b).as, read(b).tc]),
        [
          [1, 300, false],
          [2, 100, false],
          [3, 0, false],
        ],
      );
      const before = tcpServer.counters.malformed;
      assert.equal((await converse(framed(Buffer.from('not dns at all'), query('big.weave.local')))).length, 0);
      assert.equal((await converse(Buffer.from([0]))).length, 0, 'half a length');
      assert.equal((await converse(framed(query('big.weave.local')).subarray(0, 20))).length, 0, 'half a message');
      assert.equal(tcpServer.counters.malformed - before, 3);
      assert.equal((await converse(framed(query('big.weave.local', 'A', 4)))).length, 1, 'still answering');
    });
  });
});
