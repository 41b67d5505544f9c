import '../../common/polyfill.js';
// A hostile control-plane peer: joins a router (its password, if any, in WEAVE_PASSWORD) and sends
// it mutated gossip: valid messages of every channel with bytes flipped or cut, on the gossipsub
// topics, in sync messages, and as requests. Prints how many it sent, then stays until killed.
// `node dist/bench/fuzzers/gossip.js IP COUNT SEED`
import { generateKeyPair } from '@libp2p/crypto/keys';
import { multiaddr } from '@multiformats/multiaddr';
import { createNode } from '../../gossip/node.js';
import { SYNC_PROTOCOL, topic } from '../../gossip/gossip.js';
import { requestProtocol } from '../../gossip/requests.js';
import { weave } from '../../proto/gen/weave.js';
import { seededRandom } from './rand.js';

const CHANNELS = ['topology', 'macs', 'ipam', 'dns'];

export function* hostileGossip(
  self: string,
  seed: number,
): Generator<{ kind: 'publish' | 'sync' | 'request'; channel: string; data: Uint8Array }> {
  const rand = seededRandom(seed);
  const now = Date.now();
  const valid = (channel: string): Uint8Array => {
    const v = [0, 1, now, now + 1e12, 2 ** 53 - 1][rand(5)];
    switch (channel) {
      case 'topology':
        return weave.Topology.encode({
          peers: [
            {
              name: [self, 'x', ''][rand(3)],
              version: v,
              nickname: 'fuzz',
              udpPort: rand(70000),
              addrs: ['1.2.3.4:5'],
              links: [{ peer: 'y', addr: 'z', outbound: true }],
            },
          ],
        }).finish();
      case 'macs':
        return weave.Macs.encode({
          entries: [{ mac: rand(2 ** 30), peer: [self, 'x', ''][rand(3)], ts: v, deleted: rand(2) === 0 }],
        }).finish();
      case 'ipam':
        return weave.IpamState.encode({
          range: ['10.32.0.0/12', '10.99.0.0/16', ''][rand(3)],
          entries: [{ token: rand(2 ** 32), peer: self, version: v }],
          allocations: [{ addr: rand(2 ** 32), ident: 'f', version: v, released: false }],
        }).finish();
      default:
        return weave.DnsRecords.encode({
          entries: [
            {
              name: ['web', 'Bad Name', ''][rand(3)],
              ip: ['10.32.0.1', 'x'][rand(2)],
              peer: self,
              version: v,
              deleted: false,
              ident: 'f',
            },
          ],
        }).finish();
    }
  };
  const mutate = (b: Uint8Array): Uint8Array => {
    const d = Buffer.from(b);
    for (let k = rand(4); k > 0 && d.length; k--) d[rand(d.length)] = rand(256);
    return rand(4) === 0 ? d.subarray(0, rand(d.length + 1)) : d;
  };
  for (;;) {
    const channel = [...CHANNELS, 'nosuch'][rand(5)];
    const kind = (['publish', 'sync', 'request'] as const)[rand(3)];
    const inner = mutate(valid(channel === 'nosuch' ? 'macs' : channel));
    yield {
      kind,
      channel,
      data: kind === 'sync' ? mutate(weave.Sync.encode({ channels: [{ channel, state: inner }] }).finish()) : inner,
    };
  }
}

const [ip, count, seed] = process.argv.slice(2);
if (ip) {
  const node = await createNode({
    key: await generateKeyPair('Ed25519'),
    host: '0.0.0.0',
    port: 0,
    connLimit: 10,
    password: process.env.WEAVE_PASSWORD,
  });
  await node.start();
  const conn = await node.dial(multiaddr(`/ip4/${ip}/tcp/6783`));
  for (const c of CHANNELS) node.services.pubsub.subscribe(topic(c));
  const deadline = Date.now() + 10_000;
  while (!node.services.pubsub.getSubscribers(topic('macs')).some((p) => p.equals(conn.remotePeer))) {
    if (Date.now() > deadline) throw new Error('the router never subscribed');
    await new Promise((r) => setTimeout(r, 50));
  }
  const gen = hostileGossip(node.peerId.toString(), Number(seed));
  let sent = 0;
  for (; sent < Number(count); sent++) {
    const m = gen.next().value as { kind: string; channel: string; data: Uint8Array };
    try {
      if (m.kind === 'publish') await node.services.pubsub.publish(topic(m.channel), m.data);
      else {
        const s = await node.dialProtocol(
          conn.remotePeer,
          m.kind === 'sync' ? SYNC_PROTOCOL : requestProtocol(['ipam', 'digest', 'relay', 'nosuch'][sent % 4]),
          { signal: AbortSignal.timeout(5000) },
        );
        s.send(m.data);
        // We never read an answer: close within a moment, or give up on the stream.
        await s.close({ signal: AbortSignal.timeout(1000) }).catch(() => s.abort(new Error('done')));
      }
    } catch {
      /* the router hung up on this one: that is allowed */
    }
  }
  process.stdout.write(`${sent}\n`);
  setInterval(() => {}, 60_000); // stay connected until killed
}
