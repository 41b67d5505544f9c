import { readFileSync } from 'node:fs';
import { formatMac, parseMac, type Mac } from '../common/mac.js';
import { log } from '../common/log.js';
import { run, runOk } from '../common/exec.js';
import type { Netlink } from '../native/netlink.js';
import { BRIDGE } from './bridge.js';
import { Capture } from './capture.js';
import type {
  Datapath,
  DatapathConfig,
  DatapathEvents,
  DatapathReport,
  PeerLink,
  PeerPath,
  Routing,
} from './datapath.js';
import { FdbSync, type FdbWant } from './fdb.js';
import { HEARTBEAT_ETHERTYPE, isHeartbeat } from './heartbeat.js';
import { LOCAL } from './mac-table.js';
import { PcapIo } from './pcap-io.js';
import { NativeIo } from './native-io.js';
import type { SleeveIo } from './sleeve-io.js';
import { Sleeve } from './sleeve.js';
import { ETH_HEADER, VXLAN_HEADER } from './vxlan.js';

export const vxlanDevice = (udpPort: number): string => `vxlan-${udpPort}`;

async function innerIo(cfg: DatapathConfig): Promise<SleeveIo> {
  try {
    return NativeIo.open({ udpPort: cfg.sleevePort, vni: cfg.vni, mtu: cfg.mtu }, true);
  } catch (err) {
    if (/in use/.test((err as Error).message)) throw err;
    log.info(`fastdp's sleeve: the native one cannot run here (${(err as Error).message}): sleeve-pcap`);
    return PcapIo.open(cfg.sleevePort, { inner: true });
  }
}

/**
 * The VNI and port of the vxlan device by that name, or undefined when there is none (or that link is not a vxlan
 * device).
 */
export async function vxlanSettings(device: string): Promise<{ id?: number; port?: number } | undefined> {
  const r = await run(['ip', '-d', '-j', 'link', 'show', 'dev', device]);
  if (r.code !== 0) return undefined;
  const d = (
    JSON.parse(r.stdout) as { linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number } } }[]
  )[0]?.linkinfo;
  return d?.info_kind === 'vxlan' ? (d.info_data ?? {}) : undefined;
}

/** A device's packet counters from /proc/net/dev, which shows the reading process's own network namespace. */
function deviceCounters(dev: string): { rxBytes: number; rxPackets: number; txBytes: number; txPackets: number } {
  const line = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .find((l) => l.trimStart().startsWith(`${dev}:`));
  const f = line ? line.split(':')[1].trim().split(/\s+/).map(Number) : [];
  return { rxBytes: f[0] ?? 0, rxPackets: f[1] ?? 0, txBytes: f[8] ?? 0, txPackets: f[9] ?? 0 };
}
const RECONCILE_MS = 5000;
/** After a restart, the previous router's entries are trusted this long before stale ones are removed. */
const STALE_GRACE_MS = 5000;
/**
 * A neighbour on the kernel's path whose connection went (its router restarting: an upgrade, a crash) keeps that
 * path this long while no other router reaches it: its kernel goes on forwarding, and the sleeve could not reach it.
 */
const HOLD_MS = 30_000;

/**
 * The kernel forwards: a vxlan device on the bridge carries frames to peers whose VXLAN path the
 * heartbeat shows working, as plain VXLAN, with no userspace on the way. Everything else — frames
 * relayed for others, broadcast trees, peers the kernel cannot reach, peers whose MTU is smaller
 * (the sleeve answers a too-big packet with ICMP; the kernel would drop it) — takes the sleeve on
 * the bridge's other overlay port. Both overlay ports are isolated from each other, so a frame
 * one of them delivered never leaves through the other.
 */
export class Fastdp implements Datapath {
  readonly name = 'fastdp';
  get sleevePort(): number {
    return this.cfg.sleevePort;
  }
  private peers = new Map<string, PeerLink>();
  private readonly paths = new Map<string, PeerPath>();
  /** Neighbours gone while on the kernel's path: their address, until when their entries stay. */
  private readonly held = new Map<string, { ip: string; until: number }>();
  private routing?: Routing;
  private readonly heartbeatCapture: Capture;
  private fdb?: FdbSync;
  private events?: DatapathEvents;
  private timer?: NodeJS.Timeout;
  private readonly started = Date.now();

  private constructor(
    readonly cfg: DatapathConfig,
    readonly sleeve: Sleeve,
    private readonly nl: Netlink,
    readonly device: string,
  ) {
    this.heartbeatCapture = new Capture(device, `inbound and ether proto ${HEARTBEAT_ETHERTYPE}`, 1 << 20);
  }

  /**
   * Takes the sleeve port, then makes (or, after a restart, reuses) the vxlan device and brings it
   * up, which takes the VXLAN port: a launch that cannot have them fails before the bridge is touched.
   */
  static async open(cfg: DatapathConfig, nl: Netlink): Promise<Fastdp> {
    const device = vxlanDevice(cfg.udpPort);
    // The native sleeve where it can run, else sleeve-pcap; the kernel floods to plain VXLAN peers itself.
    const sleeve = new Sleeve({ ...cfg, vxlanPeers: [] }, await innerIo(cfg));
    const found = await vxlanSettings(device);
    let existed = found !== undefined;
    // One a router left with another VNI or port (launched differently before) is made again.
    if (found && (found.id !== cfg.vni || found.port !== cfg.udpPort)) {
      await runOk(['ip', 'link', 'del', 'dev', device]);
      existed = false;
    }
    try {
      if (!existed) {
        const r = await run([
          'ip',
          'link',
          'add',
          'name',
          device,
          'type',
          'vxlan',
          'id',
          String(cfg.vni),
          'dstport',
          String(cfg.udpPort),
          'nolearning',
        ]);
        if (r.code !== 0) throw new Error(`the kernel cannot make a vxlan device: ${r.stderr.trim()}`);
      }
      await runOk(['ip', 'link', 'set', 'dev', device, 'mtu', String(cfg.mtu)]);
      const up = await run(['ip', 'link', 'set', 'dev', device, 'up']);
      if (up.code !== 0)
        throw new Error(
          /in use/i.test(up.stderr)
            ? `UDP port ${cfg.udpPort} is already in use`
            : `cannot bring ${device} up: ${up.stderr.trim()}`,
        );
    } catch (err) {
      if (!existed) await run(['ip', 'link', 'del', 'dev', device]);
      await sleeve.stop();
      throw err;
    }
    return new Fastdp(cfg, sleeve, nl, device);
  }

  async start(events: DatapathEvents): Promise<void> {
    this.events = events;
    await runOk(['ip', 'link', 'set', 'dev', this.device, 'master', BRIDGE]);
    await runOk(['bridge', 'link', 'set', 'dev', this.device, 'learning', 'off', 'isolated', 'on']);
    this.fdb = new FdbSync(
      this.nl,
      this.nl.ifindex(this.device),
      this.nl.ifindex(this.sleeve.bridgePort),
      this.cfg.vxlanPeers.map((p) => p.ip),
    );
    await this.sleeve.start({
      learned: (batch) => {
        for (const { mac } of batch) this.program(mac);
        events.learned(batch);
      },
      pathChanged: (peer) => this.repath(peer),
    });
    this.heartbeatCapture.open((f) => {
      if (isHeartbeat(f)) this.sleeve.heartbeatFrom(f);
    }); // anyone may send that ethertype
    this.fdb.reconcile(false);
    this.timer = setInterval(() => this.reconcile(), RECONCILE_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.heartbeatCapture.close();
    await this.sleeve.stop();
    // The device and its entries stay: the kernel keeps forwarding while a restarted router comes back.
  }

  setRouting(routing: Routing): void {
    this.sleeve.setRouting(routing);
    this.routing = routing;
    for (const peer of this.held.keys()) this.reprogram(peer); // relayed by another router, or by none any more
  }

  setPeers(peers: PeerLink[]): void {
    this.sleeve.setPeers(peers);
    const before = this.peers;
    this.peers = new Map(peers.map((p) => [p.name, p]));
    for (const name of new Set([...before.keys(), ...this.peers.keys()])) {
      const a = before.get(name),
        b = this.peers.get(name);
      if (b) this.held.delete(name);
      else if (a && this.paths.get(name)?.mode === 'fastdp')
        this.held.set(name, { ip: a.ip, until: Date.now() + HOLD_MS });
      if (a?.ip !== b?.ip || a?.mtu !== b?.mtu || a?.datapath !== b?.datapath) this.repath(name);
    }
  }

  setMac(mac: Mac, owner: string | undefined): void {
    this.sleeve.setMac(mac, owner);
    this.program(mac);
  }

  /**
   * The sleeve's counters plus what the kernel moved through the vxlan device. The kernel counts a
   * frame from its IP header on (the Ethernet header is not in its byte counts): added back here, so
   * frame bytes mean the same on every datapath; datagrams add the VXLAN header.
   */
  report(): DatapathReport {
    const r = this.sleeve.report();
    const k = deviceCounters(this.device);
    const c = r.counters;
    const out = k.txBytes + ETH_HEADER * k.txPackets,
      inn = k.rxBytes + ETH_HEADER * k.rxPackets;
    const counters = {
      ...c,
      captured: { frames: c.captured.frames + k.txPackets, bytes: c.captured.bytes + out },
      injected: { frames: c.injected.frames + k.rxPackets, bytes: c.injected.bytes + inn },
      sent: { datagrams: c.sent.datagrams + k.txPackets, bytes: c.sent.bytes + out + VXLAN_HEADER * k.txPackets },
      received: {
        datagrams: c.received.datagrams + k.rxPackets,
        bytes: c.received.bytes + inn + VXLAN_HEADER * k.rxPackets,
      },
    };
    return {
      ...r,
      counters,
      endpoints: r.endpoints.map((e) => (e.path ? { ...e, path: this.pathOf(e.name) } : e)),
      fdb: this.fdb?.counts(),
    };
  }

  /**
   * Kernel for a neighbour whose VXLAN path works both ways and takes our frames whole; else the sleeve, with the
   * reason.
   */
  private pathOf(peer: string): PeerPath {
    const p = this.peers.get(peer);
    const heartbeat = this.sleeve.heartbeats.up(peer);
    if (!p) return { mode: 'sleeve', heartbeat, reason: 'not a neighbour: relayed' };
    if (p.datapath !== 'fastdp')
      return { mode: 'sleeve', heartbeat, reason: `it runs ${p.datapath || 'an older datapath'}` };
    if (p.mtu < this.cfg.mtu) return { mode: 'sleeve', heartbeat, reason: `its MTU ${p.mtu} is below ours` };
    if (!heartbeat)
      return { mode: 'sleeve', heartbeat, reason: this.sleeve.pathOf(peer).reason ?? 'no heartbeat over VXLAN' };
    return { mode: 'fastdp', heartbeat };
  }

  private repath(peer: string): void {
    const now = this.pathOf(peer),
      was = this.paths.get(peer);
    if (was?.mode === now.mode && was?.heartbeat === now.heartbeat && was?.reason === now.reason) return;
    this.paths.set(peer, now);
    this.reprogram(peer);
    if (this.peers.has(peer)) this.events?.pathChanged(peer, now);
  }

  private reprogram(peer: string): void {
    for (const mac of this.sleeve.knownMacs()) if (this.sleeve.ownerOf(mac) === peer) this.program(mac);
  }

  /**
   * The address of a gone neighbour whose entries are held while the hold lasts, unless another router relays to it
   * (the topology may say so for a moment after the neighbour went, until the relay's own record follows).
   */
  private heldAddress(peer: string): string | undefined {
    const h = this.held.get(peer);
    if (h && Date.now() > h.until) this.held.delete(peer);
    const hop = this.routing?.nextHop(peer);
    return hop !== undefined && hop !== peer ? undefined : this.held.get(peer)?.ip;
  }

  /**
   * The kernel's entries for a MAC follow where the sleeve would send it, so both agree; the
   * sleeve's table bounds what traffic can make us program.
   */
  private program(mac: Mac): void {
    const owner = this.sleeve.ownerOf(mac);
    let want: FdbWant | undefined;
    if (owner !== undefined && owner !== LOCAL) {
      const p = this.peers.get(owner);
      const held = p ? undefined : this.heldAddress(owner);
      if (p && this.pathOf(owner).mode === 'fastdp') want = { via: 'vxlan', dst: p.ip };
      else if (held) want = { via: 'vxlan', dst: held };
      else want = { via: 'sleeve' };
    }
    this.fdb?.set(formatMac(mac), want);
  }

  private reconcile(): void {
    // Locations the sleeve has aged out or evicted since are dropped here too.
    for (const mac of this.fdb?.wanted() ?? []) this.program(parseMac(mac));
    try {
      this.fdb?.reconcile(
        Date.now() - this.started > STALE_GRACE_MS &&
          (this.peers.size > 0 || Date.now() - this.started > 3 * STALE_GRACE_MS),
      );
    } catch (err) {
      log.warn(`FDB reconcile: ${(err as Error).message}`);
    }
  }
}
