import { resolve } from 'node:path';
import { type ConfigOf, defaultsOf, text } from '../common/options.js';
import { apiOptions } from '../api/options.js';
import { gossipOptions } from '../gossip/options.js';
import { routerOptions } from '../router/options.js';
import { firewallOptions } from '../firewall/options.js';
import { ipamOptions } from '../ipam/options.js';
import { dnsOptions } from '../dns/options.js';
import { containersOptions, networkPluginOptions } from '../docker/options.js';
import { proxyOptions } from '../docker/proxy/options.js';
import { membershipOptions } from '../membership/options.js';
import { schedulerOptions } from '../scheduler/options.js';
import { volumesOptions } from '../volumes/options.js';
import { policyOptions } from '../policy/options.js';

/** The router process's own: who it is and where it keeps its state. */
const daemonOptions = {
  nickname: text('--nickname <name>', 'a name for this peer (default: hostname)'),
  dataDir: text('--data-dir <dir>', 'where the router keeps its state and log', {
    default: '/var/lib/weave',
    env: 'WEAVE_DATA_DIR',
    check: (v) => resolve(v),
  }),
};

/**
 * Every option of `weave launch`, in the order `--help` lists them: each subsystem's declarations
 * (its options.ts), one line a subsystem. The CLI builds the command from this, the daemon its
 * defaults.
 */
export const LAUNCH_OPTIONS = {
  ...daemonOptions,
  ...gossipOptions,
  ...routerOptions,
  ...firewallOptions,
  ...apiOptions,
  ...ipamOptions,
  ...containersOptions,
  ...dnsOptions,
  ...proxyOptions,
  ...schedulerOptions,
  ...membershipOptions,
  ...volumesOptions,
  ...networkPluginOptions,
  ...policyOptions,
};

/** Everything `weave launch` decides; the launcher hands it to the daemon as JSON (secrets by environment). */
export type RouterConfig = ConfigOf<typeof LAUNCH_OPTIONS> & {
  /** Routers to connect to, host[:port]: the command's arguments. */
  peers: string[];
};

/** A config as given (JSON on the daemon's command line), its gaps filled with the declared defaults. */
export function withDefaults(given: Partial<RouterConfig>): RouterConfig {
  return { ...defaultsOf(LAUNCH_OPTIONS), peers: [], ...given } as RouterConfig;
}
