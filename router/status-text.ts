import type { RouterReport } from '../contract/report.js';
import { peerName } from '../common/format.js';

const connectionCrypto = (e: string): string =>
  e === 'pending' ? 'keys-pending' : e.startsWith('none') ? 'unencrypted' : `encrypted(${e})`;

/** `weave status connections`: one line per connection, Weave's arrows. */
export function renderConnections(r: Pick<RouterReport, 'connections'>): string {
  return (
    r.connections
      .map((c) =>
        [
          c.direction === 'outbound' ? '->' : '<-',
          c.address.padEnd(21),
          c.state.padEnd(12),
          c.name
            ? `${c.datapath ? `${c.datapath} ` : ''}${c.encryption ? `${connectionCrypto(c.encryption)} ` : ''}${peerName(c.name, c.nickname)} ${c.info}`
            : c.info,
        ]
          .join(' ')
          .trimEnd(),
      )
      .join('\n') + (r.connections.length ? '\n' : '')
  );
}

/** `weave status peers`: every peer in the topology, then one line per connection it reports. */
export function renderPeers(r: Pick<RouterReport, 'peers'>): string {
  const lines: string[] = [];
  for (const p of [...r.peers].sort(
    (a, b) => Number(b.self) - Number(a.self) || a.nickname.localeCompare(b.nickname),
  )) {
    lines.push(peerName(p.name, p.nickname) + (p.reachable ? '' : ' (unreachable)'));
    for (const c of p.connections) {
      lines.push(
        `   ${c.outbound ? '->' : '<-'} ${c.addr.padEnd(21)} ${peerName(c.peer, c.nickname).padEnd(30)} ${c.established ? 'established' : 'pending'}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

export const renderTargets = (r: Pick<RouterReport, 'targets'>): string => r.targets.map((t) => `${t}\n`).join('');

/** The router's rows of `weave status`, in Weave's shape. */
export function routerRows(r: RouterReport): [string, string][] {
  const established = r.connections.filter((c) => c.state === 'established').length;
  const failed = r.connections.filter((c) => c.state === 'failed').length;
  const connecting = r.connections.length - established - failed;
  const parts = [
    `${established} established`,
    failed && `${failed} failed`,
    connecting && `${connecting} connecting`,
  ].filter(Boolean);
  return [
    ['Protocol', 'weave-ts 1 (VXLAN)'],
    ['Name', peerName(r.name, r.nickname)],
    [
      'Encryption',
      `${r.encryption.enabled ? 'enabled (' : ''}control plane: ${r.encryption.controlPlane}; data plane: ${r.encryption.dataPlane}${r.encryption.enabled ? ')' : ''}`,
    ],
    ['PeerDiscovery', r.peerDiscovery ? 'enabled' : 'disabled'],
    ['Targets', String(r.targets.length)],
    ['Connections', `${r.connections.length}${r.connections.length ? ` (${parts.join(', ')})` : ''}`],
    [
      'Peers',
      `${r.peers.length} (with ${r.peers.reduce((n, p) => n + p.connections.filter((c) => c.established).length, 0)} established connections)`,
    ],
    ['Datapath', r.datapath],
    ['VNI', String(r.vni)],
    ['MTU', String(r.mtu)],
    ...(r.vxlanEndpoints.length
      ? [['VXLANPeers', r.vxlanEndpoints.map((e) => `${e.ip}:${e.port}`).join(', ')] as [string, string]]
      : []),
  ];
}
