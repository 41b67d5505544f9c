import dgram from 'node:dgram';

/** Room for the largest datagram: a relay header and a 64 KiB frame. */
const DATAGRAM_BYTES = 65536 + 16;

/**
 * The data-plane sockets: one bound to UDP 6784 that receives from every peer, and one connected
 * socket per peer to send from (a connected send skips the per-datagram address lookup and route
 * resolution: ~8% more throughput, lower RTT). Datagrams therefore leave from an ephemeral source
 * port, as RFC 7348 recommends (the kernel's vxlan picks one per flow); receivers identify peers
 * by source address alone.
 */
export class UdpTransport {
  /** By address, then port: no key string to build per datagram. */
  private readonly senders = new Map<string, Map<number, dgram.Socket>>();
  private scratch = Buffer.allocUnsafeSlow(DATAGRAM_BYTES);

  private constructor(private readonly sock: dgram.Socket) {}

  static open(port: number, onDatagram: (msg: Buffer, ip: string) => void): Promise<UdpTransport> {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    return new Promise((resolve, reject) => {
      sock.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new Error(
            err.code === 'EADDRINUSE'
              ? `UDP port ${port} is already in use`
              : `cannot open UDP port ${port}: ${err.message}`,
          ),
        );
      });
      sock.bind(port, () => {
        sock.removeAllListeners('error');
        sock.on('error', () => {
          /* ICMP unreachable from a vanished peer: nothing to do */
        });
        sock.on('message', (msg, rinfo) => onDatagram(msg, rinfo.address));
        resolve(new UdpTransport(sock));
      });
    });
  }

  /**
   * A buffer to build the next datagram in, the same one every time: a send normally completes
   * within the call (no allocation per datagram). One the kernel could not take at once stays
   * queued in libuv, which sends it from this memory later: then the next datagram gets a new buffer.
   */
  buffer(): Buffer {
    return this.scratch;
  }

  send(datagram: Buffer, ip: string, port: number): void {
    let byPort = this.senders.get(ip);
    if (!byPort) this.senders.set(ip, (byPort = new Map()));
    let s = byPort.get(port);
    if (!s) {
      s = dgram.createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
      s.on('error', () => {
        /* as above */
      });
      s.connect(port, ip);
      byPort.set(port, s);
    }
    const pooled = datagram.buffer === this.scratch.buffer;
    try {
      s.send(datagram);
    } catch {
      // not connected yet: the bound socket resolves the address first, after this call
      this.sock.send(pooled ? Buffer.from(datagram) : datagram, port, ip);
      return;
    }
    if (pooled && s.getSendQueueCount() > 0) this.scratch = Buffer.allocUnsafeSlow(DATAGRAM_BYTES);
  }

  /** Closes the senders to an address (a peer that left). */
  forget(ip: string): void {
    for (const s of this.senders.get(ip)?.values() ?? []) s.close();
    this.senders.delete(ip);
  }

  close(): void {
    for (const byPort of this.senders.values()) for (const s of byPort.values()) s.close();
    this.sock.close();
  }
}
