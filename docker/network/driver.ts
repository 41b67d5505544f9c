// libnetwork's remote network driver protocol (NetworkDriver.*), as Weave's `weavemesh` answered it:
// scope local (the legacy plugin) or global (the managed plugin, for Swarm: one network on every node); CreateEndpoint makes a veth with one end on the bridge; Join hands dockerd the other
// end to move into the container as ethwe0 (dockerd gives it the address IPAM gave); Leave and
// DeleteEndpoint take it away. Networks must take their addresses from our IPAM driver.
import { randomBytes } from 'node:crypto';
import { isUnicastMac } from '../../common/mac.js';
import { type Body, dockerId, obj, objs, optStr, type PluginHandlers } from './body.js';
import type { DockerEndpoints } from './endpoints.js';
import { ADDRESS_SPACES } from './ipam-driver.js';

/** The veth of an endpoint: attach/endpoint-veth.ts. */
export interface EndpointVeths {
  create(endpointId: string, mac: string): Promise<string>;
  remove(endpointId: string): Promise<void>;
}

export const DRIVER_NAME = 'weavemesh';
const CONTAINER_IF_PREFIX = 'ethwe';

/** A random locally administered unicast MAC. */
const randomMac = () => {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
};

export function networkDriverHandlers(
  endpoints: DockerEndpoints,
  veths: EndpointVeths,
  scope: 'local' | 'global' = 'local',
  driver = DRIVER_NAME,
): PluginHandlers {
  const done = (): Body => ({});
  return {
    '/NetworkDriver.GetCapabilities': () => ({ Scope: scope, ConnectivityScope: 'global' }),
    '/NetworkDriver.CreateNetwork': (b) => {
      dockerId(b, 'NetworkID');
      obj(b, 'Options');
      if (objs(b, 'IPv6Data').length) throw new Error(`${driver} has no IPv6 addresses: create it without --ipv6`);
      const spaces: string[] = Object.values(ADDRESS_SPACES);
      // Swarm's own IPAM is cluster-wide (the manager allocates): a global network may use it. A local
      // engine's default IPAM would hand out the same addresses on every host.
      for (const d of scope === 'global' ? [] : objs(b, 'IPv4Data'))
        if (!spaces.includes(optStr(d, 'AddressSpace')))
          throw new Error(
            `${driver} takes its addresses from weave's IPAM, not from "${optStr(d, 'AddressSpace').slice(0, 40)}": create the network with --ipam-driver ${driver}`,
          );
      return done();
    },
    '/NetworkDriver.DeleteNetwork': (b) => (dockerId(b, 'NetworkID'), done()),
    '/NetworkDriver.AllocateNetwork': (b) => (dockerId(b, 'NetworkID'), { Options: obj(b, 'Options') }),
    '/NetworkDriver.FreeNetwork': (b) => (dockerId(b, 'NetworkID'), done()),
    '/NetworkDriver.CreateEndpoint': async (b) => {
      dockerId(b, 'NetworkID');
      const id = dockerId(b, 'EndpointID');
      const iface = obj(b, 'Interface');
      const cidr = optStr(iface, 'Address');
      if (!cidr) throw new Error(`${driver} needs the endpoint's address from IPAM (Interface.Address is missing)`);
      const given = optStr(iface, 'MacAddress');
      if (given && !isUnicastMac(given)) throw new Error(`invalid MAC address "${given.slice(0, 40)}"`);
      const mac = given.toLowerCase() || randomMac();
      await veths.create(id, mac);
      endpoints.made.set(id, { mac, cidr });
      // A field dockerd gave must not be given back.
      return { Interface: given ? {} : { MacAddress: mac } };
    },
    '/NetworkDriver.EndpointOperInfo': (b) => (dockerId(b, 'EndpointID'), { Value: {} }),
    '/NetworkDriver.DeleteEndpoint': async (b) => {
      const id = dockerId(b, 'EndpointID');
      endpoints.deleted(id);
      await veths.remove(id);
      return done();
    },
    '/NetworkDriver.Join': async (b) => {
      const id = dockerId(b, 'EndpointID');
      const e = endpoints.made.get(id);
      if (!e) throw new Error(`endpoint ${id.slice(0, 12)} was not created by this router`);
      const srcName = await veths.create(id, e.mac); // the same pair, or made again if it went
      endpoints.joined(id, e);
      return { InterfaceName: { SrcName: srcName, DstPrefix: CONTAINER_IF_PREFIX } };
    },
    '/NetworkDriver.Leave': (b) => {
      endpoints.left(dockerId(b, 'EndpointID'));
      return done();
    },
    '/NetworkDriver.DiscoverNew': done,
    '/NetworkDriver.DiscoverDelete': done,
    '/NetworkDriver.ProgramExternalConnectivity': (b) => (dockerId(b, 'EndpointID'), done()),
    '/NetworkDriver.RevokeExternalConnectivity': (b) => (dockerId(b, 'EndpointID'), done()),
  };
}
