import { existingAttachment, resolveTarget } from '../attach/veth.js';
import type { Attachments, Resolved } from '../attach/attachments.js';
import { ContainersUnavailable, type ContainerLookup } from '../attach/container-lookup.js';
import { type DockerClient, DockerError, NoDockerEngine } from './client.js';
import type { ContainerHost } from './watcher.js';

/** Containers by id or name, from the Docker engine. */
export function dockerContainers(docker: DockerClient): ContainerLookup {
  return {
    find: async (ref) => {
      try {
        const c = await docker.inspect(ref);
        return {
          id: c.Id,
          running: c.State.Running,
          pid: c.State.Pid,
          status: c.State.Status,
          name: c.Name.replace(/^\//, ''),
          hostname: c.Config.Hostname,
          labels: { ...(c.Config.Labels ?? {}) },
        };
      } catch (err) {
        if (err instanceof NoDockerEngine) throw new ContainersUnavailable(err.message);
        if (err instanceof DockerError && err.status === 404) return undefined;
        throw err;
      }
    },
  };
}

/** The attachments as the container events watcher sees them: containers are known by their full id. */
export function containerHost(a: Attachments): ContainerHost {
  const target = async (id: string, pid: number): Promise<Resolved> => ({
    ...(await a.resolve(id, { running: false })),
    nsTarget: `pid:${pid}`,
  });
  return {
    serial: (id, fn) => a.serial(id, fn),
    isAttached: (id) => a.attached.has(id),
    adopt: async (id, pid) => {
      const found = await existingAttachment(resolveTarget(`pid:${pid}`));
      if (!found || found.cidrs.length === 0) return false;
      a.register(await target(id, pid), found.mac, found.cidrs);
      return true;
    },
    reattach: async (id, pid, cidrs, mac) => {
      await a.attachResolved(await target(id, pid), cidrs, { mac });
    },
    gone: (id) => a.unregister(id),
    lookup: (id) => a.ipam.lookup(id).map((x) => x.cidr),
    release: async (id) => {
      await a.ipam.release(id);
    },
    allocated: () => a.ipam.heldHere(),
  };
}
