import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@libp2p/yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { gossipsub } from '@libp2p/gossipsub';
import { preSharedKey } from '@libp2p/pnet';
import type { PrivateKey } from '@libp2p/interface';
import { swarmKey } from './identity.js';

export interface NodeOptions { key: PrivateKey; host: string; port: number; password?: string; connLimit: number }

export type Node = Awaited<ReturnType<typeof createNode>>;

/** The libp2p node of one router: TCP, noise, yamux, identify, ping, gossipsub; pnet when a password is set. */
export async function createNode(o: NodeOptions) {
  const node = await createLibp2p({
    privateKey: o.key,
    addresses: { listen: [`/ip4/${o.host}/tcp/${o.port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: o.password ? preSharedKey({ psk: swarmKey(o.password) }) : undefined,
    connectionManager: { maxConnections: o.connLimit, inboundConnectionThreshold: 1000 },
    // Our own liveness check decides when a peer is dead; libp2p's monitor aborts connections whose
    // ping is late, which on a busy machine cuts live peers and feeds a reconnect storm.
    connectionMonitor: { enabled: false },
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({ allowPublishToZeroTopicPeers: true, emitSelf: false, floodPublish: true, heartbeatInterval: 1000 }),
    },
    start: false,
  });
  return node;
}

export type AnyLibp2p = Libp2p;
