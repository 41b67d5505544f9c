// The scheduler's vocabulary, shared by the manifest parser, placement and the reconcile loop.

/** `label==value` or `label!=value`, on any host label (os and arch are every host's own). */
export interface Constraint {
  label: string;
  op: '==' | '!=';
  value: string;
}

/**
 * A volume mounted into each replica: every replica has its own (replicaVolume), a weave volume
 * that follows it from host to host, kept in `replicas` copies (the others receive its changes).
 */
export interface VolumeMount {
  name: string;
  path: string;
  readOnly: boolean;
  replicas: number;
}

/** The weave volume of one replica: stack_service_index_name, as Compose names containers. */
export const replicaVolume = (p: { stack: string; service: string; index: number }, v: string): string =>
  `${p.stack}_${p.service}_${p.index}_${v}`;

export type RestartPolicy = 'always' | 'on-failure' | 'no';

/** One service of a stack, normalised: every field present, defaults applied. */
export interface ServiceSpec {
  image: string;
  /** Docker's Cmd; a string in the manifest becomes ['sh', '-c', string]; absent: the image's own. */
  cmd?: string[];
  replicas: number;
  env: Record<string, string>;
  constraints: Constraint[];
  /** A host label whose values share the replicas evenly (half ubuntu, half centos). */
  spread?: string;
  volumes: VolumeMount[];
  restart: RestartPolicy;
  /** Published on the host of each replica, `[IP:]HOSTPORT:PORT/PROTO`; absent when none. */
  ports?: string[];
}

/** A deployed manifest: services by name. */
export interface Stack {
  name: string;
  services: Record<string, ServiceSpec>;
}

/** A host as the scheduler sees it: its peer name and labels (os and arch always among them). */
export interface SchedHost {
  name: string;
  labels: Record<string, string>;
}

/** The IPAM identity of a replica, which is also its identity everywhere else: stack/service/index, from 1. */
export const replicaIdent = (stack: string, service: string, index: number): string => `${stack}/${service}/${index}`;

/** Stack and service names: DNS labels and parts of container names. */
export const NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
