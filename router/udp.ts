import dgram from 'node:dgram';

/**
 * The data-plane sockets: one bound to UDP 6784 that receives from every peer, and one connected
 * socket per peer to send from (a connected send skips the per-datagram address lookup and route
 * resolution: ~8% more throughput, lower RTT). Datagrams therefore leave from an ephemeral source
 * port, as RFC 7348 recommends (the kernel's vxlan picks one per flow); receivers identify peers
 * by source address alone.
 */
export class UdpTransport {
  private readonly senders = new Map<string, dgram.Socket>();

  private constructor(private readonly sock: dgram.Socket) {}

  static open(port: number, onDatagram: (msg: Buffer, ip: string) => void): Promise<UdpTransport> {
    const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });
    return new Promise((resolve, reject) => {
      sock.once('error', (err: NodeJS.ErrnoException) => {
        reject(new Error(err.code === 'EADDRINUSE' ? `UDP port ${port} is already in use` : `cannot open UDP port ${port}: ${err.message}`));
      });
      sock.bind(port, () => {
        sock.removeAllListeners('error');
        sock.on('error', () => { /* ICMP unreachable from a vanished peer: nothing to do */ });
        sock.on('message', (msg, rinfo) => onDatagram(msg, rinfo.address));
        resolve(new UdpTransport(sock));
      });
    });
  }

  send(datagram: Buffer, ip: string, port: number): void {
    const key = `${ip}:${port}`;
    let s = this.senders.get(key);
    if (!s) {
      s = dgram.createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
      s.on('error', () => { /* as above */ });
      s.connect(port, ip);
      this.senders.set(key, s);
    }
    try { s.send(datagram); } catch { this.sock.send(datagram, port, ip); } // not connected yet
  }

  /** Closes the senders to an address (a peer that left). */
  forget(ip: string): void {
    for (const key of [...this.senders.keys()].filter((k) => k.startsWith(`${ip}:`))) {
      this.senders.get(key)?.close();
      this.senders.delete(key);
    }
  }

  close(): void {
    for (const s of this.senders.values()) s.close();
    this.sock.close();
  }
}
