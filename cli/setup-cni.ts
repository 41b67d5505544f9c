import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CHECKOUT } from '../common/checkout.js';
import { entryPoint } from '../contract/files.js';

export const CNI_DEFAULTS = { binDir: '/opt/cni/bin', confDir: '/etc/cni/net.d' };
const CONFLIST = '10-weave.conflist';
const PLUGIN = 'weave-net';
/** Debian's containernetworking-plugins put portmap here; runtimes look in the bin dir. */
const DEBIAN_PORTMAP = '/usr/lib/cni/portmap';

const pluginScript = () => entryPoint('cni');
/** The native plugin (npm run build:cni): the same relay to the router as the script, without Node's start-up. */
export const NATIVE_PLUGIN = join(CHECKOUT, 'native', 'cni', 'build', PLUGIN);

/**
 * `weave setup-cni`: the plugin in the CNI bin dir (a copy of the native one; where that is not
 * built, a script running this checkout's build with this Node) and a conflist naming it, portmap
 * chained after it where portmap is there.
 */
export function setupCni(o: { binDir: string; confDir: string }): string[] {
  const native = existsSync(NATIVE_PLUGIN);
  if (!native && !existsSync(pluginScript()))
    throw new Error(`the CNI plugin is not built: ${NATIVE_PLUGIN} and ${pluginScript()} are missing (make build)`);
  mkdirSync(o.binDir, { recursive: true });
  mkdirSync(o.confDir, { recursive: true });
  const bin = join(o.binDir, PLUGIN);
  // Beside it, then renamed over it: a runtime running the old one meanwhile is not disturbed (nor is this refused).
  const next = `${bin}.new-${process.pid}`;
  if (native) copyFileSync(NATIVE_PLUGIN, next);
  else writeFileSync(next, `#!/bin/sh\nexec ${process.execPath} ${pluginScript()} "$@"\n`, { mode: 0o755 });
  renameSync(next, bin);
  const portmap = join(o.binDir, 'portmap');
  if (!existsSync(portmap) && existsSync(DEBIAN_PORTMAP)) symlinkSync(DEBIAN_PORTMAP, portmap);
  const plugins: object[] = [{ type: PLUGIN }];
  if (existsSync(portmap)) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  const conf = join(o.confDir, CONFLIST);
  // 1.0.0: what the runtimes of the day (containerd 1.6, libcni 1.1) accept; the plugin speaks 1.1.0 too.
  writeFileSync(conf, `${JSON.stringify({ cniVersion: '1.0.0', name: 'weave', plugins }, null, 2)}\n`);
  return [bin, conf];
}

/** `weave setup-cni --remove`: takes away what setup-cni put there, nothing else. */
export function removeCni(o: { binDir: string; confDir: string }): string[] {
  const removed: string[] = [];
  for (const f of [join(o.binDir, PLUGIN), join(o.confDir, CONFLIST)])
    if (existsSync(f)) {
      rmSync(f);
      removed.push(f);
    }
  const portmap = join(o.binDir, 'portmap');
  try {
    if (lstatSync(portmap).isSymbolicLink() && readlinkSync(portmap) === DEBIAN_PORTMAP) {
      rmSync(portmap);
      removed.push(portmap);
    }
  } catch {
    /* none */
  }
  return removed;
}
