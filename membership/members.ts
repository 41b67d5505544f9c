import type { MembershipView } from './majority.js';
import type { HostRecord } from './state.js';

/** Membership's part of the scheduler's report (`weave status`, the status page and tests read it there). */
export interface MembershipReport {
  hostTimeoutMs: number;
  incarnation: number;
  /** This host's own labels. */
  labels: Record<string, string>;
  quorum: boolean;
  fenced: boolean;
  lost: string[];
  hosts: { name: string; nickname: string; labels: Record<string, string>; reachable: boolean; fenced: boolean }[];
  dead: { name: string; nickname: string; at: number }[];
}

/** What the scheduler and volumes ask of membership. */
export interface Members {
  /** The hosts not declared dead (this incarnation), ourselves included, by name. */
  members(): string[];
  /** Their records, by name. */
  hosts(): HostRecord[];
  /** Whether a majority declared the host dead: its replicas go elsewhere, its volumes may be promoted elsewhere. */
  isDead(peer: string): boolean;
  /** As of the last tick: whom we lost, whom we suspect, whether we see a majority, whether we are fenced. */
  readonly view: MembershipView;
  /** A host's nickname: ours, the topology's, its record's, or the start of its name. */
  nickname(peer: string): string;
  /** Called at each change of the hosts' records or deaths. */
  onChange(listener: () => void): void;
  report(): MembershipReport;
}
