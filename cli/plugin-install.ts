// `weave plugin install`: the managed plugin Swarm mode needs, built here from this checkout (its
// rootfs is the static relay and nothing else: nothing is pulled), created with `docker plugin
// create` and enabled. The router must be running first: dockerd registers the plugin's IPAM
// driver only when the plugin is enabled, and the relay passes every call to the router.
import { existsSync, mkdirSync, mkdtempSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CHECKOUT } from '../common/checkout.js';
import { run, runOk } from '../common/exec.js';
import { MANAGED_PLUGIN, managedPluginConfig } from '../contract/managed-plugin.js';
import { networkPluginOptions } from '../docker/options.js';

export const RELAY = join(CHECKOUT, 'native', 'relay', 'build', 'relay');

const routerSocket = () =>
  process.env[networkPluginOptions.managedPluginSocket.env ?? ''] || networkPluginOptions.managedPluginSocket.default;

const docker = (args: string[]) => runOk(['docker', ...args], { timeoutMs: 120_000 });

/** Lines to print. force: a plugin of that name is replaced; without it, one there is only enabled. */
export async function installPlugin(force: boolean): Promise<string[]> {
  if (!existsSync(RELAY)) throw new Error(`the plugin's relay is not built: ${RELAY} is missing (make build)`);
  const inspected = await run(['docker', 'plugin', 'inspect', '--format', '{{.Enabled}}', MANAGED_PLUGIN]);
  const there = inspected.code === 0;
  if (there && !force) {
    if (inspected.stdout.trim() !== 'true') await docker(['plugin', 'enable', MANAGED_PLUGIN]);
    return [`${MANAGED_PLUGIN} is installed and enabled (weave plugin install --force rebuilds it)`];
  }
  if (there) await docker(['plugin', 'rm', '--force', MANAGED_PLUGIN]);
  const socket = routerSocket();
  mkdirSync(dirname(socket), { recursive: true }); // the plugin's bind mount needs its source
  const dir = mkdtempSync(join(tmpdir(), 'weave-plugin-'));
  try {
    const rootfs = join(dir, 'rootfs');
    for (const d of ['run/docker/plugins', 'run/weave']) mkdirSync(join(rootfs, d), { recursive: true });
    copyFileSync(RELAY, join(rootfs, 'relay'));
    writeFileSync(join(dir, 'config.json'), `${JSON.stringify(managedPluginConfig(socket), null, 2)}\n`);
    await docker(['plugin', 'create', MANAGED_PLUGIN, dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await docker(['plugin', 'enable', MANAGED_PLUGIN]);
  return [`installed and enabled ${MANAGED_PLUGIN} (relaying to ${socket})`];
}
