import type { ControlPlane } from '../gossip/control-plane.js';
import type { RouterReport } from '../contract/report.js';
import { VERSION } from '../contract/config.js';
import type { MetricDef, Sample } from '../common/metrics.js';
import { route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { DataPlane } from './data-plane.js';
import { renderConnections, renderPeers, renderTargets, routerRows } from './status-text.js';

const CONNECTION_STATES = ['established', 'connecting', 'failed'];

/** The router itself: who it is, its control plane's view and its data plane, and the commands on its peers. */
/** What the router's report says of how it was launched. */
export interface RouterIdentity {
  dataDir: string;
  nickname: string;
  password?: string;
  discovery: boolean;
  port: number;
  udpPort: number;
  connLimit: number;
}

export function routerSubsystem(cfg: RouterIdentity, control: ControlPlane, data: DataPlane): Subsystem {
  const started = Date.now();
  const report = (): RouterReport => {
    const c = control.view();
    const keys = data.keys?.report();
    const d = data.report({ name: control.name, nickname: cfg.nickname });
    const topo = control.topology;
    const reachable = new Set(control.routes.reachable);
    return {
      version: VERSION,
      name: control.name,
      nickname: cfg.nickname,
      pid: process.pid,
      supervisorPid: Number(process.env.WEAVE_SUPERVISOR) || undefined,
      dataDir: cfg.dataDir,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      encryption: {
        enabled: !!data.keys,
        controlPlane: cfg.password ? 'noise, private network (password)' : 'noise',
        dataPlane: data.keys ? 'sealed per connection' : 'none',
        peers: keys,
      },
      peerDiscovery: cfg.discovery,
      port: cfg.port,
      udpPort: cfg.udpPort,
      connLimit: cfg.connLimit,
      targets: c.targets,
      connections: c.connections.map((x) => {
        const p = x.name ? d.paths[x.name] : undefined;
        return {
          ...x,
          datapath: p?.mode,
          encryption: x.name ? keys?.[x.name]?.encryption : undefined,
          traffic: p ? { tx: p.tx, rx: p.rx } : undefined,
        };
      }),
      peers: [...topo.peers.values()].map((p) => ({
        name: p.name,
        nickname: p.nickname,
        self: p.name === control.name,
        reachable: p.name === control.name || reachable.has(p.name),
        nextHop: control.routes.nextHop(p.name),
        version: p.version,
        connections: p.links.map((l) => ({
          ...l,
          nickname: control.nickname(l.peer),
          established: topo.neighbours(p.name).includes(l.peer),
        })),
      })),
      gossip: c.gossip,
      requests: { ...control.requestCounters },
      ...d,
    };
  };
  const targets = () => ({ targets: control.view().targets });
  return {
    name: 'router',
    requests: data.requests,
    routes: [
      route({
        method: 'POST',
        path: '/connect',
        body: { peers: 'string[]', replace: 'boolean?' },
        handle: ({ body }) => {
          control.connect(body.peers, body.replace === true);
          return targets();
        },
      }),
      route({
        method: 'POST',
        path: '/forget',
        body: { peers: 'string[]' },
        handle: ({ body }) => {
          control.forget(body.peers);
          return targets();
        },
      }),
    ],
    report,
    status: () => ({ service: 'router', rows: routerRows(report()) }),
    views: {
      peers: () => renderPeers(report()),
      connections: () => renderConnections(report()),
      targets: () => renderTargets(report()),
    },
    metrics: routerMetrics(report),
  };
}

function routerMetrics(fresh: () => RouterReport): MetricDef[] {
  // Every metric of one scrape reads the same report.
  let snapshot: RouterReport | undefined;
  const report = () =>
    snapshot ??
    (setImmediate(() => {
      snapshot = undefined;
    }),
    (snapshot = fresh()));
  const gauge = (name: string, help: string, labels: string[], samples: (r: RouterReport) => Sample[]): MetricDef => ({
    name,
    help,
    type: 'gauge',
    labels,
    samples: () => samples(report()),
  });
  const counter = (
    name: string,
    help: string,
    labels: string[],
    samples: (r: RouterReport) => Sample[],
  ): MetricDef => ({ name, help, type: 'counter', labels, samples: () => samples(report()) });
  // Frames are what the containers see: "out" leaves through the overlay (captured from the
  // bridge), "in" arrives from it (injected into the bridge). Datagrams are the UDP underlay.
  const flow = (name: string, help: string, pick: (r: RouterReport) => { out: number; in: number }) =>
    counter(name, help, ['datapath', 'direction'], (r) => {
      const v = pick(r);
      return [
        { labels: { datapath: r.datapath, direction: 'out' }, value: v.out },
        { labels: { datapath: r.datapath, direction: 'in' }, value: v.in },
      ];
    });
  const perChannel = (
    name: string,
    help: string,
    pick: (c: RouterReport['gossip'][string]) => { in?: number; out?: number },
  ) =>
    counter(name, help, ['channel', 'direction'], (r) =>
      Object.entries(r.gossip).flatMap(([channel, c]) => {
        const v = pick(c);
        return (['in', 'out'] as const)
          .filter((d) => v[d] !== undefined)
          .map((direction) => ({ labels: { channel, direction }, value: v[direction]! }));
      }),
    );
  return [
    gauge(
      'weave_router_info',
      'Always 1; the labels describe this router.',
      ['version', 'name', 'nickname', 'datapath'],
      (r) => [{ labels: { version: r.version, name: r.name, nickname: r.nickname, datapath: r.datapath }, value: 1 }],
    ),
    gauge('weave_uptime_seconds', 'Seconds since this router started.', [], (r) => [{ value: r.uptimeSeconds }]),
    gauge('weave_connections', 'Control connections to other routers, by state.', ['state'], (r) =>
      CONNECTION_STATES.map((state) => ({
        labels: { state },
        value: r.connections.filter((c) => c.state === state).length,
      })),
    ),
    gauge(
      'weave_peers',
      'Peers in the topology (this router included), by whether they can be reached.',
      ['state'],
      (r) => [
        { labels: { state: 'reachable' }, value: r.peers.filter((p) => p.reachable).length },
        { labels: { state: 'unreachable' }, value: r.peers.filter((p) => !p.reachable).length },
      ],
    ),
    flow('weave_frames_total', 'Ethernet frames between the local bridge and the overlay.', (r) => ({
      out: r.counters.captured.frames,
      in: r.counters.injected.frames,
    })),
    flow('weave_frame_bytes_total', 'Bytes of Ethernet frames between the local bridge and the overlay.', (r) => ({
      out: r.counters.captured.bytes,
      in: r.counters.injected.bytes,
    })),
    flow('weave_datagrams_total', 'UDP datagrams sent to and received from peers.', (r) => ({
      out: r.counters.sent.datagrams,
      in: r.counters.received.datagrams,
    })),
    flow('weave_datagram_bytes_total', 'Bytes of UDP datagrams sent to and received from peers.', (r) => ({
      out: r.counters.sent.bytes,
      in: r.counters.received.bytes,
    })),
    counter('weave_relayed_frames_total', 'Frames passed on for another peer.', [], (r) => [
      { value: r.counters.relayed },
    ]),
    counter(
      'weave_flooded_frames_total',
      'Frames sent down a broadcast tree (group or unknown destination).',
      [],
      (r) => [{ value: r.counters.flooded }],
    ),
    counter('weave_dropped_frames_total', 'Frames and datagrams dropped, by reason.', ['reason'], (r) =>
      Object.entries(r.counters.dropped).map(([reason, value]) => ({ labels: { reason }, value })),
    ),
    gauge('weave_mac_table_entries', 'MAC addresses this router knows the location of.', [], (r) => [
      { value: r.macs.length },
    ]),
    counter('weave_mac_table_evictions_total', 'MAC table entries evicted because the table was full.', [], (r) => [
      { value: r.counters.macsEvicted },
    ]),
    counter(
      'weave_gossip_rejected_total',
      'Gossiped entries refused as hostile, impossible or over a limit.',
      [],
      (r) => [{ value: r.counters.gossipRejected }],
    ),
    perChannel('weave_gossip_messages_total', 'Gossip messages by channel.', (c) => ({
      in: c.messagesIn,
      out: c.messagesOut,
    })),
    perChannel('weave_gossip_bytes_total', 'Gossip bytes by channel.', (c) => ({ in: c.bytesIn, out: c.bytesOut })),
    counter(
      'weave_peer_requests_total',
      'Requests between peers: sent by this router, relayed for others, refused.',
      ['kind'],
      (r) => Object.entries(r.requests).map(([kind, value]) => ({ labels: { kind }, value })),
    ),
    perChannel(
      'weave_gossip_dropped_total',
      'Received gossip messages dropped (undecodable or hostile), by channel.',
      (c) => ({ in: c.dropped }),
    ),
  ];
}
