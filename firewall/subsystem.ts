import { writeFileSync } from 'node:fs';
import { route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import { outSection } from './edges.js';
import { type NftFirewall, TABLE } from './firewall.js';

export interface FirewallOptions {
  /** The overlay's range (IPAM's): traffic inside it is never masqueraded. */
  range: string;
  bridge: string;
  masquerade: boolean;
}

/**
 * The router's nftables table: made at launch with the `out` section, kept when the router stops
 * (published ports keep answering while it restarts), removed by `weave reset` (POST
 * /firewall/reset) and by nothing else.
 */
export function firewallSubsystem(fw: NftFirewall, o: FirewallOptions): Subsystem {
  return {
    name: 'firewall',
    routes: [route({ method: 'POST', path: '/firewall/reset', handle: async () => (await fw.remove(), {}) })],
    async start() {
      await fw.ensure();
      // Forwarding carries the overlay out and published ports in (Docker turns it on for the same reasons);
      // 127/8 may be routed to the bridge so that the host's own 127.0.0.1:PORT reaches a published port.
      writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
      writeFileSync(`/proc/sys/net/ipv4/conf/${o.bridge}/route_localnet`, '1');
      await fw.replace('out', outSection(o.range, o.bridge, o.masquerade));
    },
    report: () => ({ firewall: { table: TABLE, masquerade: o.masquerade } }),
    status: () => ({
      service: 'firewall',
      rows: [
        ['Table', `nftables ${TABLE}`],
        ['Masquerade', o.masquerade ? `out of ${o.range}` : 'off (--no-masquerade)'],
      ],
    }),
  };
}
