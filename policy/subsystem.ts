import { readFileSync, writeFileSync } from 'node:fs';
import { NotFound, UserError } from '../common/errors.js';
import { run } from '../common/exec.js';
import { JsonFile } from '../common/json-file.js';
import { log } from '../common/log.js';
import { route } from '../common/route.js';
import type { Subsystem } from '../common/subsystem.js';
import type { PolicyApplyResult, PolicyRow, PolicyWhy } from '../contract/requests.js';
import type { Firewall } from '../firewall/firewall.js';
import type { ControlPlane } from '../gossip/control-plane.js';
import { GossipChannel } from '../gossip/typed-channel.js';
import type { weave } from '../proto/gen/weave.js';
import { commentOf, type CountedRule, compile, SECTION } from './compile.js';
import { namespaceOf, type Pod, selects, why } from './model.js';
import { ipv4, type Policy, parsePolicies, policyKey, type Protocol } from './parse.js';
import { POLICY, PolicyState } from './state.js';

/** A container on this host as policies need it: its overlay addresses and labels. */
export interface LocalContainer {
  ident: string;
  name: string;
  ips: string[];
  labels: Record<string, string>;
}

/** This host's containers, as the composition root gives them (attach/ knows them). */
export interface LocalContainers {
  list(): LocalContainer[];
  /** Told whenever a container is attached or gone. */
  onChange(l: () => void): void;
  /**
   * Awaited before a container's interface is made: its addresses and labels, so that the
   * rules cover it before its first packet. Returns how to forget it if the attach fails.
   */
  beforeAttach(g: (c: LocalContainer) => Promise<() => void>): void;
}

export interface PolicyOptions {
  defaultDeny: boolean;
  /** Where the policies (and this host's containers as last said) are kept across restarts. */
  file?: string;
}

/** A manifest's NetworkPolicy documents (the scheduler's interface, by shape). */
export interface StackPolicies {
  check(text: string, stack: string, source: string): void;
  apply(text: string, stack: string, source: string): void;
  remove(stack: string): void;
}

/** The name of the policy `--default-deny` gives every namespace. */
export const DEFAULT_DENY = 'weave-default-deny';
/**
 * How often the kernel's counters are read: reading lists the whole table, sets' elements and all,
 * so a large section is read less often (1000 rules: every 12 s) to spare the CPU the traffic needs.
 */
const COUNTERS_MS = 2000;
const COUNTERS_MS_PER_RULE = 10;
/**
 * After a restart, this host's containers as it last said are covered until the attachments and the
 * container watcher have taken them back (a container gone meanwhile only keeps a rule for a while).
 */
const RESTORED_MS = 30_000;
const BRIDGE_NF = '/proc/sys/net/bridge/bridge-nf-call-iptables';

/** `--default-deny`: each namespace takes traffic only from itself, unless a policy allows more. */
const defaultDeny = (namespace: string): Policy => ({
  namespace,
  name: DEFAULT_DENY,
  podSelector: { matchLabels: {}, matchExpressions: [] },
  policyTypes: ['Ingress'],
  ingress: [{ peers: [{ podSelector: { matchLabels: {}, matchExpressions: [] } }], ports: [] }],
  egress: [],
});

/**
 * Kubernetes NetworkPolicy for the overlay: policies gossiped to every router (the `policy`
 * channel, which also carries each host's containers with their labels), compiled by each host
 * against its own containers into the firewall's `policy` section, counted per rule.
 */
export function policySubsystem(
  control: ControlPlane,
  firewall: Firewall,
  local: LocalContainers,
  o: PolicyOptions,
): { subsystem: Subsystem; recompile(): Promise<void>; stacks: StackPolicies } {
  let asked = 0,
    done = 0;
  let running: Promise<void> | undefined;
  const channel = new GossipChannel(POLICY, (emit) => new PolicyState(control.name, Date.now, () => emit()));
  const state = channel.crdt as PolicyState;
  const pending = new Map<string, LocalContainer>();
  const file = new JsonFile<weave.IPolicyState>(o.file);
  let restored: Pod[] = [];
  file.load((saved) => {
    state.merge({ policies: saved.policies }, undefined);
    restored = (saved.hosts ?? [])
      .filter((h) => h.peer === control.name)
      .flatMap((h) => h.pods ?? [])
      .map((p) => ({
        ip: p.address ?? '',
        namespace: p.namespace ?? 'default',
        labels: { ...(p.labels ?? {}) },
        name: p.name ?? '',
      }));
  });
  const save = () => file.write(state.state());
  const publish = (d: weave.IPolicyState) => channel.publish(d);
  let compiled: { rules: CountedRule[]; size: number; at: number; ms: number } = { rules: [], size: 0, at: 0, ms: 0 };
  let lastError = '';
  let bridgeNf = '';
  /** Counts from rules already replaced, plus the kernel's now: by comment. */
  const base = new Map<string, { packets: number; bytes: number }>();
  let live = new Map<string, { packets: number; bytes: number }>();
  /** Section loads so far: a counter reading begun before a load is of rules now gone. */
  let loads = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const podsOf = (cs: Iterable<LocalContainer>): Pod[] =>
    [...cs].flatMap((c) =>
      c.ips.map((ip) => ({ ip, namespace: namespaceOf(c.labels), labels: { ...c.labels }, name: c.name })),
    );
  const localPods = (): Pod[] => {
    const byIdent = new Map(local.list().map((c) => [c.ident, c]));
    for (const [k, c] of pending) if (!byIdent.has(k)) byIdent.set(k, c);
    const now = podsOf(byIdent.values());
    return [...now, ...restored.filter((r) => !now.some((p) => p.ip === r.ip))];
  };
  /** Every container the cluster knows (ours as we know them now, the others' as they said). */
  const allPods = (): Pod[] => {
    const mine = localPods();
    const others = [...state.hosts.values()]
      .filter((h) => h.peer !== control.name && control.topology.peers.has(h.peer))
      .flatMap((h) => h.pods);
    return [...mine, ...others];
  };
  const policies = (): Policy[] => {
    const given = state.live();
    if (!o.defaultDeny) return given;
    const namespaces = [...new Set(allPods().map((p) => p.namespace))];
    return [
      ...given,
      ...namespaces.filter((n) => !given.some((p) => policyKey(p) === `${n}/${DEFAULT_DENY}`)).map(defaultDeny),
    ];
  };

  const readCounters = async (): Promise<Map<string, { packets: number; bytes: number }>> => {
    const j = (await firewall.list()) as {
      nftables?: {
        rule?: { chain: string; comment?: string; expr?: { counter?: { packets: number; bytes: number } }[] };
      }[];
    };
    const m = new Map<string, { packets: number; bytes: number }>();
    for (const x of j.nftables ?? []) {
      const r = x.rule;
      if (!r?.chain.startsWith(`${SECTION}_`) || !r.comment) continue;
      const c = r.expr?.find((e) => e.counter)?.counter;
      if (!c) continue;
      const cur = m.get(r.comment) ?? { packets: 0, bytes: 0 };
      m.set(r.comment, { packets: cur.packets + c.packets, bytes: cur.bytes + c.bytes });
    }
    return m;
  };

  const once = async () => {
    const t0 = Date.now();
    const c = compile(policies(), localPods(), allPods());
    const t1 = Date.now();
    // The kernel's counts so far go into the base before their rules are replaced.
    const now = await readCounters().catch(() => new Map<string, { packets: number; bytes: number }>());
    const t2 = Date.now();
    await firewall.replace(SECTION, c.body);
    if (Date.now() - t0 > 200)
      log.info(
        `policy: ${c.size} rules: compiled in ${t1 - t0} ms, counters read in ${t2 - t1} ms, loaded in ${Date.now() - t2} ms`,
      );
    for (const [k, v] of now) {
      const b = base.get(k) ?? { packets: 0, bytes: 0 };
      base.set(k, { packets: b.packets + v.packets, bytes: b.bytes + v.bytes });
    }
    live = new Map();
    loads++;
    compiled = { rules: c.rules, size: c.size, at: Date.now(), ms: Date.now() - t0 };
    lastError = '';
  };
  /**
   * Compiles and applies, one at a time, until the kernel has every change made before the call
   * (a change is counted in `asked`; a compile covers the changes counted when it started).
   */
  const settle = async (): Promise<void> => {
    const want = asked;
    while (done < want && !stopped) {
      if (running) {
        await running;
        continue;
      }
      const covers = asked;
      running = once()
        .catch((err: Error) => {
          lastError = err.message;
          log.warn(`policy: ${err.message}`);
        })
        .finally(() => {
          running = undefined;
          done = covers;
        });
      await running;
    }
  };
  const recompile = (): Promise<void> => {
    asked++;
    return settle();
  };
  const changed = () => void recompile();
  channel.on(() => {
    save();
    changed();
  });
  local.onChange(() => {
    for (const c of local.list()) pending.delete(c.ident);
    publish(state.putSelf(podsOf(local.list())));
  });
  local.beforeAttach(async (c) => {
    pending.set(c.ident, c);
    await recompile();
    return () => {
      pending.delete(c.ident);
      changed();
    };
  });

  /** A manifest's policies: the stack is their namespace, and they go with it. */
  const ofStack = (text: string, stack: string, source: string): Policy[] =>
    parsePolicies(text, { file: source, namespace: stack, others: 'skip' }).map((p, i) => {
      if (p.namespace !== stack)
        throw new UserError(
          `${source}: policy ${i + 1} (${p.name}): metadata.namespace: a stack's policies are in its namespace ${stack}`,
        );
      return { ...p, stack };
    });
  const dropStack = (stack: string, keep: Set<string>) => {
    for (const p of state.live())
      if (p.stack === stack && !keep.has(policyKey(p))) publish(state.put(policyKey(p), undefined));
  };
  const stacks: StackPolicies = {
    check: (text, stack, source) => void ofStack(text, stack, source),
    apply: (text, stack, source) => {
      const ps = ofStack(text, stack, source);
      for (const p of ps) {
        const cur = state.policies.get(policyKey(p));
        if (!cur || cur.deleted || cur.spec !== JSON.stringify(p)) publish(state.put(policyKey(p), p));
      }
      dropStack(stack, new Set(ps.map(policyKey)));
    },
    remove: (stack) => dropStack(stack, new Set()),
  };

  const counts = (): { rule: CountedRule; packets: number; bytes: number }[] => {
    const keys = new Map<string, CountedRule>();
    for (const r of compiled.rules) keys.set(commentOf(r), r);
    for (const k of base.keys()) {
      const m = /^(\S+) (\S+(?: drop)?)$/.exec(k);
      if (m && !keys.has(k))
        keys.set(k, { policy: m[1], rule: m[2], verdict: m[2].endsWith(' drop') ? 'drop' : 'allow' });
    }
    return [...keys].map(([k, rule]) => {
      const b = base.get(k) ?? { packets: 0, bytes: 0 },
        l = live.get(k) ?? { packets: 0, bytes: 0 };
      return { rule, packets: b.packets + l.packets, bytes: b.bytes + l.bytes };
    });
  };

  const resolve = (x: string): string => {
    if (ipv4(x) !== undefined) return x;
    const pod = allPods().find((p) => p.name === x || p.name === x.replace(/^\//, ''));
    if (!pod) throw new NotFound(`${x}: neither an address nor a container the policies know`);
    return pod.ip;
  };

  const rows = (): PolicyRow[] => {
    const mine = localPods();
    const byPolicy = new Map<string, number>();
    for (const c of counts())
      if (c.rule.verdict === 'drop') byPolicy.set(c.rule.policy, (byPolicy.get(c.rule.policy) ?? 0) + c.packets);
    return policies().map((p) => ({
      name: policyKey(p),
      types: p.policyTypes,
      rules: p.ingress.length + p.egress.length,
      selectedHere: mine.filter((pod) => selects(p, pod)).length,
      dropped: byPolicy.get(policyKey(p)) ?? 0,
    }));
  };

  const report = () => ({
    policies: rows(),
    rules: compiled.size,
    compiledAt: compiled.at,
    compileMs: compiled.ms,
    error: lastError,
    bridgeNetfilter: bridgeNf,
    counters: counts().map((c) => ({ ...c.rule, packets: c.packets, bytes: c.bytes })),
  });

  const subsystem: Subsystem = {
    name: 'policy',
    channels: [channel],
    routes: [
      route({
        method: 'POST',
        path: '/policy/apply',
        body: { file: 'string', yaml: 'string', namespace: 'string?' },
        text: (r: PolicyApplyResult) => r.applied.map((n) => `applied ${n}`).join('\n'),
        handle: async ({ body }): Promise<PolicyApplyResult> => {
          const ps = parsePolicies(body.yaml, { file: body.file, namespace: body.namespace ?? 'default' });
          const before = new Map(ps.map((p) => [policyKey(p), state.policies.get(policyKey(p))]));
          for (const p of ps) publish(state.put(policyKey(p), p));
          await settle();
          if (lastError) {
            // The kernel refused them: they are taken back everywhere, and what was in force stays.
            const refused = lastError;
            for (const [k, r] of before)
              publish(state.put(k, r && !r.deleted ? (JSON.parse(r.spec) as Policy) : undefined));
            await settle();
            throw new UserError(`${body.file}: not applied: ${refused}`);
          }
          return { applied: ps.map(policyKey) };
        },
      }),
      route({
        method: 'GET',
        path: '/policy',
        text: (r: PolicyRow[]) =>
          [
            `${'NAME'.padEnd(40)} ${'TYPES'.padEnd(15)} RULES SELECTED-HERE DROPPED`,
            ...r.map(
              (p) =>
                `${p.name.padEnd(40)} ${p.types.join(',').padEnd(15)} ${String(p.rules).padEnd(5)} ${String(p.selectedHere).padEnd(13)} ${p.dropped}`,
            ),
          ].join('\n'),
        handle: () => rows(),
      }),
      route({
        method: 'POST',
        path: '/policy/rm',
        body: { name: 'string' },
        handle: async ({ body }) => {
          const key = body.name.includes('/') ? body.name : `default/${body.name}`;
          const cur = state.policies.get(key);
          if (!cur || cur.deleted) throw new NotFound(`no policy ${key}`);
          publish(state.put(key, undefined));
          await settle();
          return { removed: key };
        },
      }),
      route({
        method: 'POST',
        path: '/policy/why',
        body: { src: 'string', dst: 'string', port: 'string' },
        text: (r: PolicyWhy) => r.text,
        handle: ({ body }): PolicyWhy => {
          const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/i.exec(body.port);
          const port = m ? Number(m[1]) : 0;
          if (!m || port < 1 || port > 65535)
            throw new UserError(`"${body.port}" is not PORT or PORT/PROTO (tcp, udp, sctp)`);
          const proto = (m[2] ?? 'tcp').toUpperCase() as Protocol;
          const src = resolve(body.src),
            dst = resolve(body.dst);
          return { src, dst, port, protocol: proto, ...why(policies(), allPods(), src, dst, port, proto) };
        },
      }),
    ],
    report: () => ({ policy: report() }),
    status: () => {
      const r = report();
      return {
        service: 'policy',
        rows: [
          ['Policies', String(r.policies.length)],
          ['Rules', `${r.rules} in the kernel${r.compiledAt ? ` (compiled in ${r.compileMs} ms)` : ''}`],
          ['Dropped', r.policies.map((p) => `${p.name}: ${p.dropped}`).join(', ') || '0'],
          ...(r.error ? [['Error', r.error] as [string, string]] : []),
          ...(r.bridgeNetfilter ? [['Bridge', r.bridgeNetfilter] as [string, string]] : []),
        ],
      };
    },
    metrics: [
      {
        name: 'weave_policy_packets_total',
        help: 'Packets of new flows that a NetworkPolicy rule allowed or dropped, by policy and rule.',
        type: 'counter',
        labels: ['policy', 'rule', 'verdict'],
        samples: () =>
          counts().map((c) => ({
            labels: { policy: c.rule.policy, rule: c.rule.rule, verdict: c.rule.verdict },
            value: c.packets,
          })),
      },
      {
        name: 'weave_policy_rules',
        help: 'NetworkPolicy rules in the kernel on this host.',
        type: 'gauge',
        samples: () => [{ value: compiled.size }],
      },
    ],
    start: async () => {
      bridgeNf = await bridgeNetfilter();
      if (bridgeNf) log.warn(`policy: ${bridgeNf}`);
      publish(state.putSelf(podsOf(local.list())));
      await recompile();
      const tick = async () => {
        const at = loads;
        const read = await readCounters().catch(() => undefined);
        if (read && at === loads) live = read;
        if (!stopped) timer = setTimeout(() => void tick(), COUNTERS_MS + compiled.size * COUNTERS_MS_PER_RULE);
      };
      timer = setTimeout(() => void tick(), COUNTERS_MS);
      if (restored.length)
        setTimeout(() => {
          restored = [];
          changed();
        }, RESTORED_MS).unref();
    },
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
  return { subsystem, recompile, stacks };
}

/**
 * Bridged frames between containers pass the `inet` forward hook (with conntrack) only with
 * br_netfilter and bridge-nf-call-iptables; empty when they do, else why not.
 */
async function bridgeNetfilter(): Promise<string> {
  await run(['modprobe', 'br_netfilter'], { timeoutMs: 5000 });
  try {
    if (readFileSync(BRIDGE_NF, 'utf8').trim() !== '1') writeFileSync(BRIDGE_NF, '1\n');
    return '';
  } catch (err) {
    return `bridged traffic is not filtered (${BRIDGE_NF}: ${(err as Error).message})`;
  }
}
