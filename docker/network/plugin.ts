// The network plugin's calls, apart from any socket: NetworkDriver.* and IpamDriver.*, and the
// interfaces /Plugin.Activate names. The router serves them on weavemesh.sock (subsystem.ts); a
// relay on another socket can serve the same table.
import type { PluginHandlers } from './body.js';
import { type EndpointVeths, networkDriverHandlers } from './driver.js';
import type { DockerEndpoints } from './endpoints.js';
import { ipamDriverHandlers, type PluginIpam } from './ipam-driver.js';
import type { SwarmAddresses } from './swarm-addresses.js';
import { MANAGED_PLUGIN } from '../../contract/managed-plugin.js';
import { type PluginVolumes, volumeDriverHandlers } from '../../volumes/plugin.js';

export const NETWORK_PLUGIN_IMPLEMENTS = ['NetworkDriver', 'IpamDriver'] as const;
export const MANAGED_PLUGIN_IMPLEMENTS = ['NetworkDriver', 'IpamDriver', 'VolumeDriver'] as const;

export function networkPluginHandlers(
  ipam: PluginIpam,
  endpoints: DockerEndpoints,
  veths: EndpointVeths,
): PluginHandlers {
  return { ...networkDriverHandlers(endpoints, veths), ...ipamDriverHandlers(ipam) };
}

/**
 * The managed plugin's (weave-net:latest, for Swarm): a global network driver, IPAM that tells the
 * manager's requests from the nodes', and the volume driver (volumes: see managed-volumes.ts).
 */
export function managedPluginHandlers(
  addresses: SwarmAddresses,
  endpoints: DockerEndpoints,
  veths: EndpointVeths,
  volumes: PluginVolumes,
): PluginHandlers {
  return {
    ...networkDriverHandlers(endpoints, veths, 'global', MANAGED_PLUGIN),
    ...addresses.handlers(),
    ...volumeDriverHandlers(volumes),
  };
}
