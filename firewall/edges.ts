// The overlay's edges as nft sections: out (masquerade), in (published ports).

/** A port of the host that reaches a container's port: `-p [IP:]HOSTPORT:PORT[/PROTO]` with the container's address. */
export interface Published {
  hostIp: string;
  hostPort: number;
  port: number;
  proto: 'tcp' | 'udp';
  /** The container's overlay address. */
  ip: string;
}

/**
 * Section `out`: traffic from the overlay to anywhere outside it leaves masqueraded to the
 * address of the interface it leaves by (the host's underlay address); traffic between overlay
 * addresses, and traffic going back onto the bridge, never is. Empty when masquerading is off.
 */
export function outSection(range: string, bridge: string, masquerade: boolean): string {
  if (!masquerade) return '';
  return [
    'chain out_postrouting {',
    '  type nat hook postrouting priority srcnat; policy accept;',
    `  ip saddr ${range} ip daddr != ${range} oifname != "${bridge}" masquerade`,
    '}',
  ].join('\n');
}

/**
 * Section `in`: published ports as DNAT, for traffic that comes in (prerouting) and for the host's
 * own (output), to an address of the host (or the one given). The client's address is kept;
 * only a flow that would come back by another way than it went is masqueraded to the bridge's
 * address: a container reaching a published port of its own host (hairpin: the answer would go
 * straight over the bridge), and the host's own loopback (127/8 cannot leave by the bridge).
 */
export function inSection(range: string, bridge: string, ports: readonly Published[]): string {
  if (ports.length === 0) return '';
  const dnat = ports.map(
    (p) => `  ${p.hostIp ? `ip daddr ${p.hostIp} ` : ''}${p.proto} dport ${p.hostPort} dnat ip to ${p.ip}:${p.port}`,
  );
  return [
    'chain in_ports {',
    ...dnat,
    '}',
    'chain in_prerouting {',
    '  type nat hook prerouting priority dstnat; policy accept;',
    '  fib daddr type local jump in_ports',
    '}',
    'chain in_output {',
    '  type nat hook output priority -100; policy accept;', // dstnat: nft 1.0.6 takes the name at prerouting only
    '  fib daddr type local jump in_ports',
    '}',
    'chain in_postrouting {',
    '  type nat hook postrouting priority srcnat; policy accept;',
    `  ct status dnat oifname "${bridge}" ip saddr ${range} masquerade`,
    `  ct status dnat oifname "${bridge}" ip saddr 127.0.0.0/8 masquerade`,
    '}',
  ].join('\n');
}

/** Two publications that would take the same host port (one of them on every address of the host). */
export function clash(a: Published, b: Published): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (!a.hostIp || !b.hostIp || a.hostIp === b.hostIp);
}
