import { UserError } from '../common/errors.js';
import { peerName } from '../common/format.js';
import { route, type ParamParser } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { Scheduler } from './scheduler.js';
import { NAME } from './stack.js';

const stackName: ParamParser<string> = (raw) => {
  if (!NAME.test(raw))
    throw new UserError(`invalid stack name "${raw.slice(0, 40)}": lower-case letters, digits and -, at most 32`);
  return raw;
};

const age = (since: number) => {
  const s = Math.max(0, Math.round((Date.now() - since) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

/**
 * The scheduler as the router carries it: `weave deploy FILE` (POST /stacks), `weave stack ls`,
 * `ps NAME` and `rm NAME`, its gossip channel, its section of the report, status and page.
 */
export function schedulerSubsystem(s: Scheduler): Subsystem {
  const psText = (rows: ReturnType<Scheduler['ps']>) =>
    [
      `${'REPLICA'.padEnd(28)} ${'HOST'.padEnd(16)} ${'ADDRESS'.padEnd(15)} ${'STATE'.padEnd(16)} SINCE`,
      ...rows.map(
        (r) =>
          `${r.replica.padEnd(28)} ${(r.nickname || '-').padEnd(16)} ${(r.address || '-').padEnd(15)} ${r.state.padEnd(16)} ${r.since ? age(r.since) : '-'}${r.error ? `  ${r.error}` : ''}`,
      ),
    ].join('\n');
  return {
    name: 'scheduler',
    channels: [s.channel],
    routes: [
      route({
        method: 'POST',
        path: '/stacks',
        body: { name: 'string', manifest: 'string', source: 'string?' },
        text: (r: { stack: string; changed: boolean; replicas: number }) =>
          `${r.stack}: ${r.changed ? 'deployed' : 'unchanged'} (${r.replicas} replicas)`,
        handle: ({ body }) => s.deploy(body.manifest, stackName(body.name, 'name'), body.source ?? body.name),
      }),
      route({
        method: 'GET',
        path: '/stacks',
        text: (rows: ReturnType<Scheduler['list']>) =>
          [
            `${'STACK'.padEnd(24)} SERVICES REPLICAS RUNNING`,
            ...rows.map(
              (r) =>
                `${r.name.padEnd(24)} ${String(r.services).padStart(8)} ${String(r.replicas).padStart(8)} ${String(r.running).padStart(7)}`,
            ),
          ].join('\n'),
        handle: () => s.list(),
      }),
      route({
        method: 'GET',
        path: '/stacks/:name',
        params: { name: stackName },
        text: psText,
        handle: ({ params }) => s.ps(params.name!),
      }),
      route({
        method: 'DELETE',
        path: '/stacks/:name',
        params: { name: stackName },
        handle: ({ params }) => s.remove(params.name!),
      }),
    ],
    report: () => ({ scheduler: s.report() }),
    status: () => {
      const r = s.report();
      const where = (stack: string) => {
        const on = new Map<string, number>();
        for (const x of r.replicas)
          if (x.stack === stack && x.state === 'running') on.set(x.nickname, (on.get(x.nickname) ?? 0) + 1);
        return [...on]
          .sort()
          .map(([h, n]) => `${h} ${n}`)
          .join(', ');
      };
      return {
        service: 'scheduler',
        rows: [
          [
            'Hosts',
            `${r.hosts.length} (${r.hosts.filter((h) => h.reachable).length} reachable${r.dead.length ? `, ${r.dead.length} declared dead` : ''})${r.fenced ? ' - FENCED: this host cannot see a majority' : ''}`,
          ],
          [
            'Labels',
            Object.entries(r.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(' '),
          ],
          ...(r.engineError ? [['Engine', `runs no replicas: ${r.engineError}`] as [string, string]] : []),
          ...r.stacks.map((x): [string, string] => [
            `Stack ${x.name}`,
            `${x.running}/${x.replicas} running${x.running ? `: ${where(x.name)}` : ''}`,
          ]),
        ],
      };
    },
    views: {
      stacks: () => `${psText(s.ps())}\n`,
      hosts: () =>
        s
          .report()
          .hosts.map(
            (h) =>
              `${peerName(h.name, h.nickname).padEnd(40)} ${Object.entries(h.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')}${h.reachable ? '' : ' - unreachable'}${h.fenced ? ' - fenced' : ''}\n`,
          )
          .join(''),
    },
    metrics: [
      {
        name: 'weave_scheduler_replicas',
        help: 'Scheduled replicas by state, as this router sees the cluster.',
        type: 'gauge',
        labels: ['state'],
        samples: () => {
          const by = new Map<string, number>();
          for (const x of s.ps()) by.set(x.state, (by.get(x.state) ?? 0) + 1);
          return [...by].map(([state, value]) => ({ labels: { state }, value }));
        },
      },
    ],
    start: async () => s.start(),
    stop: () => s.stop(),
  };
}
