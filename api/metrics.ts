import { Counter, Gauge, Registry } from 'prom-client';
import type { Report } from '../router/router.js';
import type { IpamView } from './ipam-view.js';

export type MetricsReport = Report & { ipam?: IpamView };

interface GossipCounters { messagesIn: number; bytesIn: number; messagesOut: number; bytesOut: number; dropped: number }

const CONNECTION_STATES = ['established', 'connecting', 'failed'];

/**
 * GET /metrics: one prom-client Registry per router (never the global one, so two routers in
 * one process, as in unit tests, do not mix), every value read from one report taken at scrape
 * time: the router keeps plain counters and pays nothing for metrics until someone scrapes.
 */
export class RouterMetrics {
  readonly registry = new Registry();
  private snapshot?: MetricsReport;

  constructor(private readonly report: () => MetricsReport) {
    const r = () => this.snapshot ?? this.report();
    const registers = [this.registry];

    new Gauge({ name: 'weave_router_info', help: 'Always 1; the labels describe this router.', labelNames: ['version', 'name', 'nickname', 'datapath'], registers,
      collect() { const x = r(); this.reset(); this.set({ version: x.version, name: x.name, nickname: x.nickname, datapath: x.datapath }, 1); } });
    new Gauge({ name: 'weave_uptime_seconds', help: 'Seconds since this router started.', registers,
      collect() { this.set(r().uptimeSeconds); } });
    new Gauge({ name: 'weave_connections', help: 'Control connections to other routers, by state.', labelNames: ['state'], registers,
      collect() {
        const by = new Map(CONNECTION_STATES.map((s) => [s, 0]));
        for (const c of r().connections) by.set(c.state, (by.get(c.state) ?? 0) + 1);
        this.reset();
        for (const [state, n] of by) this.set({ state }, n);
      } });
    new Gauge({ name: 'weave_peers', help: 'Peers in the topology (this router included), by whether they can be reached.', labelNames: ['state'], registers,
      collect() {
        const peers = r().peers;
        this.reset();
        this.set({ state: 'reachable' }, peers.filter((p) => p.reachable).length);
        this.set({ state: 'unreachable' }, peers.filter((p) => !p.reachable).length);
      } });
    // Frames are what the containers see: "out" leaves through the overlay (captured from the
    // bridge), "in" arrives from it (injected into the bridge). Datagrams are the UDP underlay.
    const flow = (name: string, help: string, pick: (x: MetricsReport) => { out: number; in: number }) =>
      new Counter({ name, help, labelNames: ['datapath', 'direction'], registers,
        collect() {
          const x = r(), v = pick(x);
          this.reset();
          this.inc({ datapath: x.datapath, direction: 'out' }, v.out);
          this.inc({ datapath: x.datapath, direction: 'in' }, v.in);
        } });
    flow('weave_frames_total', 'Ethernet frames between the local bridge and the overlay.', (x) => ({ out: x.counters.captured.frames, in: x.counters.injected.frames }));
    flow('weave_frame_bytes_total', 'Bytes of Ethernet frames between the local bridge and the overlay.', (x) => ({ out: x.counters.captured.bytes, in: x.counters.injected.bytes }));
    flow('weave_datagrams_total', 'UDP datagrams sent to and received from peers.', (x) => ({ out: x.counters.sent.datagrams, in: x.counters.received.datagrams }));
    flow('weave_datagram_bytes_total', 'Bytes of UDP datagrams sent to and received from peers.', (x) => ({ out: x.counters.sent.bytes, in: x.counters.received.bytes }));
    new Counter({ name: 'weave_relayed_frames_total', help: 'Frames passed on for another peer.', registers,
      collect() { this.reset(); this.inc(r().counters.relayed); } });
    new Counter({ name: 'weave_flooded_frames_total', help: 'Frames sent down a broadcast tree (group or unknown destination).', registers,
      collect() { this.reset(); this.inc(r().counters.flooded); } });
    new Counter({ name: 'weave_dropped_frames_total', help: 'Frames and datagrams dropped, by reason.', labelNames: ['reason'], registers,
      collect() {
        this.reset();
        for (const [reason, n] of Object.entries(r().counters.dropped)) this.inc({ reason }, n);
      } });
    new Gauge({ name: 'weave_mac_table_entries', help: 'MAC addresses this router knows the location of.', registers,
      collect() { this.set(r().macs.length); } });
    new Gauge({ name: 'weave_ipam_addresses', help: 'IPAM addresses in use and free (absent while IPAM is not running).', labelNames: ['state'], registers,
      collect() {
        const ipam = r().ipam;
        this.reset();
        if (typeof ipam?.inUse === 'number') this.set({ state: 'in_use' }, ipam.inUse);
        if (typeof ipam?.free === 'number') this.set({ state: 'free' }, ipam.free);
      } });
    const perChannel = (name: string, help: string, pick: (c: GossipCounters) => { in?: number; out?: number }) =>
      new Counter({ name, help, labelNames: ['channel', 'direction'], registers,
        collect() {
          this.reset();
          for (const [channel, c] of Object.entries(r().gossip as Record<string, GossipCounters>)) {
            const v = pick(c);
            if (v.in !== undefined) this.inc({ channel, direction: 'in' }, v.in);
            if (v.out !== undefined) this.inc({ channel, direction: 'out' }, v.out);
          }
        } });
    perChannel('weave_gossip_messages_total', 'Gossip messages by channel.', (c) => ({ in: c.messagesIn, out: c.messagesOut }));
    perChannel('weave_gossip_bytes_total', 'Gossip bytes by channel.', (c) => ({ in: c.bytesIn, out: c.bytesOut }));
    perChannel('weave_gossip_dropped_total', 'Received gossip messages dropped (undecodable or hostile), by channel.', (c) => ({ in: c.dropped }));
  }

  get contentType(): string { return this.registry.contentType; }

  /** The Prometheus text exposition, every metric read from the same report. */
  async scrape(): Promise<string> {
    this.snapshot = this.report();
    try { return await this.registry.metrics(); } finally { this.snapshot = undefined; }
  }
}
