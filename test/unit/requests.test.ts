import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { weave } from '../../proto/gen/weave.js';
import { RELAY_PROTOCOL, Requests } from '../../gossip/requests.js';
import { peerKeySigner } from '../../gossip/signer.js';
import type { GossipNet } from '../../gossip/net.js';
import { FakeNetwork } from '../fixtures/fake-gossip-net.js';

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);

/** Next hop by BFS over the fake network's links, as Routes computes it over the topology. */
function nextHop(net: FakeNetwork, from: string, to: string): string | undefined {
  const parent = new Map<string, string>([[from, from]]);
  const queue = [from];
  while (queue.length) {
    const n = queue.shift()!;
    for (const m of [...net.get(n).links].sort())
      if (!parent.has(m)) {
        parent.set(m, n);
        queue.push(m);
      }
  }
  if (!parent.has(to) || to === from) return undefined;
  let hop = to;
  while (parent.get(hop) !== from) hop = parent.get(hop)!;
  return hop;
}

interface Peer {
  name: string;
  node: GossipNet;
  requests: Requests;
  asked: string[];
}

/** A line of peers named by real Ed25519 keys, each answering "echo" requests with who asked. */
async function line(n: number, route = nextHop): Promise<{ net: FakeNetwork; peers: Peer[] }> {
  const net = new FakeNetwork();
  const peers: Peer[] = [];
  for (let i = 0; i < n; i++) {
    const key = await generateKeyPair('Ed25519');
    const name = peerIdFromPrivateKey(key).toString();
    const node = net.node(name);
    const p: Peer = {
      name,
      node,
      requests: new Requests(node, name, peerKeySigner(key), (to) => route(net, name, to), 2000),
      asked: [],
    };
    await p.requests.start();
    await p.requests.handle({
      name: 'echo',
      handle: async (from, data) => {
        p.asked.push(from);
        return text(`${str(data)} from ${from.slice(-6)}`);
      },
    });
    await p.requests.handle({ name: 'slow', handle: () => new Promise(() => {}) });
    peers.push(p);
  }
  for (let i = 1; i < n; i++) net.link(peers[i - 1].name, peers[i].name);
  return { net, peers };
}

describe('requests between peers follow the topology', () => {
  it('asks a peer three hops away through the two between, and the answer knows who asked', async () => {
    const {
      peers: [a, b, c, d],
    } = await line(4);
    const reply = await d.requests.request(a.name, 'echo', text('hi'));
    assert.equal(str(reply), `hi from ${d.name.slice(-6)}`);
    assert.deepEqual(a.asked, [d.name]);
    assert.deepEqual([b.requests.counters.relayed, c.requests.counters.relayed], [1, 1]);
    assert.equal(
      str(await a.requests.request(b.name, 'echo', text('next door'))),
      `next door from ${a.name.slice(-6)}`,
      'a neighbour is asked directly',
    );
    assert.equal(b.requests.counters.relayed + c.requests.counters.relayed, 2);
  });

  it('says a peer outside the topology is unreachable, and nothing else is', async () => {
    const {
      net,
      peers: [a, b, c],
    } = await line(3);
    await assert.rejects(
      a.requests.request('12D3KooWNotInTheTopologyAtAll', 'echo', text('x')),
      /12D3KooWNotInTheTopologyAtAll is unreachable \(not in the topology\)/,
    );
    net.unlink(b.name, c.name);
    await assert.rejects(a.requests.request(c.name, 'echo', text('x')), new RegExp(`${c.name} is unreachable`));
  });

  it('refuses a request whose origin a relay forged, and a reply a relay altered', async () => {
    const {
      peers: [a, b, c],
    } = await line(3);
    const mallory = b.node;
    // b claims c's request came from b itself: the signature is c's, so a refuses it.
    await mallory.serve(RELAY_PROTOCOL, async (_from, data) => {
      const r = weave.Relay.decode(data);
      const body = weave.RelayBody.decode(r.body);
      const forged = weave.RelayBody.encode({ ...body, origin: b.name }).finish();
      return mallory.call(a.name, RELAY_PROTOCOL, weave.Relay.encode({ ...r, body: forged }).finish(), {
        timeoutMs: 1000,
      });
    });
    await assert.rejects(
      c.requests.request(a.name, 'echo', text('x')),
      new RegExp(`not signed by its origin ${b.name}`),
    );
    assert.deepEqual(a.asked, [], 'the handler never ran');
    // b changes a's answer on its way back.
    await mallory.serve(RELAY_PROTOCOL, async (_from, data) => {
      const reply = weave.RelayReply.decode(await mallory.call(a.name, RELAY_PROTOCOL, data, { timeoutMs: 1000 }));
      return weave.RelayReply.encode({ ...reply, payload: text('all yours') }).finish();
    });
    await assert.rejects(
      c.requests.request(a.name, 'echo', text('x')),
      new RegExp(`the reply from ${a.name} is not signed by it`),
    );
  });

  it('gives up at the deadline when the far end does not answer', async () => {
    const {
      peers: [a, , c],
    } = await line(3);
    const t0 = Date.now();
    await assert.rejects(c.requests.request(a.name, 'slow', text('x'), 300), /timed out|in time|abort/i);
    assert.ok(Date.now() - t0 < 1500, `gave up after ${Date.now() - t0} ms`);
  });

  it('ends a relay loop (routes that disagree while they change) after a bounded number of hops', async () => {
    // Every peer but the last sends everything back towards the first: a and b bounce c's request.
    const {
      peers: [a, b],
    } = await line(3, (net, from, to) => (from === to ? undefined : [...net.get(from).links][0]));
    await assert.rejects(a.requests.request('12D3KooWSomewhereElse', 'echo', text('x')), /went past 32 hops/);
    assert.ok(b.requests.counters.relayed >= 15, 'it did bounce');
  });

  it('refuses garbage sent to the relay protocol with an error reply, never a throw', async () => {
    const {
      peers: [a, b],
    } = await line(2);
    for (const junk of [
      new Uint8Array([0xff, 0xff, 0xff]),
      weave.Relay.encode({ hops: 3 }).finish(),
      new Uint8Array(),
    ]) {
      const reply = weave.RelayReply.decode(await b.node.call(a.name, RELAY_PROTOCOL, junk, { timeoutMs: 1000 }));
      assert.match(reply.error, /undecodable|without destination/);
    }
    assert.equal(a.requests.counters.refused, 3);
  });
});
