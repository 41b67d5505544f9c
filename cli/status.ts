import type { Report } from '../router/router.js';

const row = (label: string, value: string | number) => `${label.padStart(15)}: ${value}`;

const peerName = (name: string, nick?: string) => (nick ? `${name}(${nick})` : name);

/** `weave status`: the router section in Weave's shape. */
export function renderStatus(r: Report): string {
  const established = r.connections.filter((c) => c.state === 'established').length;
  const failed = r.connections.filter((c) => c.state === 'failed').length;
  const connecting = r.connections.length - established - failed;
  const parts = [`${established} established`, failed && `${failed} failed`, connecting && `${connecting} connecting`].filter(Boolean);
  return [
    row('Version', r.version),
    '',
    row('Service', 'router'),
    row('Protocol', 'weave-ts 1 (VXLAN)'),
    row('Name', peerName(r.name, r.nickname)),
    row('Encryption', r.encryption ? 'enabled' : 'disabled'),
    row('PeerDiscovery', r.peerDiscovery ? 'enabled' : 'disabled'),
    row('Targets', r.targets.length),
    row('Connections', `${r.connections.length}${r.connections.length ? ` (${parts.join(', ')})` : ''}`),
    row('Peers', `${r.peers.length} (with ${r.peers.reduce((n, p) => n + p.connections.filter((c) => c.established).length, 0)} established connections)`),
    row('Datapath', r.datapath),
    row('VNI', r.vni),
    row('MTU', r.mtu),
    ...(r.vxlanEndpoints.length ? [row('VXLANPeers', r.vxlanEndpoints.map((e) => `${e.ip}:${e.port}`).join(', '))] : []),
    '',
    row('Service', 'ipam'),
    row('Status', r.ipam.status),
    row('Range', r.ipam.range),
    row('DefaultSubnet', r.ipam.defaultSubnet),
    ...r.ipam.mismatches.map((m) => row('Refused', `${peerName(m.peer, m.nickname)} has range ${m.range}`)),
    '',
  ].join('\n');
}

export function renderConnections(r: Report): string {
  return r.connections.map((c) => [c.direction === 'outbound' ? '->' : '<-', c.address.padEnd(21), c.state.padEnd(12),
    c.name ? `${peerName(c.name, c.nickname)} ${c.info}` : c.info].join(' ').trimEnd()).join('\n') + (r.connections.length ? '\n' : '');
}

/** Every peer in the topology, then one line per connection it reports. */
export function renderPeers(r: Report): string {
  const lines: string[] = [];
  for (const p of [...r.peers].sort((a, b) => Number(b.self) - Number(a.self) || a.nickname.localeCompare(b.nickname))) {
    lines.push(peerName(p.name, p.nickname) + (p.reachable ? '' : ' (unreachable)'));
    for (const c of p.connections) {
      lines.push(`   ${c.outbound ? '->' : '<-'} ${c.addr.padEnd(21)} ${peerName(c.peer, c.nickname).padEnd(30)} ${c.established ? 'established' : 'pending'}`);
    }
  }
  return lines.join('\n') + '\n';
}

export const renderTargets = (r: Report): string => r.targets.map((t) => `${t}\n`).join('');

/** `weave status ipam`: each peer's share of the range, unreachable ones marked. */
export function renderIpam(r: Report): string {
  const peers = [...r.ipam.peers].sort((a, b) => Number(b.self) - Number(a.self) || (a.nickname ?? '').localeCompare(b.nickname ?? ''));
  return peers.map((p) => `${peerName(p.name, p.nickname).padEnd(40)} ${String(p.owned).padStart(8)} IPs (${p.percent.toFixed(1)}% of total)`
    + ` (${p.owned - p.free} active)${p.reachable ? '' : ' - unreachable!'}\n`).join('');
}
