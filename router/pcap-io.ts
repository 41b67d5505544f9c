import { runOk } from '../common/exec.js';
import { BRIDGE_PORT_IF, CAPTURE_IF } from './bridge.js';
import { Capture } from './capture.js';
import type { PeerSecurity } from './data-keys.js';
import { PeerSeal, SEAL_TYPE } from './seal.js';
import { portFlags, type SleeveIo, type SleeveUp } from './sleeve-io.js';
import { UdpTransport } from './udp.js';

/**
 * libpcap on the capture veth and UDP through Node: every frame goes through the forwarder. The
 * `inbound` filter keeps our own injections out of the capture, so a frame we put on the bridge is
 * never captured and sent back where it came from. With encryption, datagrams are sealed and opened
 * here with Node's crypto.
 */
export class PcapIo implements SleeveIo {
  readonly name = 'sleeve-pcap';
  readonly port = BRIDGE_PORT_IF;
  private readonly capture = new Capture(CAPTURE_IF, 'inbound', 16 << 20);
  private readonly seals = new Map<string, PeerSeal | 'plain'>();
  private up?: SleeveUp;

  private constructor(
    private readonly udp: UdpTransport,
    private readonly onUdp: { fn: (m: Buffer, ip: string) => void },
    private readonly inner: boolean,
    private readonly encrypt: boolean,
  ) {}

  /**
   * Takes the UDP port; nothing else is touched yet. inner: the sleeve of a fastdp datapath, which sets the bridge port
   * up itself.
   */
  static async open(port: number, opts: { inner?: boolean; encrypt?: boolean } = {}): Promise<PcapIo> {
    const onUdp = { fn: (_m: Buffer, _ip: string) => {} };
    return new PcapIo(
      await UdpTransport.open(port, (m, ip) => onUdp.fn(m, ip)),
      onUdp,
      opts.inner ?? false,
      opts.encrypt ?? false,
    );
  }

  async start(up: SleeveUp): Promise<void> {
    this.up = up;
    await runOk(['bridge', 'link', 'set', 'dev', BRIDGE_PORT_IF, ...portFlags(this.inner)]);
    this.onUdp.fn = this.encrypt ? this.opened : up.fromPeer;
    this.capture.open(up.fromBridge);
  }

  /** With encryption, a datagram goes up only once opened, or plain from a peer both sides trust. */
  private readonly opened = (d: Buffer, ip: string): void => {
    const s = this.seals.get(ip);
    if (d[0] !== SEAL_TYPE) return s === 'plain' ? this.up?.fromPeer(d, ip) : this.up?.dropped('unencrypted');
    if (!(s instanceof PeerSeal)) return this.up?.dropped('no-key');
    const inner = s.open(d);
    if (typeof inner === 'string') this.up?.dropped(inner);
    else this.up?.fromPeer(inner, ip);
  };

  inject(frame: Buffer): void {
    this.capture.send(frame);
  }

  send(datagram: Buffer, ip: string, port: number): void {
    if (!this.encrypt) return this.udp.send(datagram, ip, port);
    const s = this.seals.get(ip);
    if (s === undefined) return this.up?.dropped('no-key');
    this.udp.send(s === 'plain' ? datagram : s.seal(datagram), ip, port);
  }

  buffer(): Buffer {
    return this.udp.buffer();
  }

  secure(ip: string, s: PeerSecurity | undefined): void {
    const next = PeerSeal.of(s, this.seals.get(ip));
    if (next) this.seals.set(ip, next);
    else this.seals.delete(ip);
  }

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
