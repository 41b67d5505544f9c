// Docker's endpoints on our networks as attachments: the veth the driver made, its MAC announced
// to the overlay and its address in `weave ps`, from Join to Leave; the container's id and names
// (so DNS knows it) come afterwards, from Docker's own view of the network (see sync.ts).
import type { Attachments } from '../../attach/attachments.js';
import { containerNames } from '../../attach/attachments.js';

/** An endpoint as the driver made it: its MAC and address (CIDR). */
export interface Endpoint {
  mac: string;
  cidr: string;
}

export const endpointIdent = (endpointId: string) => `docker-endpoint:${endpointId}`;

export class DockerEndpoints {
  /** Endpoints created here (CreateEndpoint to DeleteEndpoint), by Docker's endpoint id. */
  readonly made = new Map<string, Endpoint>();

  constructor(private readonly attachments: Attachments) {}

  /** The endpoint is in its container: its MAC is announced, `weave ps` lists it. */
  joined(endpointId: string, e: Endpoint, container?: { id: string; name: string; hostname: string }): void {
    this.made.set(endpointId, e);
    this.attachments.register(
      {
        ident: endpointIdent(endpointId),
        // dockerd moved the interface itself, into a namespace only its own mount namespace may name
        nsTarget: '',
        label: container?.id.slice(0, 12) ?? endpointId.slice(0, 12),
        container: container?.id,
        names: container ? containerNames(container) : [],
      },
      e.mac,
      [e.cidr],
    );
  }

  /** Whether the endpoint is attached but its container is not known yet. */
  unnamed(endpointId: string): boolean {
    const e = this.attachments.attached.get(endpointIdent(endpointId));
    return e !== undefined && e.container === undefined;
  }

  left(endpointId: string): void {
    this.attachments.unregister(endpointIdent(endpointId));
  }

  deleted(endpointId: string): void {
    this.left(endpointId);
    this.made.delete(endpointId);
  }
}
