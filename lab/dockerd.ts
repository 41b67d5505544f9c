// A Docker engine per lab host: its own data-root, exec-root and socket, running in the host's
// network namespace. It is started with `nsenter --net=...`, never `ip netns exec` (which remounts
// /sys and leaves dockerd without its cgroups). Nothing can be pulled here, so each engine gets a
// busybox image made from Debian's busybox-static with `docker import`.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runOk } from '../common/exec.js';
import { DockerClient } from '../docker/client.js';

export interface LabDockerd { host: string; dataRoot: string; execRoot: string; socket: string }

export const BUSYBOX_IMAGE = 'busybox:latest';
const BUSYBOX_BIN = ['/bin/busybox', '/usr/bin/busybox'];

export const dockerHostOf = (d: { socket: string }) => `unix://${d.socket}`;

export function dockerdArgv(d: LabDockerd, netnsPath: string): string[] {
  return ['nsenter', `--net=${netnsPath}`, 'dockerd', '--data-root', d.dataRoot, '--exec-root', d.execRoot,
    '-H', dockerHostOf(d), '--pidfile', join(d.dataRoot, 'docker.pid'), '--bridge=none', '--iptables=false',
    '--ip6tables=false', '--ip-forward=false', '--ip-masq=false'];
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
  await runOk(['docker', 'import', '-c', 'CMD ["sh"]', busyboxTar(), BUSYBOX_IMAGE], { env: { DOCKER_HOST: dockerHostOf(d) } });
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
    const ids = execFileSync('docker', ['ps', '-aq'], { env, encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter(Boolean);
    if (ids.length) execFileSync('docker', ['rm', '-f', ...ids], { env, timeout: 10_000, stdio: 'ignore' });
  } catch { /* the engine is gone already */ }
}

/** Mount points dockerd left under its roots, deepest first. */
function mountsUnder(roots: string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter(Boolean)
    .map((p) => p.replace(/\\040/g, ' '));
  return points.filter((p) => roots.some((r) => p === r || p.startsWith(`${r}/`))).sort((a, b) => b.length - a.length);
}

/** Best effort, once dockerd is dead: unmount what it left and remove its exec-root. */
export async function cleanupDockerd(d: LabDockerd): Promise<void> {
  for (const m of mountsUnder([d.dataRoot, d.execRoot])) await run(['umount', '-l', m]);
  rmSync(d.execRoot, { recursive: true, force: true });
}

export function cleanupDockerdSync(d: LabDockerd): void {
  for (const m of mountsUnder([d.dataRoot, d.execRoot])) { try { execFileSync('umount', ['-l', m], { stdio: 'ignore' }); } catch { /* gone */ } }
  rmSync(d.execRoot, { recursive: true, force: true });
}
