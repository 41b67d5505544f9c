import { runOk } from '../common/exec.js';
import { BRIDGE_PORT_IF, CAPTURE_IF } from './bridge.js';
import { Capture } from './capture.js';
import type { SleeveIo, SleeveUp } from './sleeve-io.js';
import { UdpTransport } from './udp.js';

/**
 * libpcap on the capture veth and UDP through Node: every frame goes through the forwarder. The
 * `inbound` filter keeps our own injections out of the capture, so a frame we put on the bridge is
 * never captured and sent back where it came from.
 */
export class PcapIo implements SleeveIo {
  readonly name = 'sleeve-pcap';
  private readonly capture = new Capture(CAPTURE_IF, 'inbound', 16 << 20);

  private constructor(private readonly udp: UdpTransport, private readonly onUdp: { fn: (m: Buffer, ip: string) => void },
                      private readonly inner: boolean) {}

  /** Takes the UDP port; nothing else is touched yet. inner: the sleeve of a fastdp datapath, which sets the bridge port up itself. */
  static async open(port: number, inner = false): Promise<PcapIo> {
    const onUdp = { fn: (_m: Buffer, _ip: string) => {} };
    return new PcapIo(await UdpTransport.open(port, (m, ip) => onUdp.fn(m, ip)), onUdp, inner);
  }

  async start(up: SleeveUp): Promise<void> {
    // Alone, the sleeve is the bridge's only overlay port and learns like any other (fastdp changes that).
    if (!this.inner) await runOk(['bridge', 'link', 'set', 'dev', BRIDGE_PORT_IF, 'learning', 'on', 'isolated', 'off']);
    this.onUdp.fn = up.fromPeer;
    this.capture.open(up.fromBridge);
  }

  inject(frame: Buffer): void { this.capture.send(frame); }
  send(datagram: Buffer, ip: string, port: number): void { this.udp.send(datagram, ip, port); }
  buffer(): Buffer { return this.udp.buffer(); }

  /** Closes the senders to addresses no endpoint has any more. */
  private known = new Set<string>();
  peers(ips: string[]): void {
    const now = new Set(ips);
    for (const ip of this.known) if (!now.has(ip)) this.udp.forget(ip);
    this.known = now;
  }

  async stop(): Promise<void> {
    this.capture.close();
    this.udp.close();
  }
}
