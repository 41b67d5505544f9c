// The veth of a Docker network endpoint (our network plugin): made in the router's namespace, one
// end on the bridge, the other left for dockerd to move into the container and address itself.
import { run, runOk } from '../common/exec.js';
import { BRIDGE, quietIPv6 } from '../router/bridge.js';
import { gratuitousArp } from './veth.js';

/** The pair's names from Docker's endpoint id, as Weave's plugin named them (within 15 characters). */
export const endpointVethNames = (endpointId: string) => ({
  hostIf: `vethwl${endpointId.slice(0, 9)}`,
  peerIf: `vethwg${endpointId.slice(0, 9)}`,
});

/** Makes the pair (the container end with the given MAC and the overlay MTU); one that is there already is kept. */
export async function createEndpointVeth(endpointId: string, mac: string, mtu: number): Promise<string> {
  const { hostIf, peerIf } = endpointVethNames(endpointId);
  if (await endpointVethExists(endpointId)) return peerIf;
  await runOk([
    'ip',
    'link',
    'add',
    'name',
    hostIf,
    'mtu',
    String(mtu),
    'type',
    'veth',
    'peer',
    'name',
    peerIf,
    'mtu',
    String(mtu),
    'address',
    mac,
  ]);
  try {
    quietIPv6(hostIf);
    await runOk(['ip', 'link', 'set', 'dev', hostIf, 'master', BRIDGE, 'up']);
  } catch (err) {
    await run(['ip', 'link', 'del', 'dev', hostIf]); // nothing left half-made
    throw err;
  }
  return peerIf;
}

/** Whether the host end is still here (a router restarted while the container ran). */
export async function endpointVethExists(endpointId: string): Promise<boolean> {
  return (await run(['ip', 'link', 'show', 'dev', endpointVethNames(endpointId).hostIf])).code === 0;
}

/** Removes the pair (the container end, wherever it is, goes with it); a pair already gone is fine. */
export async function deleteEndpointVeth(endpointId: string): Promise<void> {
  await run(['ip', 'link', 'del', 'dev', endpointVethNames(endpointId).hostIf]);
}

/**
 * Announces the endpoint's address from inside its container (the interface dockerd moved there and addressed), so
 * that peers which cached the address at another MAC (one given back at `docker rm` and handed out again) learn the
 * new one at once.
 */
export async function announceEndpoint(pid: number, mac: string, ip: string): Promise<void> {
  const netns = `/proc/${pid}/ns/net`;
  const r = await run(['nsenter', `--net=${netns}`, 'ip', '-j', 'link', 'show']);
  if (r.code !== 0) return;
  const dev = (JSON.parse(r.stdout) as { ifname: string; address?: string }[]).find((l) => l.address === mac)?.ifname;
  if (dev) gratuitousArp(netns, dev, ip);
}
