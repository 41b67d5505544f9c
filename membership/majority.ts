/** What a host says of the others: whom it has lost (its own record in the cluster's host list). */
export interface HostVote {
  peer: string;
  incarnation: number;
  lost: readonly string[];
}

/**
 * A peer unreachable this far into the host timeout is suspected: its replicas get warm standbys elsewhere (a router
 * restarting is back sooner).
 */
export const SUSPECT_FRACTION = 0.1;
/**
 * A host on the minority side stops its replicas this far into the host timeout, before the majority can declare it
 * dead.
 */
export const FENCE_FRACTION = 0.7;

export interface MembershipView {
  /** Members we have not been able to reach for the whole host timeout (published in our record). */
  lost: string[];
  /** Members unreachable for SUSPECT_FRACTION of the timeout (the lost among them). */
  suspected: string[];
  /** Members that a majority of members has lost: each to be declared dead at its incarnation. */
  dead: { peer: string; incarnation: number }[];
  /** We have not seen a majority of the members for FENCE_FRACTION of the timeout: stop our replicas. */
  fenced: boolean;
  /** Whether we see a majority of the members now. */
  quorum: boolean;
}

/**
 * Host death by majority, and self-fencing. Each host watches the topology and says whom it has
 * lost for longer than the host timeout; a member is dead when more than half of the members say
 * so. A host that cannot see more than half of the members stops its scheduled containers before
 * the other side can declare it dead, so an address is never live on both sides of a partition.
 * Members are the hosts not declared dead, so the majority shrinks with each death: the cluster
 * outlives one host after another, as long as no partition halves it.
 */
export class Membership {
  private readonly unreachableSince = new Map<string, number>();
  private minoritySince?: number;

  constructor(
    private readonly self: string,
    private readonly timeoutMs: number,
  ) {}

  /**
   * `members`: the hosts not declared dead, ourselves included; `reachable`: whether the topology reaches a peer now.
   */
  observe(members: readonly HostVote[], reachable: (peer: string) => boolean, now: number): MembershipView {
    const names = new Set(members.map((m) => m.peer));
    for (const p of this.unreachableSince.keys()) if (!names.has(p)) this.unreachableSince.delete(p);
    const lost: string[] = [];
    const suspected: string[] = [];
    let seen = 0;
    for (const m of members) {
      if (m.peer === this.self || reachable(m.peer)) {
        this.unreachableSince.delete(m.peer);
        seen++;
        continue;
      }
      const since = this.unreachableSince.get(m.peer) ?? now;
      this.unreachableSince.set(m.peer, since);
      if (now - since >= this.timeoutMs * SUSPECT_FRACTION) suspected.push(m.peer);
      if (now - since >= this.timeoutMs) lost.push(m.peer);
    }
    const quorum = seen * 2 > members.length;
    if (quorum) this.minoritySince = undefined;
    else this.minoritySince ??= now;
    const fenced = this.minoritySince !== undefined && now - this.minoritySince >= this.timeoutMs * FENCE_FRACTION;
    // Only a host in the majority counts votes: the minority's view of who is dead is not to be acted on.
    const dead = quorum
      ? members
          .filter(
            (m) =>
              m.peer !== this.self &&
              members.filter((v) => v.peer !== m.peer && (v.peer === this.self ? lost : v.lost).includes(m.peer))
                .length *
                2 >
                members.length,
          )
          .map((m) => ({ peer: m.peer, incarnation: m.incarnation }))
      : [];
    return { lost, suspected, dead, fenced, quorum };
  }
}
