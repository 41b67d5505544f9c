import type { Node } from './node.js';

const INTERVAL_MS = 1000;
const TIMEOUT_MS = 1000;
const MISSES = 2;

/**
 * A killed router's connections close at once, but a host that vanishes sends nothing: ping every
 * peer each second and close the connections of one that misses two in a row (dead within ~3 s).
 */
export class Liveness {
  private timer?: NodeJS.Timeout;
  private readonly misses = new Map<string, number>();

  constructor(private readonly node: Node) {}

  start(): void {
    this.timer = setInterval(() => {
      for (const peer of this.node.getPeers()) {
        const key = peer.toString();
        this.node.services.ping.ping(peer, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
          () => this.misses.delete(key),
          () => {
            const n = (this.misses.get(key) ?? 0) + 1;
            this.misses.set(key, n);
            if (n >= MISSES) { this.misses.delete(key); void this.node.hangUp(peer).catch(() => {}); }
          });
      }
    }, INTERVAL_MS);
  }

  stop(): void { clearInterval(this.timer); }
}
