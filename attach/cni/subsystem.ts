import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { NotFound, UserError } from '../../common/errors.js';
import { route } from '../../common/route.js';
import type { Subsystem } from '../../common/subsystem.js';
import { cniExecText } from '../../contract/cni.js';
import type { CniAddResult, CniCheckResult, CniRequest } from '../../contract/requests.js';
import { BRIDGE } from '../../router/bridge.js';
import { detach, existingAttachment } from '../veth.js';
import type { Attachments, Resolved } from '../attachments.js';
import { execCni } from './exec.js';

/** A CNI attachment's IPAM identity: the container id and its interface (a container may have several). */
const identOf = (containerId: string, ifname: string) => `cni:${containerId}:${ifname}`;
const CNI_IDENT = /^cni:(.+):([^:]+)$/;

/**
 * A MAC as the kernel would pick one for the veth (random, locally administered, unicast), chosen
 * here because reading back the kernel's choice would cost ADD another process in the namespace.
 */
function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const ID = /^[\w][\w.:-]{0,254}$/;
const IFNAME = /^[^\s/:]{1,15}$/;

function checked(b: { containerId: string; ifname: string; netns?: string }): void {
  if (!ID.test(b.containerId)) throw new UserError(`invalid container id "${b.containerId.slice(0, 80)}"`);
  if (!IFNAME.test(b.ifname) || b.ifname === '.' || b.ifname === '..')
    throw new UserError(`invalid interface name "${b.ifname.slice(0, 40)}"`);
  if (b.netns !== undefined && b.netns !== '' && !b.netns.startsWith('/'))
    throw new UserError(`invalid netns "${b.netns.slice(0, 80)}": expected a path`);
}

/**
 * The router's side of the CNI plugin (cni/, native/cni/): the plugin is a thin process per call
 * that relays it here (POST /cni/exec, where exec.ts speaks CNI), the work happens here. ADD
 * attaches the namespace with an address from IPAM, a default route through the bridge's own
 * address and hairpin on; DEL is idempotent; GC releases what the runtime forgot. The /cni/* routes
 * of each operation stay for other callers (and plugins of an older build).
 */
export function cniSubsystem(a: Attachments, mtu: number, gateway: () => Promise<string>): Subsystem {
  const target = (b: { containerId: string; netns: string; ifname: string }): Resolved => ({
    ident: identOf(b.containerId, b.ifname),
    nsTarget: `netns:${b.netns}`,
    label: `cni:${b.containerId.slice(0, 12)}`,
  });
  // The gateway is the bridge's address: asking for it costs a process, seeing that the last answer
  // is still on the bridge (the kernel's list of addresses, in-process) costs nothing.
  let lastGateway = '';
  const currentGateway = async () => {
    const onBridge = networkInterfaces()[BRIDGE]?.some((i) => i.family === 'IPv4' && i.address === lastGateway);
    if (!onBridge) lastGateway = await gateway();
    return lastGateway;
  };
  const ops = {
    async add(b: CniRequest): Promise<CniAddResult> {
      checked(b);
      if (!existsSync(b.netns)) throw new NotFound(`netns ${b.netns} does not exist`);
      const gw = await currentGateway();
      const t = target(b);
      const r = await a.serial(t.ident, () =>
        a.attachResolved(t, ['net:default'], { ifname: b.ifname, exclusive: true, gateway: gw, mac: randomMac() }),
      );
      return { ifname: b.ifname, mac: r.mac, netns: b.netns, cidrs: r.cidrs, gateway: gw, mtu };
    },
    del(b: { containerId: string; netns?: string; ifname: string }) {
      checked(b);
      const t = target({ ...b, netns: b.netns ?? '' });
      return a.serial(t.ident, async () => {
        const e = a.unregister(t.ident);
        // Gone already, or never made: DEL succeeds whatever is left to undo.
        if (b.netns && existsSync(b.netns)) await detach(t.nsTarget, b.ifname).catch(() => {});
        const released = await a.ipam.release(t.ident).catch(() => []);
        return { released: released.length, was: e?.cidrs ?? [] };
      });
    },
    async check(b: CniRequest): Promise<CniCheckResult> {
      checked(b);
      if (!existsSync(b.netns)) throw new NotFound(`netns ${b.netns} does not exist`);
      const now = await existingAttachment(b.netns, b.ifname);
      return {
        mac: now?.mac,
        cidrs: now?.cidrs ?? [],
        held: a.ipam.lookup(identOf(b.containerId, b.ifname)).map((x) => x.cidr),
      };
    },
    async gc(valid: string[]) {
      const keep = new Set(valid);
      let released = 0;
      for (const ident of a.ipam.heldHere()) {
        const m = CNI_IDENT.exec(ident);
        if (!m || keep.has(`${m[1]}:${m[2]}`)) continue;
        await a.serial(ident, async () => {
          a.unregister(ident);
          released += (await a.ipam.release(ident).catch(() => [])).length;
        });
      }
      return { released };
    },
    status: () => ({ ready: true, range: a.ipam.range.text }),
  };
  const req = { containerId: 'string', netns: 'string', ifname: 'string' } as const;
  const str = 'string' as const;
  return {
    name: 'cni',
    routes: [
      route({
        method: 'POST',
        path: '/cni/exec',
        body: { command: str, containerId: str, netns: str, ifname: str, args: str, path: str, stdin: str },
        text: cniExecText,
        handle: ({ body }) => execCni(body, ops),
      }),
      route({ method: 'POST', path: '/cni/add', body: req, handle: ({ body }) => ops.add(body) }),
      route({
        method: 'POST',
        path: '/cni/del',
        body: { containerId: 'string', netns: 'string?', ifname: 'string' },
        handle: ({ body }) => ops.del(body),
      }),
      route({ method: 'POST', path: '/cni/check', body: req, handle: ({ body }) => ops.check(body) }),
      route({ method: 'POST', path: '/cni/gc', body: { valid: 'string[]' }, handle: ({ body }) => ops.gc(body.valid) }),
      route({ method: 'GET', path: '/cni/status', handle: () => ops.status() }),
    ],
  };
}
