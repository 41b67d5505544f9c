import net from 'node:net';

/** A connection with nothing to say for this long is closed (RFC 7766 6.2.3 suggests seconds). */
const IDLE_MS = 10_000;
/** Connections at once on one address; more are closed as they arrive. */
const MAX_CONNECTIONS = 64;
/** Bytes a connection may have sent ahead of its answers: a few whole queries. */
const MAX_PENDING = 4 * (2 + 65535);

export interface TcpHandler {
  /** The reply to one message, or undefined to hang up (it could not be decoded: counted there). */
  answer(msg: Buffer, from: string): Promise<Buffer | undefined>;
  /** A connection that ended, idled or overflowed in the middle of a message. */
  malformed(): void;
}

/**
 * DNS over TCP (RFC 1035 4.2.2, RFC 7766): each message after its 2-byte length, several on one connection,
 * answered in turn. Whatever a client sends or fails to send only ever closes its own connection.
 */
export class DnsTcpListener {
  private readonly connections = new Set<net.Socket>();

  private constructor(private readonly server: net.Server) {}

  static async listen(address: string, port: number, h: TcpHandler): Promise<DnsTcpListener> {
    const server = net.createServer({ allowHalfOpen: true });
    server.maxConnections = MAX_CONNECTIONS;
    const listener = new DnsTcpListener(server);
    server.on('connection', (sock) => listener.serve(sock, h));
    server.on('error', () => {
      /* accept failures (out of descriptors): the clients retry */
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return listener;
  }

  close(): void {
    this.server.close();
    for (const c of this.connections) c.destroy();
    this.connections.clear();
  }

  private serve(sock: net.Socket, h: TcpHandler): void {
    this.connections.add(sock);
    sock.on('close', () => this.connections.delete(sock));
    sock.on('error', () => {
      /* a reset by the client: 'close' follows */
    });
    const from = sock.remoteAddress ?? '';
    let pending = Buffer.alloc(0);
    let busy = false;
    let ended = false;
    const hangUp = () => {
      if (pending.length) h.malformed();
      pending = Buffer.alloc(0);
      sock.destroy();
    };
    const finish = () => {
      if (pending.length) hangUp();
      else sock.end();
    };
    const next = async () => {
      if (busy) return;
      busy = true;
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const msg = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + msg.length);
        const reply = await h.answer(msg, from).catch(() => undefined);
        if (sock.destroyed) return;
        if (!reply) return void sock.destroy();
        const length = Buffer.alloc(2);
        length.writeUInt16BE(reply.length);
        sock.write(Buffer.concat([length, reply]));
      }
      busy = false;
      if (ended) finish();
    };
    sock.setTimeout(IDLE_MS, hangUp);
    sock.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length > MAX_PENDING) return hangUp();
      void next();
    });
    sock.on('end', () => {
      ended = true;
      if (!busy) finish();
    });
  }
}
