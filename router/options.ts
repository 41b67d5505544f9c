import { parseVxlanPeer } from '../common/address.js';
import { choice, int, option, repeated, seconds } from '../common/options.js';
import { parseSubnet } from '../common/subnet.js';

export const DATAPATHS = ['auto', 'fastdp', 'sleeve', 'sleeve-pcap'] as const;
export type DatapathChoice = (typeof DATAPATHS)[number];

export const DEFAULT_VNI = 6784;
export const MAX_VNI = 0xffffff;
export const DEFAULT_UDP_PORT = 6784;

export function parseVni(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_VNI) throw new Error(`invalid VNI "${text}": expected an integer 0..${MAX_VNI}`);
  return n;
}

export const routerOptions = {
  udpPort: int('--udp-port <port>', 'data plane UDP port (VXLAN)', {
    min: 1,
    max: 65535,
    default: DEFAULT_UDP_PORT,
    what: 'port',
  }),
  vni: option<number>({
    flag: '--vni <vni>',
    help: 'VXLAN network identifier shared by all peers',
    default: DEFAULT_VNI,
    parse: parseVni,
  }),
  vxlanPeers: repeated('--vxlan-peer <ip[:port]>', 'a plain VXLAN endpoint with no router (repeatable)', (v) =>
    parseVxlanPeer(v, DEFAULT_UDP_PORT),
  ),
  mtu: int('--mtu <mtu>', 'overlay MTU (default: underlay MTU - 50)', { min: 576, max: 65000, what: 'MTU' }),
  datapath: choice(
    '--datapath <name>',
    "how frames move: auto (the first of these that can run here), fastdp (the kernel's VXLAN), sleeve (native userspace: TAP and UDP offloads) or sleeve-pcap (libpcap, portable)",
    DATAPATHS,
    'auto',
  ),
  trustedSubnets: option<string[]>({
    flag: '--trusted-subnets <cidr,...>',
    help: 'with a password: frames between peers that both have each other in these subnets go unencrypted',
    default: [],
    parse: (v) => v.split(',').map((s) => parseSubnet(s, '--trusted-subnets value').text),
  }),
  keyRotationMs: seconds(
    '--key-rotation <seconds>',
    'with a password: how often each pair of peers agrees new data-plane keys',
    { min: 1, max: 86400, default: 120, what: 'key rotation' },
  ),
};
