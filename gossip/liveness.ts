import type { Node } from './node.js';

const INTERVAL_MS = 5000;
const TIMEOUT_MS = 5000;
/**
 * A peer that has not answered for this long is hung up on, and so routed around by everyone. Not
 * shorter: libp2p's ping, a stream per probe, takes seconds on a loaded machine. With 30 routers on
 * two cores (bench/gossip), probes every 1 s and 4 s of silence made 960 topology changes in 10 s at
 * rest, every 2 s and 10 s made 341; every 5 s and 15 s, 33.
 */
export const DEAD_AFTER_MS = 15_000;

/**
 * A killed router's connections close at once (its kernel sends a FIN), but a host that vanishes
 * sends nothing: ping every peer every 5 s and hang up on one that has not answered for 15 s.
 * A busy machine must not make live peers look dead: when our own timer fires late (the event loop
 * was blocked, or the process starved of CPU), the time we were not running is not held against
 * anyone, since their answers could not have been read in it either.
 */
export class Liveness {
  private timer?: NodeJS.Timeout;
  private readonly lastAnswer = new Map<string, number>();
  private readonly inFlight = new Set<string>();
  private lastTick = 0;
  /** Peers hung up on as dead. */
  hungUp = 0;

  constructor(private readonly node: Node) {}

  start(): void {
    this.lastTick = Date.now();
    this.timer = setInterval(() => this.tick(), INTERVAL_MS);
  }

  stop(): void { clearInterval(this.timer); }

  private tick(): void {
    const now = Date.now();
    const stalled = Math.max(0, now - this.lastTick - INTERVAL_MS * 1.5);
    this.lastTick = now;
    const peers = new Set(this.node.getPeers().map((p) => p.toString()));
    for (const key of this.lastAnswer.keys()) if (!peers.has(key)) this.lastAnswer.delete(key);
    for (const peer of this.node.getPeers()) {
      const key = peer.toString();
      const last = (this.lastAnswer.get(key) ?? now) + stalled; // a new connection counts as an answer
      this.lastAnswer.set(key, Math.min(now, last));
      if (now - last > DEAD_AFTER_MS) {
        this.lastAnswer.delete(key);
        this.hungUp++;
        void this.node.hangUp(peer).catch(() => {});
        continue;
      }
      if (this.inFlight.has(key)) continue;
      this.inFlight.add(key);
      this.node.services.ping.ping(peer, { signal: AbortSignal.timeout(TIMEOUT_MS) })
        .then(() => this.lastAnswer.set(key, Date.now()), () => {})
        .finally(() => this.inFlight.delete(key));
    }
  }
}
