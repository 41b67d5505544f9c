import assert from 'node:assert/strict';
import { Gossip } from '../../gossip/gossip.js';
import { FakeNetwork } from '../fixtures/fake-gossip-net.js';
import { toyChannel } from '../fixtures/toy-channel.js';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Routers over a fake network, each with a toy channel; anti-entropy every 20 ms, comparing channels still for 0 ms,
 * unless told otherwise.
 */
async function routers(net: FakeNetwork, names: string[], antiEntropyMs = 20, quietMs = 0, summaries = false) {
  const out = [];
  for (const name of names) {
    const toy = toyChannel(undefined, { summaries });
    const gossip = new Gossip(net.node(name), () => {}, { antiEntropyMs, quietMs });
    gossip.addChannel(toy.channel);
    await gossip.start();
    out.push({ name, gossip, ...toy });
  }
  return out;
}

const stopAll = (rs: { gossip: Gossip }[]) => {
  for (const r of rs) r.gossip.stop();
};

describe('gossip engine over a fake network', () => {
  it('converges on a line of six despite 30% loss and 30% duplication; each fact arrives once', async () => {
    const net = new FakeNetwork(7);
    net.loss = 0.3;
    net.duplication = 0.3;
    const rs = await routers(net, ['a', 'b', 'c', 'd', 'e', 'f']);
    for (let i = 1; i < rs.length; i++) net.link(rs[i - 1].name, rs[i].name);
    for (const r of rs) for (let i = 0; i < 5; i++) r.add(`${r.name}${i}`);
    try {
      await waitFor('every router has all 30 items', () => rs.every((r) => r.set.items.size === 30));
      assert.ok(net.delivered.lost > 0 && net.delivered.duplicated > 0, 'the network did lose and duplicate');
      for (const r of rs) {
        assert.equal(r.seen.length, 25, `${r.name} heard of each of the others' items exactly once`);
        assert.equal(new Set(r.seen).size, 25);
      }
    } finally {
      stopAll(rs);
    }
  });

  it('repairs by anti-entropy alone what every push lost', async () => {
    const net = new FakeNetwork(3);
    const rs = await routers(net, ['a', 'b', 'c'], 60_000);
    net.link('a', 'b');
    net.link('b', 'c');
    await waitFor('links up: digests compared', () =>
      rs.every((r) => r.gossip.repairs.bytesIn + r.gossip.repairs.bytesOut > 0),
    );
    net.loss = 1; // every broadcast and push from now on is lost
    rs[0].add('x');
    rs[2].add('y');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([rs[1].set.items.has('x'), rs[1].set.items.has('y')], [false, false], 'nothing got through');
    net.loss = 0;
    await rs[1].gossip.repair('a');
    await rs[1].gossip.repair('c');
    await waitFor('b has both', () => rs[1].set.items.has('x') && rs[1].set.items.has('y'));
    await rs[0].gossip.repair('b');
    await waitFor('a has y', () => rs[0].set.items.has('y'));
    stopAll(rs);
  });

  it('leaves a channel that is still changing out of anti-entropy rounds (not out of a new connection), and repairs it once it is still', async () => {
    const net = new FakeNetwork(5);
    const rs = await routers(net, ['a', 'b'], 60_000, 300);
    rs[0].add('before'); // a's channel is changing as the connection comes up...
    net.link('a', 'b');
    await waitFor('...and still compared on connect', () => rs[1].set.items.has('before'));
    net.loss = 1;
    rs[0].add('x'); // lost on the way, and a's channel has just changed
    await new Promise((r) => setImmediate(r));
    net.loss = 0;
    const sent = rs[0].gossip.counters.get('toy')!.messagesOut;
    await rs[1].gossip.repair('a');
    assert.equal(rs[1].set.items.has('x'), false, 'not compared while it changes');
    assert.equal(rs[0].gossip.counters.get('toy')!.messagesOut, sent, 'no state was sent for it');
    await new Promise((r) => setTimeout(r, 350)); // the quiet period under test, not a readiness wait
    await rs[1].gossip.repair('a');
    await waitFor('b has x once a was still', () => rs[1].set.items.has('x'));
    stopAll(rs);
  });

  it('drops and counts an undecodable message, and keeps going', async () => {
    const net = new FakeNetwork();
    const rs = await routers(net, ['a', 'b']);
    const rogue = net.node('rogue');
    rogue.subscribe('weave-ts/toy/1');
    net.link('a', 'rogue');
    net.link('a', 'b');
    try {
      await waitFor('a subscribed', () => rogue.subscribers('weave-ts/toy/1').includes('a'));
      rogue.broadcast('weave-ts/toy/1', Buffer.from('{"items": 7}'));
      rogue.broadcast('weave-ts/toy/1', Buffer.from([0xff, 0x00]));
      await waitFor('both dropped', () => rs[0].gossip.counters.get('toy')!.dropped === 2);
      rs[1].add('after');
      await waitFor('a still merges', () => rs[0].set.items.has('after'));
      assert.equal(rs[0].set.items.size, 1);
    } finally {
      stopAll(rs);
    }
  });

  it('compares less and less often while nothing changes, and often again as soon as something does', async () => {
    const net = new FakeNetwork();
    const rs = await routers(net, ['a', 'b'], 20); // rounds every 20 ms while changing, at most 160 ms apart when still
    net.link('a', 'b');
    try {
      await waitFor('connected: digests compared', () =>
        rs.every((r) => r.gossip.repairs.bytesIn + r.gossip.repairs.bytesOut > 0),
      );
      await new Promise((r) => setTimeout(r, 400)); // time for the wait to grow, not a readiness wait
      const still = rs[0].gossip.repairs.rounds;
      await new Promise((r) => setTimeout(r, 800)); // the window under test
      const stillRounds = rs[0].gossip.repairs.rounds - still;
      assert.ok(stillRounds <= 8, `still: ${stillRounds} rounds in 800 ms (every 20 ms would be 40)`);
      net.loss = 1;
      rs[0].add('x'); // lost on the way: only anti-entropy brings it to b, and soon, since a has just changed
      await new Promise((r) => setImmediate(r));
      net.loss = 0;
      const t = Date.now();
      await waitFor('b has x', () => rs[1].set.items.has('x'), 2000);
      assert.ok(Date.now() - t < 400, `repaired after ${Date.now() - t} ms`);
    } finally {
      stopAll(rs);
    }
  });

  it('with summaries, sends each end only what it lacks: on a new connection, and in a round after deltas were lost', async () => {
    const net = new FakeNetwork();
    const rs = await routers(net, ['a', 'b'], 60_000, 0, true);
    const shared = Array.from({ length: 50 }, (_, i) => `shared-${String(i).padStart(2, '0')}`);
    for (const r of rs) {
      for (const x of shared) r.set.items.add(x);
      r.add(`${r.name}-only`);
    }
    const received = (r: (typeof rs)[0]) => r.gossip.counters.get('toy')!.bytesIn;
    net.link('a', 'b');
    try {
      await waitFor("each has the other's item", () => rs[0].set.items.has('b-only') && rs[1].set.items.has('a-only'));
      await new Promise((r) => setImmediate(r));
      for (const r of rs)
        assert.ok(received(r) < 40, `${r.name} was sent ${received(r)} bytes of items: the one it lacked, not all 51`);
      net.loss = 1;
      rs[0].add('x');
      net.loss = 0;
      const before = rs.map(received);
      assert.equal(await rs[1].gossip.repair('a'), true, 'the round found a difference');
      await waitFor('b has x', () => rs[1].set.items.has('x'));
      assert.ok(
        received(rs[1]) - before[1] < 40 && received(rs[0]) === before[0],
        `only x crossed: ${rs.map(received).map((x, i) => x - before[i])} bytes`,
      );
    } finally {
      stopAll(rs);
    }
  });

  it('carries a channel added after start to peers already connected', async () => {
    const net = new FakeNetwork();
    const rs = await routers(net, ['a', 'b']);
    net.link('a', 'b');
    try {
      await waitFor('connected: digests compared, equal (nothing to send)', () =>
        rs.every((r) => r.gossip.repairs.bytesIn + r.gossip.repairs.bytesOut > 0),
      );
      assert.equal(rs[0].gossip.counters.get('toy')!.messagesOut, 0, 'no state was sent: both were empty');
      const late = ['a', 'b'].map(() => toyChannel('late'));
      late[0].add('first');
      rs[0].gossip.addChannel(late[0].channel);
      rs[1].gossip.addChannel(late[1].channel);
      await waitFor('b has the item published before its channel existed', () => late[1].set.items.has('first'));
      late[1].add('second');
      await waitFor('a has the item b published', () => late[0].set.items.has('second'));
    } finally {
      stopAll(rs);
    }
  });
});
