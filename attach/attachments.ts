import { KeyedSerial } from '../common/keyed-serial.js';
import { type Cidr, formatCidr, parseCidr } from '../common/cidr.js';
import { NotFound, UserError } from '../common/errors.js';
import { isUnicastMac } from '../common/mac.js';
import { log } from '../common/log.js';
import type { AttachRequest, AttachResult, DetachResult, ExposeResult, PsRow } from '../contract/requests.js';
import type { IpamService } from '../ipam/service.js';
import { attach, detach, existingAttachment, resolveTarget, type AttachOptions } from './veth.js';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.js';
import { ContainersUnavailable, type ContainerLookup, type ContainerRef } from './container-lookup.js';
import type { LocalMacs } from '../router/data-plane.js';
import { addBridgeAddresses, bridgeAddresses, EXPOSE_ID, removeBridgeAddresses } from './expose.js';

/**
 * What a target names: its IPAM identity, its namespace (attach.ts form; empty when not running), how to show it, its
 * names.
 */
export interface Resolved {
  ident: string;
  nsTarget: string;
  label: string;
  container?: string;
  names?: string[];
  labels?: Record<string, string>;
}
export interface AttachedEntry {
  ident: string;
  label: string;
  container?: string;
  mac: string;
  cidrs: string[];
  names: string[];
  nsTarget?: string;
  ifname?: string;
  labels?: Record<string, string>;
}

/**
 * Awaited before an attachment's interface is made, with its addresses (network policy covers it
 * before its first packet); returns what undoes it when the attach fails.
 */
export type AttachGuard = (e: AttachedEntry & { ips: string[] }) => Promise<() => void>;

/** Told of every attachment made and gone (DNS registers the names). */
export type AttachmentListener = (e: { attached: boolean; entry: AttachedEntry }) => void;

/**
 * Containers and namespaces on the overlay: a veth into their namespace, addresses from IPAM,
 * their MAC announced. Attach and detach never interleave for one identity.
 */
export class Attachments {
  /** Everything attached here, by IPAM identity (a container's full id, or the netns/pid target). */
  readonly attached = new Map<string, AttachedEntry>();
  private readonly locks = new KeyedSerial();
  private readonly listeners: AttachmentListener[] = [];
  /**
   * The bridge's overlay address (given it when it has none): a container with no other network
   * gets its default route through it, so it reaches what is outside the overlay through the host.
   */
  gateway?: () => Promise<string>;
  private readonly guards: AttachGuard[] = [];

  /** `file`: where attachments are kept, so that a router that died (and was restarted) takes them back. */
  constructor(
    private readonly mtu: number,
    readonly ipam: IpamService,
    private readonly macs: LocalMacs,
    private readonly containers: ContainerLookup,
    private readonly file?: string,
  ) {}

  /**
   * Takes back what was attached before a restart and is still in place: namespaces by name or
   * path whose interface still has the MAC it had (containers are the events watcher's to adopt).
   */
  async restore(): Promise<number> {
    let saved: AttachedEntry[] = [];
    try {
      saved =
        this.file && existsSync(this.file) ? (JSON.parse(readFileSync(this.file, 'utf8')) as AttachedEntry[]) : [];
    } catch (err) {
      log.warn(`cannot read ${this.file}: ${(err as Error).message}; attachments are not taken back`);
    }
    let n = 0;
    for (const e of saved) {
      if (e.container || !e.nsTarget?.startsWith('netns:') || this.attached.has(e.ident)) continue;
      const now = await Promise.resolve()
        .then(() => existingAttachment(resolveTarget(e.nsTarget!), e.ifname))
        .catch(() => undefined);
      if (now?.mac !== e.mac) continue;
      this.register(
        { ident: e.ident, nsTarget: e.nsTarget, label: e.label, names: e.names },
        e.mac,
        now.cidrs,
        e.ifname,
      );
      n++;
    }
    this.save();
    await this.announceBridge();
    return n;
  }

  /**
   * An exposed host is on the overlay too: its bridge's MAC is announced like a container's (fastdp peers program it).
   */
  private async announceBridge(): Promise<void> {
    const { mac, cidrs } = await bridgeAddresses();
    if (mac && cidrs.length) this.macs.add(mac);
  }

  private save(): void {
    if (!this.file) return;
    try {
      writeFileAtomic(this.file, JSON.stringify([...this.attached.values()]));
    } catch (err) {
      log.warn(`cannot save attachments: ${(err as Error).message}`);
    }
  }

  /**
   * Attaches a target with addresses written as Weave does: CIDR (claimed from IPAM when inside the
   * range), net:CIDR or net:default (allocated from that subnet); none means one from the default.
   * A netns:/pid: target is its own IPAM identity; a container is known by its full id, so a
   * restarted or moved container keeps its address.
   */
  async attach(req: AttachRequest): Promise<AttachResult> {
    const specs = req.cidrs?.length ? req.cidrs : ['net:default'];
    if (req.mac !== undefined && !isUnicastMac(req.mac))
      throw new UserError(`invalid MAC "${req.mac}": expected a unicast MAC like 02:00:00:00:00:01`);
    const t = await this.resolve(req.target);
    return this.serial(t.ident, () => this.attachResolved(t, specs, { mac: req.mac }));
  }

  /**
   * Attach with the identity and namespace already known (also used to re-attach a restarted container, and by CNI).
   */
  async attachResolved(t: Resolved, specs: string[], o: AttachOptions = {}): Promise<AttachResult> {
    const fallbackGateway = t.container && !o.gateway ? await this.gateway?.() : undefined;
    const cidrs = await this.addresses(t.ident, specs, !!t.container);
    const undo: (() => void)[] = [];
    const g = {
      ...t,
      mac: '',
      names: t.names ?? [],
      cidrs: cidrs.all.map(formatCidr),
      ips: cidrs.all.map((c) => c.ip),
    };
    for (const guard of this.guards) undo.push(await guard(g));
    const a = await attach(t.nsTarget, cidrs.all, this.mtu, { ...o, fallbackGateway }).catch(async (err) => {
      await this.releaseAll(t.ident, cidrs.taken); // nothing left half-attached
      for (const u of undo) u();
      throw err;
    });
    this.register(t, a.mac, a.cidrs, o.ifname);
    log.info(`attached ${t.label} (${a.mac}) with ${a.cidrs.join(' ')}`);
    return { target: t.label, mac: a.mac, cidrs: a.cidrs };
  }

  onChange(l: AttachmentListener): void {
    this.listeners.push(l);
  }

  /** Adds a guard every attachment awaits before its interface is made. */
  beforeAttach(g: AttachGuard): void {
    this.guards.push(g);
  }

  /** Records an attachment and tells every peer where its MAC lives. */
  register(t: Resolved, mac: string, cidrs: string[], ifname?: string): void {
    const entry = {
      ident: t.ident,
      label: t.label,
      container: t.container,
      mac,
      cidrs,
      names: t.names ?? [],
      nsTarget: t.nsTarget,
      ifname,
      ...(t.labels ? { labels: t.labels } : {}),
    };
    this.attached.set(t.ident, entry);
    this.save();
    this.macs.add(mac);
    for (const l of this.listeners) l({ attached: true, entry });
  }

  /** Forgets an attachment whose namespace is gone or emptied; returns what it was. */
  unregister(ident: string): AttachedEntry | undefined {
    const e = this.attached.get(ident);
    if (!e) return undefined;
    this.attached.delete(ident);
    this.save();
    this.macs.remove(e.mac);
    for (const l of this.listeners) l({ attached: false, entry: e });
    return e;
  }

  async detach(target: string): Promise<DetachResult> {
    const t = await this.resolve(target, { running: false });
    return this.serial(t.ident, async () => {
      const cidrs = this.attached.get(t.ident)?.cidrs ?? this.ipam.lookup(t.ident).map((a) => a.cidr);
      let mac = this.attached.get(t.ident)?.mac;
      if (t.nsTarget) mac = (await detach(t.nsTarget)).mac;
      else if (!mac && this.ipam.lookup(t.ident).length === 0) throw new UserError(`${t.label} is not attached`);
      if (!this.unregister(t.ident) && mac) this.macs.remove(mac);
      await this.ipam.release(t.ident).catch(() => {
        /* attached with addresses outside IPAM */
      });
      log.info(`detached ${t.label}${mac ? ` (${mac})` : ''}`);
      return { mac, cidrs };
    });
  }

  /** `weave ps`: the host's own exposed address first, then every attachment (optionally only the given targets). */
  async ps(targets: string[] = []): Promise<PsRow[]> {
    const wanted = targets.length
      ? await Promise.all(targets.map((x) => this.resolve(x, { running: false })))
      : undefined;
    const rows: PsRow[] = [];
    const exposed = wanted ? undefined : await bridgeAddresses();
    if (exposed?.cidrs.length) rows.push({ id: EXPOSE_ID, mac: exposed.mac, cidrs: exposed.cidrs });
    for (const e of this.attached.values()) {
      // a container is also named by attachments of another identity (its Docker network endpoints)
      if (wanted && !wanted.some((w) => w.ident === e.ident || (w.container && w.container === e.container))) continue;
      rows.push({ id: e.container ? e.container.slice(0, 12) : e.label, mac: e.mac, cidrs: e.cidrs });
    }
    return rows;
  }

  /**
   * The IPAM identity of this host's bridge address: its own (an identity is cluster-wide, and one
   * shared by every host would move the address from bridge to bridge).
   */
  private get exposeIdent(): string {
    return `${EXPOSE_ID}/${this.ipam.self}`;
  }

  /** `weave expose`: the host itself joins the overlay with an address on the bridge (IPAM identity weave:expose). */
  async expose(specs: string[] = []): Promise<ExposeResult> {
    return this.serial(EXPOSE_ID, async () => {
      const cidrs = await this.addresses(this.exposeIdent, specs.length ? specs : ['net:default']);
      await addBridgeAddresses(cidrs.all).catch(async (err) => {
        await this.releaseAll(this.exposeIdent, cidrs.taken);
        throw err;
      });
      await this.announceBridge();
      log.info(`exposed this host as ${cidrs.all.map(formatCidr).join(' ')}`);
      return { cidrs: cidrs.all.map(formatCidr) };
    });
  }

  /** `weave hide`: takes the host's overlay addresses away again. */
  async hide(): Promise<ExposeResult> {
    return this.serial(EXPOSE_ID, async () => {
      const { mac } = await bridgeAddresses();
      const removed = await removeBridgeAddresses();
      if (mac && removed.length) this.macs.remove(mac);
      await this.ipam.release(this.exposeIdent).catch(() => {
        /* none from IPAM */
      });
      log.info(`hid this host (${removed.join(' ') || 'was not exposed'})`);
      return { cidrs: removed };
    });
  }

  /**
   * What a target string names: its IPAM identity and where its namespace is. A container that is
   * not running has no namespace (nsTarget empty): it can be detached (its address released) but not attached.
   */
  async resolve(target: string, o: { running: boolean } = { running: true }): Promise<Resolved> {
    if (/^(netns|pid):/.test(target)) {
      resolveTarget(target);
      return { ident: target, nsTarget: target, label: target };
    }
    const ref = target.replace(/^docker:/, '');
    let c: ContainerRef | undefined;
    try {
      c = await this.containers.find(ref);
    } catch (err) {
      if (err instanceof ContainersUnavailable)
        throw new UserError(`unknown target "${target}": not netns:NAME, netns:/path or pid:PID, and ${err.message}`);
      throw err;
    }
    if (!c)
      throw new NotFound(`unknown target "${target}": no such container, and not netns:NAME, netns:/path or pid:PID`);
    if (!c.running && o.running) throw new UserError(`container ${ref} is not running (${c.status})`);
    return {
      ident: c.id,
      nsTarget: c.running ? `pid:${c.pid}` : '',
      label: c.id.slice(0, 12),
      container: c.id,
      names: containerNames(c),
      ...(c.labels ? { labels: c.labels } : {}),
    };
  }

  /** One attach/detach at a time per identity: the events watcher and the API may race on a container. */
  serial<T>(ident: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(ident, fn);
  }

  /** Addresses for ident from Weave-style specs, taken from IPAM where they are in its range; all or nothing. */
  private async addresses(ident: string, specs: string[], ipamOnly = false): Promise<{ all: Cidr[]; taken: string[] }> {
    const parsed = specs.map((spec) => {
      if (spec.startsWith('net:')) return { subnet: spec.slice(4) };
      try {
        return { cidr: parseCidr(spec) };
      } catch (err) {
        throw new UserError((err as Error).message);
      }
    });
    const all: Cidr[] = [];
    const taken: string[] = [];
    try {
      for (const p of parsed) {
        if ('subnet' in p) {
          const a = await this.ipam.allocate(ident, p.subnet);
          all.push(parseCidr(a.cidr));
          taken.push(a.ip);
          continue;
        }
        if (this.ipam.inRange(p.cidr.ip)) {
          await this.ipam.claim(ident, p.cidr.ip, p.cidr.prefix);
          taken.push(p.cidr.ip);
        }
        // A container's addresses are IPAM's, so that its restarts and removal keep and free them.
        else if (ipamOnly)
          throw new UserError(`${formatCidr(p.cidr)} is outside the allocation range ${this.ipam.range.text}`);
        all.push(p.cidr);
      }
    } catch (err) {
      await this.releaseAll(ident, taken);
      throw err;
    }
    return { all, taken };
  }

  /** An attachment's identity and addresses, by the target the user names (dns-add without addresses). */
  async addressesOf(target: string): Promise<{ ident: string; ips: string[] }> {
    const t = await this.resolve(target, { running: false });
    const e = this.attached.get(t.ident);
    if (!e) throw new UserError(`${t.label} is not attached`);
    return { ident: t.ident, ips: e.cidrs.map((c) => c.split('/')[0]) };
  }

  private async releaseAll(ident: string, ips: string[]): Promise<void> {
    for (const ip of ips) await this.ipam.release(ident, ip).catch(() => {});
  }
}

/** A container's DNS names: its name, and its hostname unless Docker made that up from the id. */
export function containerNames(c: { id: string; name: string; hostname: string }): string[] {
  const host = c.hostname.toLowerCase();
  return [...new Set([c.name.toLowerCase(), ...(host && !c.id.startsWith(host) ? [host] : [])])];
}
