import { log } from '../common/log.js';
import type { Members } from '../membership/members.js';
import type { Cluster } from './cluster.js';
import { serviceDigest } from './manifest.js';
import { place, type Placement } from './placement.js';
import type { ReplicaEngine } from './replicas.js';
import type { ReplicaRunner } from './runner.js';
import type { Stack } from './stack.js';
import type { ThisHost } from './this-host.js';

/**
 * Warm standbys: while a host is unreachable but not yet declared dead, the replicas that would
 * come here if it died are started already, unattached (on no network, no address): when the
 * death is declared they only need their addresses. Stateful services (volumes) wait for the death.
 */
export class Standbys {
  constructor(
    private readonly here: ThisHost,
    private readonly cluster: Cluster,
    private readonly membership: Members,
    private readonly runner: ReplicaRunner,
    private readonly engine: ReplicaEngine,
  ) {}

  /** The replicas that would come here if the suspected hosts died, but for those placed here (`mine`). */
  pick(stacks: Map<string, Stack>, mine: Set<string>): Map<string, Placement> {
    const hosts = this.cluster.hosts();
    const view = this.membership.view;
    const suspects = new Set(view.suspected);
    if (suspects.size === 0 || !view.quorum) return new Map();
    return new Map(
      place(
        [...stacks.values()],
        hosts.filter((h) => !suspects.has(h.name)),
        this.cluster.pin,
      )
        .filter(
          (p) =>
            p.host === this.here.name &&
            !mine.has(p.ident) &&
            stacks.get(p.stack)!.services[p.service].volumes.length === 0,
        )
        .map((p) => [p.ident, p]),
    );
  }

  async warm(p: Placement, stack: Stack): Promise<void> {
    const spec = stack.services[p.service];
    const digest = serviceDigest(spec);
    const r = this.here.containers.get(p.ident);
    if (r?.running && r.digest === digest) return;
    if (r) await this.runner.drop(r, false);
    if (this.membership.view.fenced) return;
    try {
      const id = await this.engine.start(p, spec, digest);
      this.here.containers.set(p.ident, { id, ident: p.ident, digest, running: true });
    } catch (err) {
      log.warn(`standby for ${p.ident}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
}
