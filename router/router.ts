import { ControlPlane, RemotePeer } from './control.js';
import { Datapath } from './datapath.js';
import { Endpoints, makeEndpoint } from './endpoints.js';
import { Forwarder } from './forwarder.js';
import { MacTable } from './mac-table.js';
import { UdpTransport } from './udp.js';
import { attach, detach } from './attach.js';
import { parseCidr } from '../common/cidr.js';
import { isIPv4 } from '../common/cidr.js';
import { log } from '../common/log.js';
import { RouterConfig, VERSION } from './config.js';
import { splitHostPort } from './control.js';

const MAC_AGE_MS = 300_000;

/** The running router: the data plane (datapath, forwarder, UDP) driven by the control plane's peer events. */
export class Router {
  readonly macs = new MacTable(MAC_AGE_MS);
  readonly endpoints = new Endpoints();
  readonly forwarder: Forwarder;
  private readonly started = Date.now();
  private ager?: NodeJS.Timeout;

  constructor(readonly cfg: RouterConfig, readonly name: string, readonly mtu: number,
              private readonly datapath: Datapath, private readonly udp: UdpTransport, readonly control: ControlPlane) {
    this.forwarder = new Forwarder({
      vni: cfg.vni, maxFrame: mtu + 14 + 4, macs: this.macs, endpoints: this.endpoints,
      send: (d, ep) => udp.send(d, ep), inject: (f) => datapath.inject(f),
    });
    for (const v of cfg.vxlanPeers) {
      const [ip, port] = v.includes(':') ? splitHostPort(v) : [v, cfg.udpPort];
      this.endpoints.add(makeEndpoint(`vxlan:${ip}`, 'vxlan', ip, port, 'vxlan'));
    }
    control.on('peer-up', (p: RemotePeer) => {
      log.info(`connected to ${p.name}(${p.nickname}) at ${p.ip}`);
      this.endpoints.add(makeEndpoint(p.name, p.nickname, p.ip, p.udpPort, 'router'));
    });
    control.on('peer-down', (name: string) => {
      log.info(`lost ${name}`);
      this.endpoints.remove(name);
      this.macs.forgetPeer(name);
    });
  }

  async start(): Promise<void> {
    await this.datapath.start((f) => this.forwarder.fromBridge(f));
    this.ager = setInterval(() => this.macs.expire(), 10_000);
    this.control.connect(this.cfg.peers);
  }

  async stop(): Promise<void> {
    clearInterval(this.ager);
    await this.control.close();
    await this.datapath.stop();
    this.udp.close();
  }

  onDatagram(msg: Buffer, ip: string): void { this.forwarder.fromPeer(msg, ip); }

  async attach(body: { target?: unknown; cidrs?: unknown }) {
    if (typeof body.target !== 'string') throw new Error('attach needs a target');
    if (!Array.isArray(body.cidrs) || body.cidrs.length === 0) throw new Error('no address given, and IPAM is not running here: give a CIDR');
    const cidrs = body.cidrs.map((c) => parseCidr(String(c)));
    const a = await attach(body.target, cidrs, this.mtu);
    log.info(`attached ${a.target} (${a.mac}) with ${a.cidrs.join(' ')}`);
    return a;
  }

  async detach(body: { target?: unknown }) {
    if (typeof body.target !== 'string') throw new Error('detach needs a target');
    const r = await detach(body.target);
    log.info(`detached ${body.target} (${r.mac})`);
    return r;
  }

  report() {
    const c = this.control.view();
    const byName = new Map(this.endpoints.list.map((e) => [e.name, e]));
    return {
      version: VERSION,
      name: this.name,
      nickname: this.cfg.nickname,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      datapath: this.datapath.name,
      encryption: false,
      peerDiscovery: this.cfg.discovery,
      vni: this.cfg.vni,
      mtu: this.mtu,
      port: this.cfg.port,
      udpPort: this.cfg.udpPort,
      targets: c.targets,
      connections: c.connections.map((x) => ({ ...x, traffic: x.name ? byName.get(x.name) && { tx: byName.get(x.name)!.tx, rx: byName.get(x.name)!.rx } : undefined })),
      peers: [{ name: this.name, nickname: this.cfg.nickname, self: true }, ...c.peers.map((p) => ({ ...p, self: false }))],
      vxlanEndpoints: this.endpoints.list.filter((e) => e.kind === 'vxlan'),
      macs: this.macs.view(),
      counters: { ...this.forwarder.counters, controlProtocolErrors: this.control.protocolErrors },
    };
  }
}

export type Report = ReturnType<Router['report']>;

export function validateConfig(cfg: RouterConfig): void {
  for (const p of cfg.vxlanPeers) {
    const [ip, port] = p.includes(':') ? splitHostPort(p) : [p, cfg.udpPort];
    if (!isIPv4(ip) || !(port > 0 && port < 65536)) throw new Error(`invalid VXLAN peer "${p}": expected IP or IP:PORT`);
  }
}
