// A Docker engine per lab host: its own data-root, exec-root and socket, running in the host's
// network namespace. It is started with `nsenter --net=...`, never `ip netns exec` (which remounts
// /sys and leaves dockerd without its cgroups). Nothing can be pulled here, so each engine gets a
// busybox image made from Debian's busybox-static with `docker import`.
//
// Each engine also has a mount namespace of its own, so that its fixed plugin directory
// (/run/docker/plugins) can be the host's `<data dir>/plugins`: it is made persistent (a file in
// the exec-root, as `ip netns` does for network namespaces) with slave propagation, the plugin
// directory is bound there, then dockerd is started in it. The lab root is a shared mount, so what
// is mounted under it later in the root namespace (volume pools, a plugin's mount points) reaches
// the engine too; what the engine mounts (its overlays) never comes back.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  copyFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { run, runOk } from '../common/exec.js';
import { DockerClient } from '../docker/client.js';

export interface LabDockerd {
  host: string;
  dataRoot: string;
  execRoot: string;
  socket: string;
  /** The engine's persistent mount namespace (a bind-mounted nsfs file under execRoot). */
  mountNs?: string;
}

/** Where dockerd looks for legacy plugins' sockets; the lab binds each host's own directory there. */
export const DOCKER_PLUGIN_DIR = '/run/docker/plugins';

export const BUSYBOX_IMAGE = 'busybox:latest';
const BUSYBOX_BIN = ['/bin/busybox', '/usr/bin/busybox'];

export const dockerHostOf = (d: { socket: string }) => `unix://${d.socket}`;

/**
 * Makes the engine's mount namespace (slave of the root one) at d.mountNs and binds pluginDir onto
 * /run/docker/plugins inside it only. Argv only: each step is its own command, all done before
 * dockerd starts, so the engine never sees the machine's plugin directory.
 */
export async function makeMountNs(d: LabDockerd & { mountNs: string }, pluginDir: string): Promise<void> {
  mkdirSync(pluginDir, { recursive: true });
  // the mount point, in the root namespace: nothing is mounted on it there
  mkdirSync(DOCKER_PLUGIN_DIR, { recursive: true });
  mkdirSync(dirname(d.mountNs), { recursive: true });
  writeFileSync(d.mountNs, '');
  await runOk(['unshare', `--mount=${d.mountNs}`, '--propagation', 'slave', 'true']);
  await runOk(['nsenter', `--mount=${d.mountNs}`, 'mount', '--bind', pluginDir, DOCKER_PLUGIN_DIR]);
}

/** nsenter execs dockerd: the PID spawned is dockerd's own. */
export function dockerdArgv(d: LabDockerd, netnsPath: string): string[] {
  return [
    'nsenter',
    ...(d.mountNs ? [`--mount=${d.mountNs}`] : []),
    `--net=${netnsPath}`,
    'dockerd',
    '--data-root',
    d.dataRoot,
    '--exec-root',
    d.execRoot,
    '-H',
    dockerHostOf(d),
    '--pidfile',
    join(d.dataRoot, 'docker.pid'),
    '--bridge=none',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-forward=false',
    '--ip-masq=false',
  ];
}

let tarball: string | undefined;

/** A tar of /bin/busybox and its applet symlinks, made once per process. */
export function busyboxTar(): string {
  if (tarball && existsSync(tarball)) return tarball;
  const bin = BUSYBOX_BIN.find((p) => existsSync(p));
  if (!bin) throw new Error('busybox is not installed (apt-get install busybox-static)');
  const dir = mkdtempSync(join(tmpdir(), 'weave-busybox-'));
  const root = join(dir, 'root');
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(bin, join(root, 'bin', 'busybox'));
  for (const applet of execFileSync(bin, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    if (applet !== 'busybox') symlinkSync('busybox', join(root, 'bin', applet));
  }
  tarball = join(dir, 'busybox.tar');
  execFileSync('tar', ['-C', root, '-cf', tarball, '.']);
  rmSync(root, { recursive: true, force: true });
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return tarball;
}

export async function importBusybox(d: LabDockerd): Promise<void> {
  await runOk(['docker', 'import', '-c', 'CMD ["sh"]', busyboxTar(), BUSYBOX_IMAGE], {
    env: { DOCKER_HOST: dockerHostOf(d) },
  });
}

/** Removes every container of this engine (their processes live in namespaces the lab does not scan). */
export async function removeContainers(d: LabDockerd): Promise<void> {
  const docker = new DockerClient(dockerHostOf(d));
  const all = await docker.list(true).catch(() => []);
  await Promise.all(all.map((c) => docker.remove(c.Id, true).catch(() => {})));
}

export function removeContainersSync(d: LabDockerd): void {
  try {
    const env = { ...process.env, DOCKER_HOST: dockerHostOf(d) };
    const ids = execFileSync('docker', ['ps', '-aq'], {
      env,
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\n')
      .filter(Boolean);
    if (ids.length) execFileSync('docker', ['rm', '-f', ...ids], { env, timeout: 10_000, stdio: 'ignore' });
  } catch {
    /* the engine is gone already */
  }
}

/** Mount points (of this process's mount namespace) at or under roots, deepest first. */
export function mountsUnder(roots: string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter(Boolean)
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
  return points.filter((p) => roots.some((r) => p === r || p.startsWith(`${r}/`))).sort((a, b) => b.length - a.length);
}

interface Loop {
  dev: string;
  backing: string;
  file: string;
}
/** Attached loop devices: the device, its backing file's identity (dev:ino) and path. */
function loops(): Loop[] {
  let out = '';
  try {
    out = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-MAJ:MIN,BACK-INO,BACK-FILE'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
  } catch {
    /* none, or no losetup */
  }
  return out
    .split('\n')
    .map((l) => l.trim().match(/^(\/dev\/loop\d+)\s+(\S+)\s+(\d+)\s+(.+?)(?: \(deleted\))?$/))
    .filter((m) => m !== null)
    .map((m) => ({ dev: m[1], backing: `${m[2]} ${m[3]}`, file: m[4] }));
}

/**
 * Once nothing of the lab runs: lazily unmounts everything at or under root, deepest first (stacked
 * mounts too; a `mount -o loop` pool's device goes with it), then detaches loop devices still
 * backed by a file under root (found before unmounting: afterwards the kernel names the file
 * relative to the detached mount; detached only if the device still has the same backing file, so
 * a device freed meanwhile and reused by someone else is left alone). Synchronous, for the exit
 * path too. Returns what stays mounted: then the root must not be removed (it would delete through
 * the mount).
 */
export function releaseMounts(root: string): string[] {
  const quiet = { stdio: 'ignore' as const, timeout: 10_000 };
  const ours = loops().filter((l) => l.file.startsWith(`${root}/`));
  for (let pass = 0; pass < 8; pass++) {
    const points = mountsUnder([root]);
    if (points.length === 0) break;
    for (const m of points) {
      try {
        execFileSync('umount', ['-l', m], quiet);
      } catch {
        /* gone, or not a mount any more */
      }
    }
  }
  const now = loops();
  for (const l of ours) {
    if (!now.some((n) => n.dev === l.dev && n.backing === l.backing)) continue;
    try {
      execFileSync('losetup', ['-d', l.dev], quiet);
    } catch {
      /* detached meanwhile */
    }
  }
  return mountsUnder([root]);
}

/** Best effort, once dockerd is dead: unmount what it left and remove its exec-root. */
export async function cleanupDockerd(d: LabDockerd): Promise<void> {
  for (const m of mountsUnder([d.dataRoot, d.execRoot])) await run(['umount', '-l', m]);
  rmSync(d.execRoot, { recursive: true, force: true });
}

export function cleanupDockerdSync(d: LabDockerd): void {
  for (const m of mountsUnder([d.dataRoot, d.execRoot])) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
  rmSync(d.execRoot, { recursive: true, force: true });
}
