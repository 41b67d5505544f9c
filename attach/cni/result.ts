import type { CniAddResult } from '../../contract/requests.js';

/** A CNI error with its spec code (contract/cni.ts CNI_ERR): what the plugin prints, not an HTTP status. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }
}

const at = (v: string) => v.split('.').map(Number);
/** Whether a config version is at least `min` (0.4.0 brought CHECK, 1.1.0 STATUS and GC). */
export const atLeast = (v: string, min: string): boolean => {
  const [a, b] = [at(v), at(min)];
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
};

export interface Result {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string; mtu?: number }[];
  ips?: { address: string; gateway?: string; interface?: number; version?: string }[];
  routes?: { dst: string; gw?: string }[];
  dns?: Record<string, unknown>;
}

/**
 * ADD's result in the shape of the config's version (0.3.x and 0.4.0 mark each IP with its
 * version). With a prevResult (we are not first in a chain) ours is added to it.
 */
export function addResult(version: string, r: CniAddResult, prev?: Result): Result {
  const interfaces = [...(prev?.interfaces ?? [])];
  const index =
    interfaces.push({
      name: r.ifname,
      mac: r.mac,
      sandbox: r.netns,
      ...(atLeast(version, '1.1.0') ? { mtu: r.mtu } : {}),
    }) - 1;
  const legacy = !atLeast(version, '1.0.0');
  return {
    cniVersion: version,
    interfaces,
    ips: [
      ...(prev?.ips ?? []),
      ...r.cidrs.map((address) => ({
        ...(legacy ? { version: '4' } : {}),
        address,
        gateway: r.gateway,
        interface: index,
      })),
    ],
    routes: [...(prev?.routes ?? []), { dst: '0.0.0.0/0', gw: r.gateway }],
    dns: prev?.dns ?? {},
  };
}
