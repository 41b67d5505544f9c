import { existingAttachment, resolveTarget } from './attach.js';
import type { ContainerHost } from '../docker/watcher.js';
import type { Router } from './router.js';

/** The router as the container events watcher sees it: containers are known by their full id. */
export function containerHost(router: Router): ContainerHost {
  const target = (id: string, pid: number) => ({ ident: id, nsTarget: `pid:${pid}`, label: id.slice(0, 12), container: id });
  return {
    serial: (id, fn) => router.serial(id, fn),
    isAttached: (id) => router.attached.has(id),
    adopt: async (id, pid) => {
      const found = await existingAttachment(resolveTarget(`pid:${pid}`));
      if (!found || found.cidrs.length === 0) return false;
      router.register(target(id, pid), found.mac, found.cidrs);
      return true;
    },
    reattach: async (id, pid, cidrs, mac) => { await router.attachResolved(target(id, pid), cidrs, mac); },
    gone: (id) => router.unregister(id),
    lookup: (id) => router.ipam.lookup(id).map((a) => a.cidr),
    release: async (id) => { await router.ipam.release(id); },
    allocated: () => [...new Set(router.ipam.report().allocations.map((a) => a.container))],
  };
}
