import { seconds, text } from '../common/options.js';

export const containersOptions = {
  releaseGraceMs: seconds(
    '--release-grace <seconds>',
    'how long a dead container keeps its address, so that a restart keeps it',
    { min: 0, max: 86400, default: 30, what: 'grace' },
  ),
};

export const networkPluginOptions = {
  managedPluginSocket: text(undefined, "the socket the managed (Swarm) plugin's relay reaches the router on", {
    default: '/run/weave/plugin.sock',
    env: 'WEAVE_MANAGED_PLUGIN_SOCKET',
  }),
};
