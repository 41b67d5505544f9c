import { UserError } from '../common/errors.js';

/** A container as attachments need it: its full id, and its namespace's pid when running. */
export interface ContainerRef {
  id: string;
  running: boolean;
  pid: number;
  status: string;
  name: string;
  hostname: string;
  /** Its labels (Docker's); NetworkPolicies select containers by them. */
  labels?: Record<string, string>;
}

/** Containers by id, id prefix or name; docker/ implements it over the Engine API. */
export interface ContainerLookup {
  /** undefined when there is no such container; ContainersUnavailable when nobody can be asked. */
  find(ref: string): Promise<ContainerRef | undefined>;
}

/** No container engine answers: a target that is not a namespace cannot be resolved. */
export class ContainersUnavailable extends UserError {}
