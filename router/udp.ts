import dgram from 'node:dgram';
import { Endpoint } from './endpoints.js';

/** The data-plane socket on UDP 6784, shared by every datapath that tunnels in userspace. */
export class UdpTransport {
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

  send(datagram: Buffer, to: Endpoint): void {
    this.sock.send(datagram, to.port, to.ip);
  }

  close(): void { this.sock.close(); }
}
