// What Docker knows of our networks, brought into the router: after a restart, the endpoints of
// running containers are taken back (their veths stayed) and addresses whose endpoint went while
// the router was down are released; while it runs, each container that joins one of our networks
// is named (its id and names, for `weave ps` and DNS) from the engine's `network connect` event.
import { log } from '../../common/log.js';
import { announceEndpoint, endpointVethExists } from '../../attach/endpoint-veth.js';
import type { DockerClient } from '../client.js';
import type { DockerEvent } from '../engine.js';
import { DRIVER_NAME } from './driver.js';
import type { DockerEndpoints } from './endpoints.js';
import { type NetworkInfo, networksOf } from './engine-networks.js';
import { IPAM_IDENT_PREFIX } from './ipam-driver.js';
import type { SwarmAddresses } from './swarm-addresses.js';
import { MANAGED_PLUGIN } from '../../contract/managed-plugin.js';

/** Our drivers as the engine names them: the legacy plugin's, the managed one's. */
const DRIVERS = [DRIVER_NAME, MANAGED_PLUGIN];

const RETRY_MS = 2000;

/** What the sync needs of IPAM: ipam/service.ts's IpamService. */
export interface SyncIpam {
  heldHere(): string[];
  lookup(ident: string): { ip: string }[];
  release(ident: string, ip?: string): Promise<unknown>;
}

export class NetworkSync {
  private stream?: { close(): void };
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly docker: DockerClient,
    private readonly endpoints: DockerEndpoints,
    private readonly ipam: SyncIpam,
    private readonly swarm: SwarmAddresses,
  ) {}

  /**
   * Takes back the endpoints of running containers and frees the addresses no endpoint holds. Before the plugin
   * serves: no address is being handed out meanwhile. False when no engine answers.
   */
  async restore(): Promise<boolean> {
    let networks: NetworkInfo[];
    let swarmNetworks: NetworkInfo[];
    try {
      networks = await networksOf(this.docker, DRIVER_NAME);
      swarmNetworks = await networksOf(this.docker, MANAGED_PLUGIN);
    } catch (err) {
      log.info(`docker network plugin: nothing taken back (${(err as Error).message})`);
      return false;
    }
    const inUse = new Set<string>();
    let n = 0;
    // Swarm's addresses are the manager's to free: here, only the uses of this host's endpoints count.
    this.swarm.usedHere.clear();
    for (const net of [...networks, ...swarmNetworks])
      for (const [id, c] of Object.entries(net.Containers ?? {})) {
        const ip = c.IPv4Address.split('/')[0];
        if (net.Driver === MANAGED_PLUGIN) this.swarm.use(ip);
        else inUse.add(ip);
        if (!(await endpointVethExists(c.EndpointID))) continue;
        await this.name(c.EndpointID, { mac: c.MacAddress, cidr: c.IPv4Address }, id);
        n++;
      }
    let freed = 0;
    for (const ident of this.ipam.heldHere().filter((i) => i.startsWith(IPAM_IDENT_PREFIX)))
      for (const { ip } of this.ipam.lookup(ident))
        if (!inUse.has(ip))
          freed += await this.ipam.release(ident, ip).then(
            () => 1,
            () => 0,
          );
    if (n || freed) log.info(`docker network plugin: took back ${n} endpoints, released ${freed} addresses`);
    return true;
  }

  /** Follows the engine's `network connect` events until stop(). */
  follow(): void {
    if (this.stopped) return;
    this.stream = this.docker.events(
      { type: ['network'], event: ['connect'] },
      (e) => void this.connected(e).catch((err: Error) => log.warn(`docker network connect: ${err.message}`)),
      (err) => {
        this.stream = undefined;
        if (err && !this.stopped) this.retry = setTimeout(() => this.follow(), RETRY_MS);
      },
    );
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stream?.close();
  }

  private async connected(e: DockerEvent): Promise<void> {
    const attrs = (e.Actor as { Attributes?: Record<string, string> } | undefined)?.Attributes ?? {};
    const container = attrs.container;
    if (!DRIVERS.includes(attrs.type ?? '') || !e.Actor?.ID || !container) return;
    const net = await this.docker.request<NetworkInfo>('GET', `/networks/${encodeURIComponent(e.Actor.ID)}`);
    const c = net.Containers?.[container];
    const made = c && this.endpoints.made.get(c.EndpointID);
    if (c && made && this.endpoints.unnamed(c.EndpointID)) await this.name(c.EndpointID, made, container);
  }

  private async name(endpointId: string, e: { mac: string; cidr: string }, container: string): Promise<void> {
    const info = await this.docker.inspect(container);
    this.endpoints.joined(endpointId, e, {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      hostname: info.Config.Hostname,
    });
    if (info.State.Running) await announceEndpoint(info.State.Pid, e.mac, e.cidr.split('/')[0]);
  }
}
