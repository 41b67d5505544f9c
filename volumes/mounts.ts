// Docker's side of the volumes here: which of its mounts use each volume (one in use is not moved
// away, dropped or removed), and the calls its volume plugin (plugin.ts) makes of the manager.
import type { PluginVolumes } from './plugin.js';
import type { VolumeRecords } from './records.js';

/** What the plugin's calls need of the manager. */
export interface MountableVolumes {
  create(name: string, replicas: number): Promise<unknown>;
  remove(name: string): Promise<unknown>;
  /** The volume's writable copy here, moved or promoted here first if need be; its directory. */
  ensureLocal(name: string): Promise<string>;
  view(name: string): { name: string; owner: string; ownerNickname: string; replicas: number } | undefined;
  list(): { name: string }[];
}

export class Mounts {
  /** Docker's mount ids per volume mounted here. */
  private readonly ids = new Map<string, Set<string>>();

  constructor(
    private readonly records: VolumeRecords,
    private readonly volumes: MountableVolumes,
  ) {}

  has(name: string): boolean {
    return this.ids.has(name);
  }

  count(name: string): number {
    return this.ids.get(name)?.size ?? 0;
  }

  /** Makes the volume writable here, moving it here first; its directory. Docker's Mount. */
  async mount(name: string, id: string): Promise<string> {
    const path = await this.volumes.ensureLocal(name);
    const ids = this.ids.get(name) ?? new Set<string>();
    ids.add(id);
    this.ids.set(name, ids);
    return path;
  }

  unmount(name: string, id: string): void {
    const ids = this.ids.get(name);
    ids?.delete(id);
    if (ids?.size === 0) this.ids.delete(name);
  }

  /** The directory of a volume Docker has mounted here, else undefined. */
  path(name: string): string | undefined {
    return this.has(name) ? this.records.pathIfOpen(name) : undefined;
  }

  /** Docker's volume plugin calls. */
  plugin(): PluginVolumes {
    const entry = (name: string) => ({ name, ...(this.has(name) ? { mountpoint: this.path(name) } : {}) });
    return {
      create: async (name, opts) => {
        // Docker asks to create a volume it has not seen on this host; in the cluster it may exist already.
        if (this.records.state.live(name)) return;
        await this.volumes.create(name, opts.replicas === undefined ? 1 : Number(opts.replicas));
      },
      remove: async (name) => {
        if (this.records.state.live(name)) await this.volumes.remove(name);
      },
      mount: (name, id) => this.mount(name, id),
      unmount: async (name, id) => this.unmount(name, id),
      path: (name) => this.path(name),
      get: (name) => {
        const v = this.volumes.view(name);
        return v && { ...entry(v.name), status: { owner: v.ownerNickname || v.owner, replicas: v.replicas } };
      },
      list: () => this.volumes.list().map((v) => entry(v.name)),
    };
  }
}
