/**
 * What the gossip engine needs from the network, by peer name: best-effort broadcast per topic
 * (gossipsub in a router) and one-message exchanges with a connected peer. libp2p-net.ts is the
 * router's; tests drive the engine over an in-memory one that loses and duplicates messages.
 */
export interface GossipNet {
  /** Our own peer name. */
  readonly self: string;
  /** Peers we hold a connection to. */
  peers(): string[];
  /** Connected peers known to listen on a topic (a fresh connection is not, yet). */
  subscribers(topic: string): string[];
  subscribe(topic: string): void;
  /** Best effort: may be lost, duplicated or reordered. */
  broadcast(topic: string, data: Uint8Array): void;
  onBroadcast(fn: (topic: string, data: Uint8Array, from: string) => void): void;
  onConnect(fn: (peer: string) => void): void;
  /** Serves a protocol: one message in, and the reply (if any) out. */
  serve(protocol: string, fn: (from: string, data: Uint8Array) => Promise<Uint8Array | undefined>): Promise<void>;
  /** Sends one message to a connected peer and, unless `oneWay`, waits for its reply. */
  call(
    peer: string,
    protocol: string,
    data: Uint8Array,
    o: { timeoutMs: number; oneWay?: boolean },
  ): Promise<Uint8Array>;
}
