// The managed plugin's IPAM under Swarm. A task's address is asked for twice: first by the manager's
// allocator (no MAC: it allocates, and later releases, the address for the whole cluster), then by
// the node that runs the task, naming that address and carrying the endpoint's MAC (we ask for MACs
// so the two can be told apart). The node's request is a use of an address the manager holds, not a
// second allocation; its release ends that use and frees nothing. A host that is both manager and
// node sees both requests: the use is ended first, the allocation by the second release.
import { randomBytes } from 'node:crypto';
import { isIPv4 } from '../../common/cidr.js';
import { numToIp } from '../../common/subnet.js';
import { type Body, obj, optStr, type PluginHandlers, str } from './body.js';
import { ipamDriverHandlers, type PluginIpam, parsePoolId } from './ipam-driver.js';

export const SWARM_IDENT_PREFIX = 'docker-swarm:';
const GATEWAY_REQUEST = 'com.docker.network.gateway';
const MAC_OPTION = 'com.docker.network.endpoint.macaddress';

export class SwarmAddresses {
  /** Addresses in use by endpoints on this host: how many endpoints use each. */
  readonly usedHere = new Map<string, number>();

  constructor(private readonly ipam: PluginIpam) {}

  use(ip: string): void {
    this.usedHere.set(ip, (this.usedHere.get(ip) ?? 0) + 1);
  }

  /** Ends one use here; false when none was counted. */
  private endUse(ip: string): boolean {
    const n = this.usedHere.get(ip);
    if (!n) return false;
    if (n === 1) this.usedHere.delete(ip);
    else this.usedHere.set(ip, n - 1);
    return true;
  }

  handlers(): PluginHandlers {
    const base = ipamDriverHandlers(this.ipam);
    return {
      ...base,
      '/IpamDriver.GetCapabilities': () => ({ RequiresMACAddress: true, RequiresRequestReplay: false }),
      '/IpamDriver.RequestAddress': async (b): Promise<Body> => {
        const { subnet, range } = parsePoolId(str(b, 'PoolID'));
        const wanted = optStr(b, 'Address');
        if (wanted && !isIPv4(wanted)) throw new Error(`invalid address "${wanted.slice(0, 40)}"`);
        const opts = obj(b, 'Options');
        if (opts.RequestAddressType === GATEWAY_REQUEST)
          return { Address: `${wanted || numToIp(subnet.start)}/${subnet.prefix}`, Data: {} };
        const answer = (ip: string) => ({ Address: `${ip}/${subnet.prefix}`, Data: {} });
        if (typeof opts[MAC_OPTION] === 'string' && opts[MAC_OPTION] !== '') {
          // a node's endpoint: the address the manager gave the task (or its attachment)
          if (!wanted) throw new Error('an endpoint on a swarm network needs the address its task was given');
          this.use(wanted);
          return answer(wanted);
        }
        if (wanted && this.ipam.holder(wanted)?.startsWith(SWARM_IDENT_PREFIX)) return answer(wanted); // replayed
        const ident = `${SWARM_IDENT_PREFIX}${randomBytes(6).toString('hex')}`;
        if (wanted) {
          await this.ipam.claim(ident, wanted, subnet.prefix);
          return answer(wanted);
        }
        return answer((await this.ipam.allocate(ident, range.text)).ip);
      },
      '/IpamDriver.ReleaseAddress': async (b) => {
        parsePoolId(str(b, 'PoolID'));
        const ip = str(b, 'Address').split('/')[0];
        if (!isIPv4(ip)) throw new Error(`invalid address "${ip.slice(0, 40)}"`);
        if (this.endUse(ip)) return {};
        const holder = this.ipam.holder(ip);
        if (holder?.startsWith(SWARM_IDENT_PREFIX)) await this.ipam.release(holder, ip);
        return {};
      },
    };
  }
}
