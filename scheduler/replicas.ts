import { createHash } from 'node:crypto';
import { existingAttachment, resolveTarget } from '../attach/veth.js';
import type { Attachments } from '../attach/attachments.js';
import type { DockerClient } from '../docker/client.js';
import { runAttached, type ContainerDns } from '../docker/run.js';
import { parsePort, PUBLISH_LABEL } from '../docker/publish.js';
import type { Placement } from './placement.js';
import { replicaVolume, type ServiceSpec } from './stack.js';
import { REPLICA_LABEL, VOLUME_DRIVER } from '../docker/engine.js';

const DIGEST_LABEL = 'weave.digest';

/** A replica's container on this host. */
export interface LocalReplica {
  id: string;
  ident: string;
  digest: string;
  running: boolean;
  exitCode?: number;
}

/** How the scheduler runs replicas on this host; Docker through its Engine API here. */
export interface ReplicaEngine {
  list(): Promise<LocalReplica[]>;
  /**
   * Creates and starts a replica's container, attached with its address (CIDR); returns its id.
   * Without an address it runs unattached: a warm standby, on no network, for a host that may die.
   */
  start(p: Placement, s: ServiceSpec, digest: string, cidr?: string): Promise<string>;
  /** Attaches a running container of the replica (a standby taking over) with its address. */
  attach(p: Placement, id: string, cidr: string): Promise<void>;
  /** Removes a replica's container, with its attachment (not its address: IPAM's, kept or released by the caller). */
  remove(r: LocalReplica): Promise<void>;
  /** Takes back the attachment of a running replica (after a router restart); false when it has none. */
  adopt(r: LocalReplica): Promise<boolean>;
  /** Whether the replica's attachment is known here. */
  attached(ident: string): boolean;
}

/** What names a replica: its identity and where it sits in its stack. */
type ReplicaName = Pick<Placement, 'ident' | 'stack' | 'service' | 'index'>;

/** A container name for a replica: stack_service_index, as Compose names them. */
const containerName = (p: ReplicaName) => `${p.stack}_${p.service}_${p.index}`;

/**
 * A replica's MAC follows from its identity, like its address: peers' MAC tables and neighbours' ARP caches stay right
 * when it moves.
 */
export const replicaMac = (ident: string): string => {
  const b = createHash('sha256').update(ident).digest().subarray(0, 6);
  b[0] = (b[0] & 0xfc) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
};

/** DNS names: the service (every replica answers) and the replica itself, in the stack: web.shop, web-3.shop. */
/** A replica's labels: its stack and service (NetworkPolicies select by them; the stack is its namespace). */
const replicaLabels = (p: ReplicaName) => ({
  'weave.stack': p.stack,
  'weave.service': p.service,
  stack: p.stack,
  service: p.service,
});
const names = (p: ReplicaName) => [`${p.service}.${p.stack}`, `${p.service}-${p.index}.${p.stack}`];

export function dockerReplicas(
  docker: DockerClient,
  attachments: Attachments,
  nickname: string,
  dns?: ContainerDns,
): ReplicaEngine {
  const resolved = (p: ReplicaName, id: string, pid: number) => ({
    ident: p.ident,
    nsTarget: `pid:${pid}`,
    label: containerName(p),
    container: id,
    names: names(p),
    labels: replicaLabels(p),
  });
  /**
   * A container that already finished (a job, or one that crashed at once) is left for its restart policy, not
   * attached.
   */
  const attach = async (p: Placement, id: string, cidr: string) => {
    await attachments.serial(p.ident, async () => {
      const info = await docker.inspect(id);
      if (info.State.Running)
        await attachments.attachResolved(resolved(p, id, info.State.Pid), [cidr], { mac: replicaMac(p.ident) });
    });
  };
  return {
    list: async () =>
      (await docker.list(true, REPLICA_LABEL))
        .map((c) => {
          const exited = /^Exited \((\d+)\)/.exec(c.Status ?? '');
          return {
            id: c.Id,
            ident: c.Labels?.[REPLICA_LABEL] ?? '',
            digest: c.Labels?.[DIGEST_LABEL] ?? '',
            running: c.State === 'running',
            exitCode: exited ? Number(exited[1]) : undefined,
          };
        })
        .filter((r) => r.ident),
    start: (p, s, digest, cidr) => {
      const body = {
        Image: s.image,
        ...(s.cmd ? { Cmd: s.cmd } : {}),
        Hostname: `${p.service}-${p.index}`,
        Env: [
          ...Object.entries(s.env).map(([k, v]) => `${k}=${v}`),
          `WEAVE_REPLICA=${p.ident}`,
          `WEAVE_HOST=${nickname}`,
        ],
        Labels: {
          ...replicaLabels(p),
          [REPLICA_LABEL]: p.ident,
          [DIGEST_LABEL]: digest,
          // The router's DNAT publishes them once the replica is attached (docker/publish.ts).
          ...(s.ports && { [PUBLISH_LABEL]: JSON.stringify(s.ports.map((x) => parsePort(x))) }),
        },
        // Each replica's own weave volume, which follows it from host to host.
        HostConfig: {
          NetworkMode: 'none',
          Binds: s.volumes.map((v) => `${replicaVolume(p, v.name)}:${v.path}${v.readOnly ? ':ro' : ''}`),
          ...(s.volumes.length ? { VolumeDriver: VOLUME_DRIVER } : {}),
        },
      };
      return runAttached(docker, body, containerName(p), (id) => (cidr ? attach(p, id, cidr) : Promise.resolve()), dns);
    },
    attach: (p, id, cidr) => attach(p, id, cidr),
    remove: async (r) => {
      await docker.remove(r.id, true).catch((err: Error & { status?: number }) => {
        if (err.status !== 404) throw err;
      });
      attachments.unregister(r.ident);
    },
    adopt: async (r) => {
      const info = await docker.inspect(r.id);
      const found = await existingAttachment(resolveTarget(`pid:${info.State.Pid}`));
      if (!found || found.cidrs.length === 0) return false;
      const [stack, service, index] = r.ident.split('/');
      attachments.register(
        resolved({ ident: r.ident, stack, service, index: Number(index) }, r.id, info.State.Pid),
        found.mac,
        found.cidrs,
      );
      return true;
    },
    attached: (ident) => attachments.attached.has(ident),
  };
}
