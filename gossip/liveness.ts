import type { Connection } from '@libp2p/interface';
import type { Node } from './node.js';

const INTERVAL_MS = 1000;
/** A peer that has not answered for this long is hung up on, and so routed around by everyone. */
export const DEAD_AFTER_MS = 3000;

/** The yamux muxer under a libp2p connection answers pings itself: a 12-byte frame, no stream. */
type Pingable = { muxer?: { ping?(o: { signal: AbortSignal }): Promise<number> } };

/**
 * A killed router's connections close at once (its kernel sends a FIN), but a host that vanishes
 * sends nothing: ping every connection every second and hang up on a peer none of whose
 * connections has answered for 3 s. The ping is the muxer's own frame on the connection, not
 * libp2p's ping protocol (a new stream per probe, which takes seconds on a loaded machine and made
 * live connections look dead). When our own timer fires late (the event loop was blocked, or the
 * process starved of CPU), the time we were not running is not held against anyone. A peer that
 * sent us a message since the last tick has answered already and is not pinged: when a hundred
 * routers start at once in one process, the pings of six hundred connections, which carried
 * topology anyway, were 6 % of the CPU on the sending side alone.
 */
export class Liveness {
  private timer?: NodeJS.Timeout;
  private readonly lastAnswer = new Map<string, number>();
  private readonly inFlight = new Set<Connection>();
  /** Peers that sent us a message since the last tick, and when they last did. */
  private readonly spoke = new Map<string, number>();
  private lastTick = 0;

  constructor(private readonly node: Node) {}

  start(): void {
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A message came from a peer: as good as an answer to a ping. */
  heard(peer: string): void {
    this.spoke.set(peer, Date.now());
  }

  private tick(): void {
    const now = Date.now();
    const stalled = Math.max(0, now - this.lastTick - INTERVAL_MS * 1.5);
    this.lastTick = now;
    const connected = this.node.getPeers();
    const peers = new Set(connected.map((p) => p.toString()));
    for (const key of this.lastAnswer.keys()) if (!peers.has(key)) this.lastAnswer.delete(key);
    for (const peer of connected) {
      const key = peer.toString();
      const spoke = this.spoke.get(key);
      // a new connection counts as an answer
      const last = spoke ?? Math.min(now, (this.lastAnswer.get(key) ?? now) + stalled);
      this.lastAnswer.set(key, last);
      if (now - last > DEAD_AFTER_MS) {
        this.lastAnswer.delete(key);
        void this.node.hangUp(peer).catch(() => {});
        continue;
      }
      if (spoke !== undefined) continue; // no need to ask
      for (const conn of this.node.getConnections(peer)) this.probe(key, conn);
    }
    this.spoke.clear();
  }

  private probe(key: string, conn: Connection): void {
    if (this.inFlight.has(conn) || conn.status !== 'open') return;
    const muxer = (conn as unknown as Pingable).muxer;
    const signal = AbortSignal.timeout(DEAD_AFTER_MS);
    const ping = muxer?.ping ? muxer.ping({ signal }) : this.node.services.ping.ping(conn.remotePeer, { signal });
    this.inFlight.add(conn);
    ping
      .then(
        () => this.lastAnswer.set(key, Date.now()),
        () => {},
      )
      .finally(() => this.inFlight.delete(conn));
  }
}
