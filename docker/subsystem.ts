import { existingAttachment, resolveTarget } from '../router/attach.js';
import type { Attachments, Resolved } from '../router/attachments.js';
import { ContainersUnavailable, type ContainerLookup } from '../router/container-lookup.js';
import type { RunRequest, RunResult } from '../contract/requests.js';
import { route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import { DockerClient, DockerError, NoDockerEngine } from './client.js';
import { parseRunArgs } from './run-args.js';
import { ContainerWatcher, type ContainerHost } from './watcher.js';

/** Containers by id or name, from the Docker engine. */
export function dockerContainers(docker: DockerClient): ContainerLookup {
  return {
    find: async (ref) => {
      try {
        const c = await docker.inspect(ref);
        return { id: c.Id, running: c.State.Running, pid: c.State.Pid, status: c.State.Status, name: c.Name.replace(/^\//, ''), hostname: c.Config.Hostname };
      } catch (err) {
        if (err instanceof NoDockerEngine) throw new ContainersUnavailable(err.message);
        if (err instanceof DockerError && err.status === 404) return undefined;
        throw err;
      }
    },
  };
}

/**
 * Docker containers on the overlay: `weave run`, and the events watcher that detaches dead
 * containers, releases their addresses after a grace period and re-attaches restarted ones.
 */
/**
 * The cluster's resolver for containers: the router's DNS (an address on the bridge) and its
 * domain. `resolver` gives the bridge an address when it has none; `undo` takes back one given for
 * a run that then failed, so a failed run leaves nothing behind.
 */
export interface ContainerDns { domain: string; resolver(): Promise<{ ip: string; undo?: () => Promise<unknown> }> }

export function containersSubsystem(docker: DockerClient, attachments: Attachments, graceMs: number, dns?: ContainerDns): Subsystem {
  const watcher = new ContainerWatcher(docker, containerHost(attachments), graceMs);
  return {
    name: 'containers',
    routes: [route({ method: 'POST', path: '/run', body: { cidrs: 'string[]?', args: 'string[]', env: 'string[]?' },
      handle: ({ body }) => run(docker, attachments, body, dns) })],
    start: () => watcher.start(),
    stop: async () => watcher.stop(),
  };
}

/**
 * `weave run [ADDR...] <docker run args>`: creates and starts the container, then attaches it.
 * `env` carries the caller's values of variables named by `-e NAME`. The container's resolver is
 * the router's DNS unless `--without-dns`.
 */
async function run(docker: DockerClient, attachments: Attachments, req: RunRequest, dns?: ContainerDns): Promise<RunResult> {
  const env = Object.fromEntries((req.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const create = parseRunArgs(req.args, env);
  const id = await runAttached(docker, create.body, create.name, (id) => attachments.attach({ target: `docker:${id}`, cidrs: req.cidrs }), create.withoutDns ? undefined : dns);
  return { id };
}

/**
 * Creates and starts a container, then attaches it with `attach`; on any failure the container
 * is removed again, so nothing is left half-made. With `dns`, the container's resolver is the
 * router's DNS. Used by `weave run` and by the scheduler for its replicas.
 */
export async function runAttached(docker: DockerClient, body: { HostConfig?: object }, name: string | undefined,
                                  attach: (id: string) => Promise<unknown>, dns?: ContainerDns): Promise<string> {
  const resolver = dns ? await dns.resolver() : undefined;
  if (resolver) body.HostConfig = { ...body.HostConfig, Dns: [resolver.ip], DnsSearch: [dns!.domain] };
  let id: string | undefined;
  try {
    id = await docker.create(body, name);
    await docker.start(id);
    await attach(id);
  } catch (err) {
    if (id) await docker.remove(id, true).catch(() => {});
    await resolver?.undo?.().catch(() => {});
    throw err;
  }
  return id;
}

/** The attachments as the container events watcher sees them: containers are known by their full id. */
function containerHost(a: Attachments): ContainerHost {
  const target = async (id: string, pid: number): Promise<Resolved> => ({ ...(await a.resolve(id, { running: false })), nsTarget: `pid:${pid}` });
  return {
    serial: (id, fn) => a.serial(id, fn),
    isAttached: (id) => a.attached.has(id),
    adopt: async (id, pid) => {
      const found = await existingAttachment(resolveTarget(`pid:${pid}`));
      if (!found || found.cidrs.length === 0) return false;
      a.register(await target(id, pid), found.mac, found.cidrs);
      return true;
    },
    reattach: async (id, pid, cidrs, mac) => { await a.attachResolved(await target(id, pid), cidrs, { mac }); },
    gone: (id) => a.unregister(id),
    lookup: (id) => a.ipam.lookup(id).map((x) => x.cidr),
    release: async (id) => { await a.ipam.release(id); },
    allocated: () => a.ipam.heldHere(),
  };
}

/** This host's running containers that mount a volume (none without an engine). */
export const volumeUsers = (docker: DockerClient, volume: string) =>
  docker.usersOf(volume).catch((err: Error) => { if (err instanceof NoDockerEngine) return []; throw err; });

/** Stops this host's running containers that mount a volume (a move's last increment needs it still). */
export async function stopVolumeUsers(docker: DockerClient, volume: string): Promise<void> {
  await Promise.all((await volumeUsers(docker, volume)).map((c) => docker.stop(c.Id, STOP_GRACE_S)));
}

/** How long a volume's user has to stop on SIGTERM before it is killed, when its volume moves away. */
const STOP_GRACE_S = 5;
