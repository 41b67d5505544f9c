import { peerIdFromString } from '@libp2p/peer-id';
import type { Node } from './node.js';
import type { GossipNet } from './net.js';
import { Lanes, laneProtocol } from './lanes.js';

const MAX_MESSAGE_BYTES = 16 << 20;

/**
 * The gossip engine's network in a router: gossipsub topics, one stream per exchange that has a
 * reply, and one-way messages on a long-lived stream per neighbour (lanes.ts). Both forms of a
 * protocol are served: a router that has no lane for it is sent a stream per message. `heard` is
 * told of each message served, by its sender.
 */
export function libp2pNet(node: Node, heard: (peer: string) => void = () => {}): GossipNet {
  const pubsub = node.services.pubsub;
  const lanes = new Lanes(node, MAX_MESSAGE_BYTES);
  // Kept from libp2p's events (the first connection to a peer, its last gone), not asked of libp2p
  // each time: every change merged is pushed to all neighbours, and getPeers() builds a peer id per
  // connection, which was a tenth of the CPU while a hundred routers converged.
  const connected = new Set(node.getPeers().map(String));
  node.addEventListener('peer:connect', (evt) => connected.add(evt.detail.toString()));
  node.addEventListener('peer:disconnect', (evt) => connected.delete(evt.detail.toString()));
  return {
    self: node.peerId.toString(),
    peers: () => [...connected],
    subscribers: (topic) => pubsub.getSubscribers(topic).map(String),
    subscribe: (topic) => pubsub.subscribe(topic),
    broadcast: (topic, data) => {
      pubsub.publish(topic, data).catch(() => {
        /* no peers yet: the sync on connect carries it */
      });
    },
    onBroadcast: (fn) =>
      pubsub.addEventListener('message', (evt) => {
        const m = evt.detail;
        if (m.type === 'signed') fn(m.topic, m.data, m.from.toString());
      }),
    onConnect: (fn) => node.addEventListener('peer:connect', (evt) => fn(evt.detail.toString())),
    serve: async (protocol, fn) => {
      await node.handle(
        protocol,
        async (stream, connection) => {
          try {
            const from = connection.remotePeer.toString();
            const data = await readAll(stream);
            heard(from);
            const reply = await fn(from, data);
            if (reply) stream.send(reply);
            await stream.close();
          } catch (err) {
            stream.abort(err as Error);
          }
        },
        { runOnLimitedConnection: false },
      );
      await node.handle(
        laneProtocol(protocol),
        async (stream, connection) => {
          try {
            await lanes.serve(stream, connection.remotePeer.toString(), (from, data) => {
              heard(from);
              return fn(from, data);
            });
            await stream.close();
          } catch (err) {
            stream.abort(err as Error);
          }
        },
        { runOnLimitedConnection: false },
      );
    },
    call: async (peer, protocol, data, o) => {
      const signal = AbortSignal.timeout(o.timeoutMs);
      if (o.oneWay) {
        try {
          await lanes.send(peer, protocol, data, signal);
          return new Uint8Array();
        } catch (err) {
          // a router without lanes: one stream for this message
          if ((err as Error).name !== 'UnsupportedProtocolError') throw err;
        }
      }
      const stream = await node.dialProtocol(peerIdFromString(peer), protocol, { signal });
      stream.send(data);
      await stream.close({ signal });
      if (o.oneWay) return new Uint8Array();
      // The deadline covers the wait for the reply too, not only the dial and the send.
      const late = () => stream.abort(new Error(`no reply within ${o.timeoutMs} ms`));
      signal.addEventListener('abort', late, { once: true });
      try {
        return await readAll(stream);
      } finally {
        signal.removeEventListener('abort', late);
      }
    },
  };
}

/** Reads a stream to its end: one message per stream direction. */
async function readAll(stream: AsyncIterable<Uint8Array | { subarray(): Uint8Array }>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk instanceof Uint8Array ? chunk : chunk.subarray();
    size += b.length;
    if (size > MAX_MESSAGE_BYTES) throw new Error('message too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
