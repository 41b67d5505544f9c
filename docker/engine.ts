/** A container as the Engine API's inspect shows it (only the fields we read). */
export interface ContainerInfo {
  Id: string;
  Name: string;
  State: { Running: boolean; Pid: number; Status: string };
  Config: { Hostname: string; Image: string; Labels?: Record<string, string> | null };
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  State: string;
  Status?: string;
  Labels?: Record<string, string>;
}

/** What an events stream hands us (only the fields we read). */
export interface DockerEvent {
  Type: string;
  Action: string;
  id?: string;
  Actor?: { ID: string };
  time?: number;
}

/** What the events watcher needs of a container engine: the Docker client, or a fake in tests. */
export interface ContainerEngine {
  readonly host: string;
  ping(): Promise<unknown>;
  list(all?: boolean): Promise<ContainerSummary[]>;
  inspect(ref: string): Promise<ContainerInfo>;
  events(
    filters: Record<string, string[]>,
    onEvent: (e: DockerEvent) => void,
    onEnd: (err?: Error) => void,
  ): { close(): void };
}

/**
 * Containers the scheduler runs carry their replica's identity in this label: the scheduler attaches, adopts and
 * releases them itself.
 */
export const REPLICA_LABEL = 'weave.replica';

/** Docker's name for our volume plugin (its socket is weave.sock in the plugin directory). */
export const VOLUME_DRIVER = 'weave';
