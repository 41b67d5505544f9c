import { serviceCapabilities, type Connection, type Libp2pEvents, type TypedEventTarget } from '@libp2p/interface';

interface Components {
  events: TypedEventTarget<Libp2pEvents>;
  registrar: { getProtocols(): string[] };
}

/**
 * Stands in for libp2p's identify between routers: every router speaks the protocols we speak, and
 * noise has already proved who the peer is, so each new connection is announced at once as a peer
 * with our protocols (what gossipsub waits for before it meshes with a peer). identify asked each
 * peer over a stream of its own, sealed and checked a signed record of its addresses and wrote the
 * answer to the peer store four times: a fifth of the CPU of a hundred routers started at once,
 * for facts no router uses (we dial by address, never by a peer's advertised ones).
 */
export function sameProtocols(): (components: Components) => SameProtocols {
  return (components) => new SameProtocols(components);
}

export class SameProtocols {
  /** What gossipsub asks of identify: peer:identify events. */
  readonly [serviceCapabilities] = ['@libp2p/identify'];

  constructor(private readonly c: Components) {}

  start(): void {
    this.c.events.addEventListener('connection:open', this.opened);
  }
  stop(): void {
    this.c.events.removeEventListener('connection:open', this.opened);
  }

  private readonly opened = (evt: CustomEvent<Connection>): void => {
    const connection = evt.detail;
    this.c.events.safeDispatchEvent('peer:identify', {
      detail: {
        peerId: connection.remotePeer,
        protocols: this.c.registrar.getProtocols(),
        listenAddrs: [],
        connection,
      },
    });
  };
}
