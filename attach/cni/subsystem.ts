import { existsSync } from 'node:fs';
import { NotFound, UserError } from '../../common/errors.js';
import { route } from '../../common/route.js';
import type { Subsystem } from '../../common/subsystem.js';
import type { CniAddResult, CniCheckResult } from '../../contract/requests.js';
import { detach, existingAttachment } from '../veth.js';
import type { Attachments, Resolved } from '../attachments.js';

/** A CNI attachment's IPAM identity: the container id and its interface (a container may have several). */
const identOf = (containerId: string, ifname: string) => `cni:${containerId}:${ifname}`;
const CNI_IDENT = /^cni:(.+):([^:]+)$/;

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
 * The router's side of the CNI plugin (cni/): the plugin is a thin process per call, the work
 * happens here. ADD attaches the namespace with an address from IPAM, a default route through
 * the bridge's own address and hairpin on; DEL is idempotent; GC releases what the runtime forgot.
 */
export function cniSubsystem(a: Attachments, mtu: number, gateway: () => Promise<string>): Subsystem {
  const target = (b: { containerId: string; netns: string; ifname: string }): Resolved => ({
    ident: identOf(b.containerId, b.ifname),
    nsTarget: `netns:${b.netns}`,
    label: `cni:${b.containerId.slice(0, 12)}`,
  });
  const req = { containerId: 'string', netns: 'string', ifname: 'string' } as const;
  return {
    name: 'cni',
    routes: [
      route({
        method: 'POST',
        path: '/cni/add',
        body: req,
        handle: async ({ body }): Promise<CniAddResult> => {
          checked(body);
          if (!existsSync(body.netns)) throw new NotFound(`netns ${body.netns} does not exist`);
          const gw = await gateway();
          const t = target(body);
          const r = await a.serial(t.ident, () =>
            a.attachResolved(t, ['net:default'], { ifname: body.ifname, exclusive: true, gateway: gw }),
          );
          return { ifname: body.ifname, mac: r.mac, netns: body.netns, cidrs: r.cidrs, gateway: gw, mtu };
        },
      }),
      route({
        method: 'POST',
        path: '/cni/del',
        body: { containerId: 'string', netns: 'string?', ifname: 'string' },
        handle: async ({ body }) => {
          checked(body);
          const t = target({ ...body, netns: body.netns ?? '' });
          return a.serial(t.ident, async () => {
            const e = a.unregister(t.ident);
            // Gone already, or never made: DEL succeeds whatever is left to undo.
            if (body.netns && existsSync(body.netns)) await detach(t.nsTarget, body.ifname).catch(() => {});
            const released = await a.ipam.release(t.ident).catch(() => []);
            return { released: released.length, was: e?.cidrs ?? [] };
          });
        },
      }),
      route({
        method: 'POST',
        path: '/cni/check',
        body: req,
        handle: async ({ body }): Promise<CniCheckResult> => {
          checked(body);
          if (!existsSync(body.netns)) throw new NotFound(`netns ${body.netns} does not exist`);
          const now = await existingAttachment(body.netns, body.ifname);
          return {
            mac: now?.mac,
            cidrs: now?.cidrs ?? [],
            held: a.ipam.lookup(identOf(body.containerId, body.ifname)).map((x) => x.cidr),
          };
        },
      }),
      route({
        method: 'POST',
        path: '/cni/gc',
        body: { valid: 'string[]' },
        handle: async ({ body }) => {
          const valid = new Set(body.valid);
          let released = 0;
          for (const ident of a.ipam.heldHere()) {
            const m = CNI_IDENT.exec(ident);
            if (!m || valid.has(`${m[1]}:${m[2]}`)) continue;
            await a.serial(ident, async () => {
              a.unregister(ident);
              released += (await a.ipam.release(ident).catch(() => [])).length;
            });
          }
          return { released };
        },
      }),
      route({ method: 'GET', path: '/cni/status', handle: () => ({ ready: true, range: a.ipam.range.text }) }),
    ],
  };
}
