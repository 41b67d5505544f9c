import net from 'node:net';
import { log } from '../common/log.js';

/** `-p [IP:]HOSTPORT:PORT`: a port of the host that reaches a container's port on the overlay. */
export interface PublishSpec {
  hostIp: string;
  hostPort: number;
  port: number;
  proto: string;
}

/**
 * Publishes container ports on the host by relaying TCP connections to the container's overlay
 * address (the host reaches it over the bridge, which has an address on the overlay), as
 * docker-proxy does for Docker's own bridge. Containers on the overlay have no Docker network to
 * publish through.
 */
export class PortPublisher {
  private readonly servers = new Map<string, net.Server[]>();

  async publish(id: string, spec: PublishSpec, targetIp: string): Promise<number> {
    if (spec.proto !== 'tcp') throw new Error(`publishing ${spec.proto} ports is not supported (TCP only)`);
    const server = net.createServer((client) => {
      const upstream = net.connect(spec.port, targetIp);
      const close = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new Error(
            err.code === 'EADDRINUSE'
              ? `host port ${spec.hostPort} is already in use`
              : `cannot publish port ${spec.hostPort}: ${err.message}`,
          ),
        ),
      );
      server.listen(spec.hostPort, spec.hostIp || '0.0.0.0', () => resolve());
    });
    const list = this.servers.get(id) ?? [];
    list.push(server);
    this.servers.set(id, list);
    const port = (server.address() as net.AddressInfo).port;
    log.info(
      `published ${spec.hostIp || '0.0.0.0'}:${port} → ${targetIp}:${spec.port} for container ${id.slice(0, 12)}`,
    );
    return port;
  }

  unpublish(id: string): void {
    for (const s of this.servers.get(id) ?? []) s.close();
    this.servers.delete(id);
  }

  close(): void {
    for (const id of [...this.servers.keys()]) this.unpublish(id);
  }
}
