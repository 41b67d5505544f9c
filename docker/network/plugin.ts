// The network plugin's calls, apart from any socket: NetworkDriver.* and IpamDriver.*, and the
// interfaces /Plugin.Activate names. The router serves them on weavemesh.sock (subsystem.ts); a
// relay on another socket can serve the same table.
import type { PluginHandlers } from './body.js';
import { type EndpointVeths, networkDriverHandlers } from './driver.js';
import type { DockerEndpoints } from './endpoints.js';
import { ipamDriverHandlers, type PluginIpam } from './ipam-driver.js';

export const NETWORK_PLUGIN_IMPLEMENTS = ['NetworkDriver', 'IpamDriver'] as const;

export function networkPluginHandlers(
  ipam: PluginIpam,
  endpoints: DockerEndpoints,
  veths: EndpointVeths,
): PluginHandlers {
  return { ...networkDriverHandlers(endpoints, veths), ...ipamDriverHandlers(ipam) };
}
