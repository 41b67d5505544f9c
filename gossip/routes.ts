import type { TopologyChannel } from './topology.js';

/**
 * Unicast next hops and per-source broadcast trees, both by BFS over the topology with
 * neighbours in sorted order, so every peer computes the same trees.
 */
export class Routes {
  private readonly hop = new Map<string, string>();
  private readonly trees = new Map<string, string[]>();

  constructor(private readonly topo: TopologyChannel) {
    const parents = this.bfs(topo.self);
    for (const peer of parents.keys()) {
      if (peer === topo.self) continue;
      let first = peer;
      while (parents.get(first) !== topo.self) first = parents.get(first)!;
      this.hop.set(peer, first);
    }
  }

  /** The neighbour to send to for a peer, or undefined when unreachable. */
  nextHop(peer: string): string | undefined {
    return this.hop.get(peer);
  }

  /** The neighbours that a broadcast from `source` is passed on to by us. */
  children(source: string): string[] {
    let c = this.trees.get(source);
    if (!c) {
      c = [];
      for (const [peer, parent] of this.bfs(source)) if (parent === this.topo.self) c.push(peer);
      this.trees.set(source, c);
    }
    return c;
  }

  get reachable(): string[] {
    return [...this.hop.keys()];
  }

  private bfs(root: string): Map<string, string | undefined> {
    const parent = new Map<string, string | undefined>([[root, undefined]]);
    const queue = [root];
    while (queue.length) {
      const n = queue.shift()!;
      for (const m of this.topo.neighbours(n))
        if (!parent.has(m)) {
          parent.set(m, n);
          queue.push(m);
        }
    }
    return parent;
  }
}
