import { log } from '../common/log.js';
import type { DockerEvent } from './engine.js';
import { REPLICA_LABEL, type ContainerEngine } from './engine.js';

/** What the watcher needs from the router; the composition root provides it. */
export interface ContainerHost {
  /** Runs fn after every earlier call for the same id (attach/detach never interleave per container). */
  serial<T>(id: string, fn: () => Promise<T>): Promise<T>;
  isAttached(id: string): boolean;
  /** Takes back a container whose ethwe is still in place (after a router restart); false if it has none. */
  adopt(id: string, pid: number): Promise<boolean>;
  /** Attaches a (re)started container with the addresses and MAC it had. */
  reattach(id: string, pid: number, cidrs: string[], mac?: string): Promise<void>;
  /** Forgets a container whose namespace is gone (its MAC is withdrawn); returns what it had. */
  gone(id: string): { cidrs: string[]; mac: string } | undefined;
  /** The addresses IPAM holds for id (CIDR strings). */
  lookup(id: string): string[];
  release(id: string): Promise<void>;
  /** IPAM identities with addresses on this peer. */
  allocated(): string[];
}

const CONTAINER_ID = /^[0-9a-f]{64}$/;
const RETRY_MS = 2000;

interface Dying {
  timer: NodeJS.Timeout;
  cidrs: string[];
  mac?: string;
}

/**
 * Follows the Docker engine's container events: a container that dies is detached at once (its
 * namespace is gone) and its address released after a grace period, so a restart inside it keeps
 * the address (and the MAC); a removed one releases at once. On (re)connecting it syncs with what
 * is there: running containers that still have ethwe are taken back, stopped ones start their grace.
 */
export class ContainerWatcher {
  private readonly dying = new Map<string, Dying>();
  private stream?: { close(): void };
  private retry?: NodeJS.Timeout;
  private stopped = false;
  private quiet = false;

  constructor(
    private readonly docker: ContainerEngine,
    private readonly host: ContainerHost,
    private readonly graceMs: number,
    private readonly retryMs = RETRY_MS,
  ) {}

  /** Resolves once the first sync is done, or the engine is found absent (then it keeps trying). */
  async start(): Promise<void> {
    await this.connect();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    this.stream?.close();
    for (const d of this.dying.values()) clearTimeout(d.timer);
  }

  private later(): void {
    if (!this.stopped) this.retry = setTimeout(() => void this.connect(), this.retryMs);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.docker.ping();
    } catch (err) {
      if (!this.quiet) log.info(`containers are not watched: ${(err as Error).message}`);
      this.quiet = true;
      return this.later();
    }
    if (this.quiet) log.info(`watching containers at ${this.docker.host}`);
    this.quiet = false;
    // Subscribe before the sync so that nothing happening during it is missed.
    this.stream = this.docker.events(
      { type: ['container'], event: ['start', 'die', 'destroy'] },
      (e) => this.onEvent(e),
      (err) => {
        this.stream = undefined;
        if (err) {
          log.warn(`container events: ${err.message}`);
          this.later();
        }
      },
    );
    await this.sync().catch((err: Error) => log.warn(`container sync: ${err.message}`));
  }

  private async sync(): Promise<void> {
    const all = await this.docker.list(true);
    const state = new Map(all.map((c) => [c.Id, c.State]));
    for (const c of all) {
      if (c.State !== 'running' || c.Labels?.[REPLICA_LABEL] || this.host.isAttached(c.Id)) continue;
      void this.host
        .serial(c.Id, async () => {
          const info = await this.docker.inspect(c.Id);
          if (!info.State.Running || this.host.isAttached(c.Id)) return;
          if (await this.host.adopt(c.Id, info.State.Pid)) return;
          const cidrs = this.host.lookup(c.Id); // restarted while the router was down
          if (cidrs.length) await this.host.reattach(c.Id, info.State.Pid, cidrs);
        })
        .catch((err: Error) => log.warn(`container ${c.Id.slice(0, 12)}: ${err.message}`));
    }
    // Addresses of containers that stopped while the router was down. Ones of containers this engine
    // does not know are left alone: a claim made through us may be for a container on another host.
    for (const id of this.host.allocated()) {
      const s = state.get(id);
      if (CONTAINER_ID.test(id) && s !== undefined && s !== 'running' && !this.dying.has(id))
        this.dieLater(id, this.host.lookup(id));
    }
  }

  private onEvent(e: DockerEvent): void {
    const id = e.Actor?.ID ?? e.id;
    if (e.Type !== 'container' || !id) return;
    const task =
      e.Action === 'die'
        ? () => this.died(id)
        : e.Action === 'start'
          ? () => this.started(id)
          : e.Action === 'destroy'
            ? () => this.destroyed(id)
            : undefined;
    if (task)
      this.host
        .serial(id, task)
        .catch((err: Error) => log.warn(`container ${id.slice(0, 12)} ${e.Action}: ${err.message}`));
  }

  private async died(id: string): Promise<void> {
    const had = this.host.gone(id);
    const cidrs = had?.cidrs ?? this.host.lookup(id);
    if (cidrs.length === 0) return; // never attached by weave
    log.info(`container ${id.slice(0, 12)} died: its addresses are kept for ${this.graceMs / 1000}s`);
    this.dieLater(id, cidrs, had?.mac);
  }

  private dieLater(id: string, cidrs: string[], mac?: string): void {
    clearTimeout(this.dying.get(id)?.timer);
    const entry: Dying = {
      cidrs,
      mac,
      timer: setTimeout(() => {
        void this.host
          .serial(id, async () => {
            if (this.dying.get(id) !== entry) return;
            this.dying.delete(id);
            await this.release(id);
          })
          .catch((err: Error) => log.warn(`container ${id.slice(0, 12)}: ${err.message}`));
      }, this.graceMs),
    };
    entry.timer.unref();
    this.dying.set(id, entry);
  }

  private async started(id: string): Promise<void> {
    const d = this.dying.get(id);
    if (!d) return; // a new container: `weave run` or `weave attach` attaches it
    clearTimeout(d.timer);
    this.dying.delete(id);
    const info = await this.docker.inspect(id);
    if (!info.State.Running) return this.dieLater(id, d.cidrs, d.mac);
    await this.host.reattach(id, info.State.Pid, d.cidrs, d.mac);
  }

  private async destroyed(id: string): Promise<void> {
    clearTimeout(this.dying.get(id)?.timer);
    this.dying.delete(id);
    this.host.gone(id);
    if (this.host.lookup(id).length) await this.release(id);
  }

  private async release(id: string): Promise<void> {
    const cidrs = this.host.lookup(id);
    await this.host.release(id);
    log.info(`container ${id.slice(0, 12)} released ${cidrs.join(' ')}`);
  }
}
