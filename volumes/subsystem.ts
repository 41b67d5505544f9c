import { join } from 'node:path';
import { UserError } from '../common/errors.js';
import { log } from '../common/log.js';
import { formatBytes } from '../common/format.js';
import { route, type ParamParser } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import { checkName, type VolumeManager, type VolumeView } from './manager.js';
import { servePlugin } from './plugin.js';

const volumeName: ParamParser<string> = (raw) => checkName(raw);

const copies = (v: VolumeView) =>
  v.copies
    .filter((c) => c.host !== v.owner)
    .map((c) => `${c.nickname || c.host.slice(0, 17)} ${Math.max(0, Math.round((Date.now() - c.gen) / 1000))}s ago`)
    .join(', ');
const moving = (v: VolumeView) =>
  v.transfer
    ? `${v.transfer.direction === 'in' ? 'arriving from' : 'sending to'} ${v.transfer.peer.slice(0, 17)}: ${formatBytes(v.transfer.bytes)}`
    : '';

/**
 * Volumes as the router carries them: `weave volume create|ls|inspect|move|rm` (the /volumes
 * routes), Docker's volume plugin on `<pluginDir>/weave.sock`, the channel and the requests.
 */
export function volumesSubsystem(
  m: VolumeManager,
  o: { pluginDir: string; resolveHost(host: string): string | undefined },
): Subsystem {
  let plugin: { close(): Promise<void> } | undefined;
  const host = (raw: string) => {
    const h = o.resolveHost(raw);
    if (!h) throw new UserError(`unknown host "${raw.slice(0, 40)}": not a peer name or nickname in the topology`);
    return h;
  };
  return {
    name: 'volumes',
    channels: [m.channel],
    requests: m.requests,
    routes: [
      route({
        method: 'POST',
        path: '/volumes',
        body: { name: 'string', replicas: 'string?' },
        text: (v: VolumeView) => v.name,
        handle: ({ body }) => {
          const replicas = body.replicas === undefined ? 1 : Number(body.replicas);
          if (!/^\d+$/.test(body.replicas ?? '1'))
            throw new UserError(`invalid replicas "${String(body.replicas).slice(0, 20)}": expected 1..16`);
          return m.create(volumeName(body.name, 'name'), replicas);
        },
      }),
      route({
        method: 'GET',
        path: '/volumes',
        text: (rows: VolumeView[]) =>
          [
            `${'VOLUME'.padEnd(24)} ${'HOST'.padEnd(16)} COPIES MOUNTED REPLICATED`,
            ...rows.map(
              (v) =>
                `${v.name.padEnd(24)} ${(v.ownerNickname || v.owner.slice(0, 17)).padEnd(16)} ${String(v.replicas).padStart(6)} ${String(v.here ? v.mounted : '-').padStart(7)} ${copies(v) || '-'}${moving(v) ? `  ${moving(v)}` : ''}`,
            ),
          ].join('\n'),
        handle: () => m.list(),
      }),
      route({
        method: 'GET',
        path: '/volumes/:name',
        params: { name: volumeName },
        handle: ({ params }) => m.inspect(params.name!),
      }),
      route({
        method: 'POST',
        path: '/volumes/:name/move',
        params: { name: volumeName },
        body: { host: 'string' },
        text: (s: string) => s,
        handle: ({ params, body }) => m.move(params.name!, host(body.host)),
      }),
      route({
        method: 'DELETE',
        path: '/volumes/:name',
        params: { name: volumeName },
        text: (s: string) => s,
        handle: ({ params }) => m.remove(params.name!),
      }),
    ],
    report: () => ({ volumes: m.report() }),
    status: () => {
      const r = m.report();
      return {
        service: 'volumes',
        rows: [
          ['Pool', r.backend ? `${r.backend.kind} ${r.backend.pool}` : 'not opened (no volume here yet)'],
          ['Volumes', `${r.volumes.length} (${r.volumes.filter((v) => v.here).length} here)`],
          ...r.transfers.map((t): [string, string] => [
            `Moving ${t.name}`,
            `${t.direction === 'in' ? 'from' : 'to'} ${t.peer.slice(0, 17)}: ${formatBytes(t.bytes)}`,
          ]),
        ],
      };
    },
    metrics: [
      {
        name: 'weave_volumes',
        help: 'Volumes in the cluster, and those this host owns.',
        type: 'gauge',
        labels: ['where'],
        samples: () => {
          const v = m.list();
          return [
            { labels: { where: 'cluster' }, value: v.length },
            { labels: { where: 'here' }, value: v.filter((x) => x.here).length },
          ];
        },
      },
      {
        name: 'weave_volume_bytes_total',
        help: 'Volume bytes received and sent by moves and replication.',
        type: 'counter',
        labels: ['direction'],
        samples: () => [
          { labels: { direction: 'in' }, value: m.counters.bytesIn },
          { labels: { direction: 'out' }, value: m.counters.bytesOut },
        ],
      },
    ],
    start: async () => {
      await m.start();
      // Without the plugin Docker cannot mount our volumes, but the rest of the router is of use.
      plugin = await servePlugin(join(o.pluginDir, 'weave.sock'), m.plugin()).catch((err: Error) => {
        log.warn(`volumes: no Docker volume plugin: ${err.message}`);
        return undefined;
      });
    },
    stop: async () => {
      await plugin?.close();
      await m.stop();
    },
  };
}
