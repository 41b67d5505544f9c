// The managed (v2) Docker plugin that Swarm mode needs (it refuses socket-discovered plugins):
// `weave plugin install` builds it from this config and the static relay (native/relay), and the
// router serves what the relay passes on. One router per host; the plugin is only the way in.
export const MANAGED_PLUGIN = 'weave-net:latest';

/** The socket dockerd finds inside the plugin (under its /run/docker/plugins). */
const PLUGIN_SOCKET = 'weave-net.sock';
/** Where the plugin's volumes appear inside it; dockerd finds them under the plugin's propagated-mount on the host. */
export const PROPAGATED_MOUNT = '/data';
/** Where the router's socket directory appears inside the plugin. */
const ROUTER_DIR_IN_PLUGIN = '/run/weave';

/** config.json of the plugin, relaying to the router's socket at routerSocket (an absolute host path). */
export function managedPluginConfig(routerSocket: string): Record<string, unknown> {
  const slash = routerSocket.lastIndexOf('/');
  const dir = routerSocket.slice(0, slash) || '/';
  const base = routerSocket.slice(slash + 1);
  return {
    description: 'weave-ts: the overlay network and its IPAM for Swarm services, served by the host router',
    documentation: 'https://github.com/weave-ts/weave-ts/blob/main/docs/swarm.md',
    entrypoint: ['/relay', `/run/docker/plugins/${PLUGIN_SOCKET}`, `${ROUTER_DIR_IN_PLUGIN}/${base}`],
    interface: {
      types: ['docker.networkdriver/1.0', 'docker.ipamdriver/1.0', 'docker.volumedriver/1.0'],
      socket: PLUGIN_SOCKET,
    },
    propagatedMount: PROPAGATED_MOUNT,
    network: { type: 'host' },
    mounts: [{ type: 'bind', source: dir, destination: ROUTER_DIR_IN_PLUGIN, options: ['rbind'] }],
    linux: { capabilities: [] },
  };
}
