import type { Node } from './node.js';

const INTERVAL_MS = 5000;
const TIMEOUT_MS = 5000;
const DEAD_AFTER_MS = 15_000;

/**
 * A killed router's connections close at once (its kernel sends a FIN), but a host that vanishes
 * sends nothing: ping every peer every 5 s and hang up on one that has not answered for 15 s. The
 * margin is wide on purpose: a busy machine delays pings by a second or more, and hanging up on a
 * live peer costs a reconnect and full-state exchanges that make the machine busier still.
 */
export class Liveness {
  private timer?: NodeJS.Timeout;
  private readonly lastAnswer = new Map<string, number>();
  private inFlight = new Set<string>();

  constructor(private readonly node: Node) {}

  start(): void {
    this.timer = setInterval(() => {
      const now = Date.now();
      const peers = new Set(this.node.getPeers().map((p) => p.toString()));
      for (const key of this.lastAnswer.keys()) if (!peers.has(key)) this.lastAnswer.delete(key);
      for (const peer of this.node.getPeers()) {
        const key = peer.toString();
        if (!this.lastAnswer.has(key)) this.lastAnswer.set(key, now); // a new connection counts as an answer
        if (now - this.lastAnswer.get(key)! > DEAD_AFTER_MS) {
          this.lastAnswer.delete(key);
          void this.node.hangUp(peer).catch(() => {});
          continue;
        }
        if (this.inFlight.has(key)) continue;
        this.inFlight.add(key);
        this.node.services.ping.ping(peer, { signal: AbortSignal.timeout(TIMEOUT_MS) })
          .then(() => this.lastAnswer.set(key, Date.now()), () => {})
          .finally(() => this.inFlight.delete(key));
      }
    }, INTERVAL_MS);
  }

  stop(): void { clearInterval(this.timer); }
}
