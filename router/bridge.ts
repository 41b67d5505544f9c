import { writeFileSync } from 'node:fs';
import { run, runOk } from '../common/exec.js';

export const BRIDGE = 'weave';
export const CAPTURE_IF = 'vethwe-pcap';
export const BRIDGE_PORT_IF = 'vethwe-bridge';
export const VXLAN_OVERHEAD = 50; // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14

/**
 * The host's own ends of the overlay (bridge, capture pair, container veths) take no part in
 * IPv6: otherwise each sends router solicitations and MLD reports into every container.
 */
export function quietIPv6(dev: string): void {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
  } catch {
    /* no IPv6 on this kernel */
  }
}

const linkExists = async (name: string) => (await run(['ip', 'link', 'show', 'dev', name])).code === 0;

/** The MTU of the underlay: the default route's device, else the smallest MTU among physical-looking links. */
export async function underlayMtu(): Promise<number> {
  const links = JSON.parse(await runOk(['ip', '-j', 'link', 'show'])) as {
    ifname: string;
    mtu: number;
    link_type: string;
  }[];
  const routes = JSON.parse(await runOk(['ip', '-j', 'route', 'show', 'default'])) as { dev?: string }[];
  const byName = new Map(links.map((l) => [l.ifname, l.mtu]));
  const dflt = routes[0]?.dev && byName.get(routes[0].dev);
  if (dflt) return dflt;
  const ours = /^(weave|vethwe|vethwepl|ethwe|vxlan-|lo$)/;
  const mtus = links.filter((l) => l.link_type === 'ether' && !ours.test(l.ifname)).map((l) => l.mtu);
  return mtus.length ? Math.min(...mtus) : 1500;
}

/**
 * Creates (or reuses, after a restart) the weave bridge and the veth pair the sleeve datapath
 * captures on. Offloads are off on both ends: with them on, the kernel hands pcap unsegmented
 * super-frames and frames with checksums still to be filled in, which the far side would drop.
 */
export async function ensureBridge(mtu: number): Promise<void> {
  if (!(await linkExists(BRIDGE))) await runOk(['ip', 'link', 'add', 'name', BRIDGE, 'type', 'bridge']);
  if (!(await linkExists(CAPTURE_IF))) {
    await runOk(['ip', 'link', 'add', 'name', BRIDGE_PORT_IF, 'type', 'veth', 'peer', 'name', CAPTURE_IF]);
  }
  for (const dev of [BRIDGE, BRIDGE_PORT_IF, CAPTURE_IF])
    await runOk(['ip', 'link', 'set', 'dev', dev, 'mtu', String(mtu)]);
  await runOk(['ip', 'link', 'set', 'dev', BRIDGE_PORT_IF, 'master', BRIDGE]);
  for (const dev of [BRIDGE_PORT_IF, CAPTURE_IF]) {
    await runOk(['ethtool', '-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
  }
  for (const dev of [CAPTURE_IF, BRIDGE_PORT_IF, BRIDGE]) {
    quietIPv6(dev);
    await runOk(['ip', 'link', 'set', 'dev', dev, 'up']);
  }
  // A bridge not given a MAC takes the lowest of its ports', so it changed as containers came and went, and a
  // container's ARP entry for its gateway (the bridge's address) went stale: its traffic out was dropped for a
  // while. Given its own MAC once, it keeps it.
  const [link] = JSON.parse(await runOk(['ip', '-j', 'link', 'show', 'dev', BRIDGE])) as { address: string }[];
  await runOk(['ip', 'link', 'set', 'dev', BRIDGE, 'address', link.address]);
}
