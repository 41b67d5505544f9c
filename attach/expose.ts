import { run, runOk } from '../common/exec.js';
import { type Cidr, formatCidr } from '../common/cidr.js';
import { gratuitousArp } from './veth.js';
import { BRIDGE } from '../router/bridge.js';

/** The IPAM identity of the host's own address on the overlay, as Weave names it. */
export const EXPOSE_ID = 'weave:expose';

/** The bridge's MAC and IPv4 addresses: the addresses are only ever put there by expose. */
export async function bridgeAddresses(): Promise<{ mac: string; cidrs: string[] }> {
  const r = await run(['ip', '-j', 'addr', 'show', 'dev', BRIDGE]);
  if (r.code !== 0) return { mac: '', cidrs: [] };
  const [link] = JSON.parse(r.stdout) as {
    address: string;
    addr_info: { family: string; local: string; prefixlen: number }[];
  }[];
  return {
    mac: link?.address ?? '',
    cidrs: (link?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

export async function addBridgeAddresses(cidrs: Cidr[]): Promise<void> {
  const added: string[] = [];
  try {
    for (const c of cidrs) {
      const r = await run(['ip', 'addr', 'add', formatCidr(c), 'dev', BRIDGE]);
      if (r.code !== 0 && !/exists|already assigned/.test(r.stderr))
        throw new Error(`cannot add ${formatCidr(c)} to ${BRIDGE}: ${r.stderr.trim()}`);
      if (r.code === 0) added.push(formatCidr(c));
      gratuitousArp(undefined, BRIDGE, c.ip);
    }
  } catch (err) {
    for (const c of added) await run(['ip', 'addr', 'del', c, 'dev', BRIDGE]);
    throw err;
  }
}

/** Removes every IPv4 address from the bridge; returns them. */
export async function removeBridgeAddresses(): Promise<string[]> {
  const { cidrs } = await bridgeAddresses();
  for (const c of cidrs) await runOk(['ip', 'addr', 'del', c, 'dev', BRIDGE]);
  return cidrs;
}
