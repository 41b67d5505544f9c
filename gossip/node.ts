import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@libp2p/yamux';
import { ping } from '@libp2p/ping';
import { gossipsub } from '@libp2p/gossipsub';
import { preSharedKey } from '@libp2p/pnet';
import type { PrivateKey } from '@libp2p/interface';
import { swarmKey } from './identity.js';
import { cachedSigningKey } from './signer.js';
import { noiseCrypto } from './noise-crypto.js';
import { sameProtocols } from './same-protocols.js';

/**
 * gossipsub's id of a message as it arrives (origin and sequence number, what its message id is
 * made of): a copy already seen is dropped before its signature is checked again. Without it every
 * copy from every mesh peer is verified, several times the work of the messages themselves.
 */
const fastMsgId = (m: { from?: Uint8Array; seqno?: Uint8Array }): string =>
  m.from && m.seqno
    ? `${Buffer.from(m.from.buffer, m.from.byteOffset, m.from.byteLength).toString('base64')}/${Buffer.from(m.seqno.buffer, m.seqno.byteOffset, m.seqno.byteLength).toString('hex')}`
    : '';

/**
 * How long a dial may take, of our own running time (patient-timeout.ts); the ceiling, of wall-clock time, either end.
 */
export const DIAL_TIMEOUT_MS = 10_000,
  DIAL_CEILING_MS = 30_000;

export interface NodeOptions {
  key: PrivateKey;
  host: string;
  port: number;
  password?: string;
  connLimit: number;
}

export type Node = Awaited<ReturnType<typeof createNode>>;

/**
 * The libp2p node of one router: TCP, noise, yamux, ping, gossipsub (peers' protocols taken to be ours:
 * same-protocols.ts); pnet when a password is set.
 */
export async function createNode(o: NodeOptions) {
  const node = await createLibp2p({
    privateKey: cachedSigningKey(o.key),
    addresses: { listen: [`/ip4/${o.host}/tcp/${o.port}`] },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux()],
    connectionProtector: o.password ? preSharedKey({ psk: swarmKey(o.password) }) : undefined,
    // Handshakes in progress are bounded by the connection limit, not libp2p's 10: a peer many dial at
    // once (a hundred hosts started together) refused the rest, and each of them waited out its dial timeout.
    // A dial is timed by the connection maker (DIAL_TIMEOUT_MS of our own running time: a patient
    // timeout), under a ceiling, not by libp2p's 6 s per address and 10 s in all: a hundred routers
    // started at once each wait seconds for their turn on a starved machine, and a dial that gave up
    // at 10 s came back, after its backoff, as the last link to form, five seconds after all the others.
    connectionManager: {
      maxConnections: o.connLimit,
      inboundConnectionThreshold: 1000,
      maxIncomingPendingConnections: o.connLimit,
      addressDialTimeout: DIAL_CEILING_MS,
      dialTimeout: DIAL_CEILING_MS,
      inboundUpgradeTimeout: DIAL_CEILING_MS,
    },
    // Our own liveness check decides when a peer is dead; libp2p's monitor aborts connections whose
    // ping is late, which on a busy machine cuts live peers and feeds a reconnect storm.
    connectionMonitor: { enabled: false },
    services: {
      sameProtocols: sameProtocols(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        floodPublish: true,
        heartbeatInterval: 1000,
        fastMsgIdFn: fastMsgId,
      }),
    },
    start: false,
  });
  return node;
}

export type AnyLibp2p = Libp2p;
