// Pure description of a lab's underlay: which switches exist and which host interface sits on which.
// Kept free of side effects so the addressing rules can be read (and tested) in one place.

export type Topology = 'flat' | 'line';
export interface LabSpec {
  hosts: number;
  topology?: Topology;
}

/** One host interface on one switch segment. */
export interface Port {
  host: string; // h1..
  ifname: string; // eth0, eth1 (inside the host namespace)
  swPort: string; // veth end inside the switch namespace, enslaved to br0
  addr: string; // underlay IPv4, no prefix length
  prefixLen: number;
}
export interface Segment {
  index: number;
  subnet: string;
  ports: Port[];
}
export interface Plan {
  hosts: string[];
  segments: Segment[];
}

/** Limits keep every address inside 198.18.0.0/15 (.0 and .255 are never host addresses). */
export const MAX_HOSTS = 254;

export function validateSpec(spec: LabSpec): Required<LabSpec> {
  const topology = spec.topology ?? 'flat';
  if (topology !== 'flat' && topology !== 'line')
    throw new Error(`unknown topology "${String(topology)}" (flat or line)`);
  const n = spec.hosts;
  if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS)
    throw new Error(`hosts must be an integer from 1 to ${MAX_HOSTS}, got ${String(n)}`);
  if (topology === 'line' && n < 2) throw new Error('a line topology needs at least 2 hosts');
  return { hosts: n, topology };
}

export function plan(spec: LabSpec): Plan {
  const { hosts: n, topology } = validateSpec(spec);
  const hosts = Array.from({ length: n }, (_, i) => `h${i + 1}`);
  const nextIf = new Map<string, number>();
  const port = (k: number, hostNum: number): Port => {
    const host = `h${hostNum}`;
    const i = nextIf.get(host) ?? 0;
    nextIf.set(host, i + 1);
    return { host, ifname: `eth${i}`, swPort: host, addr: `198.18.${k}.${hostNum}`, prefixLen: 24 };
  };
  const segments: Segment[] = [];
  if (topology === 'flat') {
    segments.push({ index: 0, subnet: '198.18.0.0/24', ports: hosts.map((_, i) => port(0, i + 1)) });
  } else {
    // Segment k joins h(k+1) and h(k+2); ports are created in segment order so a host's
    // lower segment is eth0 and its upper one eth1.
    for (let k = 0; k < n - 1; k++)
      segments.push({ index: k, subnet: `198.18.${k}.0/24`, ports: [port(k, k + 1), port(k, k + 2)] });
  }
  return { hosts, segments };
}

/** Underlay addresses of one host, in interface order (addrs[0] is on eth0). */
export function hostAddrs(p: Plan, host: string): string[] {
  return p.segments
    .flatMap((s) => s.ports.filter((x) => x.host === host))
    .sort((a, b) => a.ifname.localeCompare(b.ifname, 'en', { numeric: true }))
    .map((x) => x.addr);
}
