// libnetwork's remote IPAM protocol (IpamDriver.*) over our IPAM: a Docker network's pool is a
// subnet of the cluster's range, each endpoint's address is allocated (or, with --ip, claimed) in
// the ring like any other, under an identity of its own (`weavemesh:` and a random tag), and given
// back when dockerd releases it. The gateway is a stand-in that is never allocated: the containers'
// default route is Docker's (docker_gwbridge), as it was with Weave's plugin.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from '../../common/cidr.js';
import { numToIp, parseSubnet, type Subnet, within } from '../../common/subnet.js';
import { type Body, obj, optStr, type PluginHandlers, str } from './body.js';

/** What the IPAM driver needs of IPAM: ipam/service.ts's IpamService. */
export interface PluginIpam {
  readonly range: Subnet;
  readonly defaultSubnet: Subnet;
  allocate(ident: string, subnet?: string): Promise<{ ip: string }>;
  claim(ident: string, ip: string, prefix: number): Promise<unknown>;
  release(ident: string, ip?: string): Promise<unknown>;
  /** The identity holding an address, if any. */
  holder(ip: string): string | undefined;
}

/** Our address spaces: a network whose pool is in neither did not take its addresses from us. */
export const ADDRESS_SPACES = { local: 'weavelocal', global: 'weaveglobal' } as const;
export const IPAM_IDENT_PREFIX = 'weavemesh:';
const GATEWAY_REQUEST = 'com.docker.network.gateway';

/** A pool's id names its subnet and the part of it addresses come from (--ip-range): `weave-SUBNET-RANGE`. */
export function parsePoolId(id: string): { subnet: Subnet; range: Subnet } {
  const m = /^weave-([\d./]+)-([\d./]+)$/.exec(id);
  if (!m) throw new Error(`unknown pool "${id.slice(0, 60)}": not one of weavemesh's`);
  return { subnet: parseSubnet(m[1], 'pool subnet'), range: parseSubnet(m[2], 'pool range') };
}

export function ipamDriverHandlers(ipam: PluginIpam): PluginHandlers {
  const inRange = (text: string, what: string): Subnet => {
    const s = parseSubnet(text, what);
    if (!within(s, ipam.range))
      throw new Error(`${what} ${text} is outside weave's allocation range ${ipam.range.text}`);
    return s;
  };
  return {
    '/IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: false, RequiresRequestReplay: false }),
    '/IpamDriver.GetDefaultAddressSpaces': () => ({
      LocalDefaultAddressSpace: ADDRESS_SPACES.local,
      GlobalDefaultAddressSpace: ADDRESS_SPACES.global,
    }),
    '/IpamDriver.RequestPool': (b) => {
      if (b.V6 === true) throw new Error('weavemesh has no IPv6 addresses: create the network without --ipv6');
      const subnet = inRange(optStr(b, 'Pool') || ipam.defaultSubnet.text, 'subnet');
      const range = optStr(b, 'SubPool') ? inRange(str(b, 'SubPool'), 'ip range') : subnet;
      if (!within(range, subnet)) throw new Error(`ip range ${range.text} is outside the subnet ${subnet.text}`);
      return {
        PoolID: `weave-${subnet.text}-${range.text}`,
        Pool: subnet.text,
        // A stand-in gateway, so that dockerd does not ask for one to be allocated.
        Data: { [GATEWAY_REQUEST]: `${numToIp(subnet.start)}/${subnet.prefix}` },
      };
    },
    '/IpamDriver.ReleasePool': (b) => {
      parsePoolId(str(b, 'PoolID'));
      return {};
    },
    '/IpamDriver.RequestAddress': async (b): Promise<Body> => {
      const { subnet, range } = parsePoolId(str(b, 'PoolID'));
      const wanted = optStr(b, 'Address');
      if (wanted && !isIPv4(wanted)) throw new Error(`invalid address "${wanted.slice(0, 40)}"`);
      if (obj(b, 'Options').RequestAddressType === GATEWAY_REQUEST)
        return { Address: `${wanted || numToIp(subnet.start)}/${subnet.prefix}`, Data: {} };
      const ident = `${IPAM_IDENT_PREFIX}${randomBytes(6).toString('hex')}`;
      const ip = wanted
        ? (await ipam.claim(ident, wanted, subnet.prefix), wanted)
        : (await ipam.allocate(ident, range.text)).ip;
      return { Address: `${ip}/${subnet.prefix}`, Data: {} };
    },
    '/IpamDriver.ReleaseAddress': async (b) => {
      parsePoolId(str(b, 'PoolID'));
      const ip = str(b, 'Address').split('/')[0];
      if (!isIPv4(ip)) throw new Error(`invalid address "${ip.slice(0, 40)}"`);
      const holder = ipam.holder(ip);
      // Only what we allocated for Docker: the stand-in gateway and others' addresses are not ours to free.
      if (holder?.startsWith(IPAM_IDENT_PREFIX)) await ipam.release(holder, ip);
      return {};
    },
  };
}
