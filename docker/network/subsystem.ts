// Docker's own network API on the overlay: the router serves the `weavemesh` network and IPAM
// driver on <pluginDir>/weavemesh.sock (beside the volume plugin's weave.sock), and makes the
// network `weave` at launch; and the managed plugin's calls (weave-net:latest, for Swarm), which its
// relay brings to managedSocket.
import { join } from 'node:path';
import { log } from '../../common/log.js';
import type { Subsystem } from '../../common/subsystem.js';
import type { Attachments } from '../../attach/attachments.js';
import { createEndpointVeth, deleteEndpointVeth } from '../../attach/endpoint-veth.js';
import type { IpamService } from '../../ipam/service.js';
import type { PluginVolumes } from '../../volumes/plugin.js';
import type { DockerClient } from '../client.js';
import { ensureDefaultNetwork } from './default-network.js';
import { DRIVER_NAME } from './driver.js';
import { DockerEndpoints } from './endpoints.js';
import { managedVolumes, propagatedMountDir } from './managed-volumes.js';
import {
  MANAGED_PLUGIN_IMPLEMENTS,
  managedPluginHandlers,
  NETWORK_PLUGIN_IMPLEMENTS,
  networkPluginHandlers,
} from './plugin.js';
import { serveNetworkPlugin } from './plugin-server.js';
import { SwarmAddresses } from './swarm-addresses.js';
import { NetworkSync } from './sync.js';

export function networkPluginSubsystem(
  docker: DockerClient,
  attachments: Attachments,
  ipam: IpamService,
  volumes: PluginVolumes,
  o: { pluginDir: string; managedSocket: string; mtu: number; mountNs?: string },
): Subsystem {
  const endpoints = new DockerEndpoints(attachments);
  const swarm = new SwarmAddresses(ipam);
  const sync = new NetworkSync(docker, endpoints, ipam, swarm);
  const veths = {
    create: (id: string, mac: string) => createEndpointVeth(id, mac, o.mtu),
    remove: (id: string) => deleteEndpointVeth(id),
  };
  const handlers = networkPluginHandlers(ipam, endpoints, veths);
  let server: { close(): Promise<void> } | undefined;
  let managed: { close(): Promise<void> } | undefined;
  return {
    name: 'docker-network',
    start: async () => {
      const engine = await sync.restore();
      // Without the plugin Docker cannot use our networks, but the rest of the router is of use.
      server = await serveNetworkPlugin(
        join(o.pluginDir, `${DRIVER_NAME}.sock`),
        NETWORK_PLUGIN_IMPLEMENTS,
        handlers,
      ).catch((err: Error) => {
        log.warn(`docker network plugin: not served: ${err.message}`);
        return undefined;
      });
      managed = await serveNetworkPlugin(
        o.managedSocket,
        MANAGED_PLUGIN_IMPLEMENTS,
        managedPluginHandlers(
          swarm,
          endpoints,
          veths,
          managedVolumes(
            volumes,
            () => propagatedMountDir(docker),
            o.mountNs ? ['nsenter', `--mount=${o.mountNs}`, '--'] : [],
          ),
        ),
      ).catch((err: Error) => {
        log.warn(`docker managed plugin: not served: ${err.message}`);
        return undefined;
      });
      if (!engine) return;
      if (server || managed) sync.follow();
      if (server)
        await ensureDefaultNetwork(docker, ipam.defaultSubnet.text).catch((err: Error) =>
          log.warn(`docker network plugin: no network weave: ${err.message}`),
        );
    },
    stop: async () => {
      sync.stop();
      await server?.close();
      await managed?.close();
    },
  };
}
