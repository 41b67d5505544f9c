// The managed plugin as a volume driver. dockerd reads a managed plugin's mountpoint as a path inside
// the plugin and, under its propagatedMount, finds it on the host at <plugin dir>/propagated-mount.
// The plugin (a relay) mounts nothing: the router binds each volume it mounted here onto that
// directory, and takes the bind away when Docker's last mount of it here ends.
import { join } from 'node:path';
import { runOk, run } from '../../common/exec.js';
import { MANAGED_PLUGIN, PROPAGATED_MOUNT } from '../../contract/managed-plugin.js';
import type { PluginVolumes } from '../../volumes/plugin.js';
import type { DockerClient } from '../client.js';

/** Where the managed plugin's propagated mount is on this host, from the engine's own answers. */
export async function propagatedMountDir(docker: DockerClient): Promise<string> {
  const info = await docker.request<{ DockerRootDir: string }>('GET', '/info');
  const plugins = await docker.request<{ Id: string; Name: string }[]>('GET', '/plugins');
  const p = plugins.find((x) => x.Name === MANAGED_PLUGIN);
  if (!p) throw new Error(`the plugin ${MANAGED_PLUGIN} is not installed here (weave plugin install)`);
  return join(info.DockerRootDir, 'plugins', p.Id, 'propagated-mount');
}

/**
 * volumes, with their mountpoints as the plugin's paths. where: the propagated mount's directory;
 * inMountNs: the prefix that runs a command in the mount namespace Docker sees (nsenter), or [].
 */
export function managedVolumes(
  volumes: PluginVolumes,
  where: () => Promise<string>,
  inMountNs: string[],
): PluginVolumes {
  const inPlugin = (name: string) => `${PROPAGATED_MOUNT}/${name}`;
  const bound = async (target: string) => (await run([...inMountNs, 'mountpoint', '-q', target])).code === 0;
  return {
    create: (name, opts) => volumes.create(name, opts),
    remove: (name) => volumes.remove(name),
    mount: async (name, id) => {
      const dir = await volumes.mount(name, id);
      const target = join(await where(), name);
      if (!(await bound(target))) {
        await runOk([...inMountNs, 'mkdir', '-p', target]);
        await runOk([...inMountNs, 'mount', '--bind', dir, target]);
      }
      return inPlugin(name);
    },
    unmount: async (name, id) => {
      await volumes.unmount(name, id);
      if (volumes.path(name) !== undefined) return; // another of Docker's mounts here still uses it
      const target = join(await where(), name);
      if (await bound(target)) await runOk([...inMountNs, 'umount', target]);
    },
    path: (name) => (volumes.path(name) === undefined ? undefined : inPlugin(name)),
    get: (name) => {
      const v = volumes.get(name);
      return v && { ...v, ...(v.mountpoint ? { mountpoint: inPlugin(name) } : {}) };
    },
    list: () => volumes.list().map((v) => ({ ...v, ...(v.mountpoint ? { mountpoint: inPlugin(v.name) } : {}) })),
  };
}
