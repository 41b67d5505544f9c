import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The files a router keeps in its data directory, by what they hold: the daemon writes them, the CLI reads or forgets
 * them.
 */
export const DATA_FILES = {
  /** The router's pid while it runs. */
  pid: 'weave.pid',
  /** The supervisor's and the router's log. */
  log: 'weave.log',
  /** The Docker API proxy's unix socket: `eval $(weave env)` points the docker CLI at it. */
  proxySocket: 'weave.sock',
  /** IPAM's ring and allocations (and its append-only log beside it, `.log`). */
  ipam: 'ipam.json',
  /** The peers `weave launch` and `weave connect` named. */
  targets: 'targets.json',
  /** The addresses our neighbours were last seen at: a hint for restarts. */
  knownPeers: 'known-peers.json',
  /** What is attached, so that a restarted router takes it back. */
  attachments: 'attachments.json',
  /** Deployed stacks. */
  scheduler: 'scheduler.json',
  /** NetworkPolicies, and the containers this host last said it had (covered again at once after a restart). */
  policy: 'policy.json',
  /** The cluster's hosts and the deaths a majority declared. */
  membership: 'membership.json',
  /** Volumes owned and copied here. */
  volumes: 'volumes.json',
  /** A loop-mounted btrfs pool made on first use; `volumes` (a directory) for the dir backend. */
  volumePool: 'volumes.img',
} as const;

/** What `weave reset` forgets: the cluster's state on this host (not its log, nor its volumes). */
export const RESET_FILES: readonly string[] = [
  DATA_FILES.ipam,
  `${DATA_FILES.ipam}.log`,
  DATA_FILES.targets,
  DATA_FILES.attachments,
  DATA_FILES.scheduler,
  DATA_FILES.membership,
  DATA_FILES.policy,
];

/** The programs of the compiled tree (dist/), by role. */
export const ENTRY_POINTS = {
  cli: 'cli/main.js',
  supervisor: 'daemon/supervisor.js',
  router: 'daemon/main.js',
  cni: 'cni/weave-net.js',
} as const;

/** Where an entry point is, beside this file's own compiled copy. */
export const entryPoint = (name: keyof typeof ENTRY_POINTS): string =>
  join(dirname(fileURLToPath(import.meta.url)), '..', ENTRY_POINTS[name]);
