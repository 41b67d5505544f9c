import type { AttachedEntry, Attachments } from '../attach/attachments.js';
import { existingAttachment, resolveTarget } from '../attach/veth.js';
import { UserError } from '../common/errors.js';
import { log } from '../common/log.js';
import { clash, inSection, type Published } from '../firewall/edges.js';
import type { Firewall } from '../firewall/firewall.js';
import type { DockerClient } from './client.js';

/** `-p [IP:]HOSTPORT:PORT[/PROTO]`: a port of the host that reaches a container's port on the overlay. */
export type PublishSpec = Omit<Published, 'ip'>;

/** A container's published ports, kept with the container (so that a restarted router publishes them again). */
export const PUBLISH_LABEL = 'works.weave.publish';

/** `[IP:]HOSTPORT:PORT[/tcp|/udp]` (a manifest's `ports:`); undefined when it is not that. */
export function parsePort(text: string): PublishSpec | undefined {
  const m = /^(?:(\d+\.\d+\.\d+\.\d+):)?(\d{1,5}):(\d{1,5})(?:\/(tcp|udp))?$/.exec(text);
  if (!m || [m[2], m[3]].some((p) => Number(p) < 1 || Number(p) > 65535)) return undefined;
  return { hostIp: m[1] ?? '', hostPort: Number(m[2]), port: Number(m[3]), proto: (m[4] ?? 'tcp') as 'tcp' | 'udp' };
}

type PortBindings = Record<string, { HostIp?: string; HostPort?: string }[] | null>;

/**
 * Takes Docker's port bindings out of a create body (the overlay publishes them, not Docker's
 * network) and keeps them in the container's label; refuses what the kernel's DNAT cannot do.
 */
export function takePortBindings(body: {
  Labels?: Record<string, string>;
  HostConfig?: { PortBindings?: PortBindings };
}): PublishSpec[] {
  const specs: PublishSpec[] = [];
  for (const [key, bindings] of Object.entries(body.HostConfig?.PortBindings ?? {})) {
    const [port, proto = 'tcp'] = key.split('/');
    if (proto !== 'tcp' && proto !== 'udp') throw new UserError(`cannot publish ${key}: weave publishes tcp and udp`);
    for (const b of bindings ?? []) {
      if (!b.HostPort || Number(b.HostPort) === 0)
        throw new UserError(`cannot publish ${key}: give the host port (-p HOSTPORT:${port})`);
      specs.push({ hostIp: b.HostIp ?? '', hostPort: Number(b.HostPort), port: Number(port), proto });
    }
  }
  if (body.HostConfig) delete body.HostConfig.PortBindings;
  for (const [i, a] of specs.entries())
    for (const b of specs.slice(i + 1))
      if (clash({ ...a, ip: '' }, { ...b, ip: '' }))
        throw new UserError(`host port ${a.hostPort}/${a.proto} is published twice`);
  if (specs.length) body.Labels = { ...body.Labels, [PUBLISH_LABEL]: JSON.stringify(specs) };
  return specs;
}

/** The label's specs, each checked as -p text again: the label is the container's, and its values go into nft. */
export function fromLabel(label: string): PublishSpec[] {
  let specs: unknown;
  try {
    specs = JSON.parse(label);
  } catch {
    specs = undefined;
  }
  if (!Array.isArray(specs)) throw new UserError(`invalid label ${PUBLISH_LABEL}: expected a list of ports`);
  return specs.map((s: Partial<PublishSpec>) => {
    const text = `${s.hostIp ? `${s.hostIp}:` : ''}${s.hostPort}:${s.port}/${s.proto}`;
    const p = parsePort(text);
    if (!p || p.hostIp !== (s.hostIp ?? '')) throw new UserError(`invalid label ${PUBLISH_LABEL}: bad port ${text}`);
    return p;
  });
}

/**
 * Published ports as DNAT in the kernel (the firewall's `in` section), for every container
 * attached here whose label asks for them: published when it is attached (by weave run, the proxy,
 * or again after a router or container restart), gone when it is detached. Each change rewrites
 * the section in one transaction.
 */
export class PortPublisher {
  private readonly ports = new Map<string, Published[]>();
  private readonly pending = new Map<string, Promise<void>>();

  /** `bridgeAddress`: gives the bridge its overlay address if it has none (the host reaches containers through it). */
  constructor(
    private readonly fw: Firewall,
    private readonly docker: DockerClient,
    private readonly o: { range: string; bridge: string; bridgeAddress: () => Promise<unknown> },
  ) {}

  /** Follows the attachments: call once, before they are restored. */
  follow(attachments: Attachments): void {
    attachments.onChange(({ attached, entry }) => {
      if (!entry.container) return;
      const id = entry.container;
      const p = (this.pending.get(id) ?? Promise.resolve())
        .catch(() => {})
        .then(() => (attached ? this.attached(id, entry) : this.detached(id)));
      this.pending.set(id, p);
      p.catch((err: Error) => log.warn(`container ${id.slice(0, 12)}: ${err.message}`)).finally(() => {
        if (!attached && this.pending.get(id) === p) this.pending.delete(id); // a detached container's is done with
      });
    });
  }

  /** Waits until a container's ports are published (or failed to be: the error is thrown). */
  async settled(id: string): Promise<void> {
    await this.pending.get(id);
  }

  /**
   * At start, before the containers are adopted: the section is rewritten from the running containers that ask for
   * ports and still have their interface, so that it neither keeps a container gone while the router was down nor
   * drops, even for a moment, one that is adopted later. Without an engine it stays as it was.
   */
  async restore(): Promise<void> {
    const running = await this.docker.list(false, PUBLISH_LABEL).catch(() => undefined);
    if (!running) return;
    for (const c of running) {
      try {
        const info = await this.docker.inspect(c.Id);
        const found = await existingAttachment(resolveTarget(`pid:${info.State.Pid}`));
        const ip = found?.cidrs.find((x) => !x.includes(':'))?.split('/')[0];
        if (ip)
          this.ports.set(
            c.Id,
            fromLabel(c.Labels?.[PUBLISH_LABEL] ?? '').map((s) => ({ ...s, ip })),
          );
      } catch (err) {
        log.warn(`container ${c.Id.slice(0, 12)}: ${(err as Error).message}`);
      }
    }
    await this.write();
  }

  private async attached(id: string, entry: AttachedEntry): Promise<void> {
    const info = await this.docker.inspect(id);
    const label = info.Config.Labels?.[PUBLISH_LABEL];
    if (!label) return;
    const ip = entry.cidrs.find((c) => !c.includes(':'))?.split('/')[0];
    if (!ip) throw new UserError('cannot publish ports of a container with no IPv4 address');
    const mine = fromLabel(label).map((s) => ({ ...s, ip }));
    for (const [other, theirs] of this.ports)
      for (const a of mine)
        if (other !== id && theirs.some((b) => clash(a, b)))
          throw new UserError(`host port ${a.hostPort}/${a.proto} is published already by ${other.slice(0, 12)}`);
    await this.o.bridgeAddress();
    const before = this.ports.get(id);
    this.ports.set(id, mine);
    try {
      await this.write();
    } catch (err) {
      if (before) this.ports.set(id, before);
      else this.ports.delete(id);
      throw err;
    }
    for (const p of mine)
      log.info(`published ${p.hostIp || '*'}:${p.hostPort}/${p.proto} → ${ip}:${p.port} for ${id.slice(0, 12)}`);
  }

  private async detached(id: string): Promise<void> {
    if (!this.ports.delete(id)) return;
    await this.write();
  }

  private write(): Promise<void> {
    return this.fw.replace('in', inSection(this.o.range, this.o.bridge, [...this.ports.values()].flat()));
  }
}
