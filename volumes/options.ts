import { resolve } from 'node:path';
import { choice, seconds, text } from '../common/options.js';

export const VOLUME_BACKENDS = ['auto', 'btrfs', 'dir'] as const;
export type VolumeBackendChoice = (typeof VOLUME_BACKENDS)[number];

export const volumesOptions = {
  volumePool: text(
    '--volume-pool <path[:size]>',
    'where volumes live: a directory on btrfs, or a loop file made there (default: volumes.img in the data ' +
      'directory, 10G, made when a volume is first needed)',
    {
      check: (v) => v.replace(/^[^:]+/, (p) => resolve(p)),
    },
  ),
  volumeBackend: choice(
    '--volume-backend <kind>',
    'btrfs (subvolumes, snapshots, incremental send) or dir (plain directories, for hosts without btrfs); auto: ' +
      'btrfs when this host has it',
    VOLUME_BACKENDS,
    'auto',
  ),
  replicateIntervalMs: seconds(
    '--replicate-interval <seconds>',
    'how often volumes with more than one copy send their changes to the other copies',
    { min: 1, max: 3600, default: 5, what: 'replicate interval' },
  ),
  /** Where Docker looks for volume plugins' sockets (each lab host has its own). */
  pluginDir: text(undefined, "Docker's plugin directory", { default: '/run/docker/plugins', env: 'WEAVE_PLUGIN_DIR' }),
  /**
   * The mount namespace a loop pool is mounted in, when not the router's own (a lab host's router runs in one of its
   * own, and Docker must see the pool).
   */
  mountNs: text(undefined, 'the mount namespace Docker sees', { env: 'WEAVE_MOUNT_NS' }),
};
