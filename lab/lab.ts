// A multi-host cluster made of network namespaces on this machine, for tests, benchmarks and demos.
//
// Safety: nothing is ever created in the root network namespace. Switch bridges live in their own
// namespaces and veth pairs are created inside a switch namespace with the peer placed directly in
// the host namespace. The underlay only uses 198.18.0.0/15 (RFC 2544 benchmarking range).
import { CHECKOUT } from '../common/checkout.js';
import { spawn as spawnChild, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { run, runOk, type ExecOptions, type ExecResult } from '../common/exec.js';
import { offExit, onExit } from './exit-cleanup.js';
import {
  addNs,
  assertLabNs,
  delNs,
  delNsSync,
  ipn,
  listNs,
  listNsSync,
  nsPids,
  nsPidsSync,
  pidNs,
  pidNsSync,
  signal,
} from './netns.js';
import {
  LAB_BASE,
  checkId,
  labRoot,
  listIds,
  nsPrefix,
  readState,
  updateState,
  writeState,
  type LabContainer,
  type LabHost,
  type LabState,
} from './state.js';
import { hostAddrs, plan, validateSpec, type LabSpec, type Topology } from './topology.js';
import {
  cleanupDockerd,
  cleanupDockerdSync,
  dockerdArgv,
  importBusybox,
  makeMountNs,
  releaseMounts,
  removeContainers,
  removeContainersSync,
  type LabDockerd,
} from './dockerd.js';
import { DockerClient } from '../docker/client.js';
import { closeSync, openSync } from 'node:fs';

export type { ExecOptions, ExecResult, LabContainer, LabHost, LabSpec, Topology };
export { LAB_BASE };

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  stdio?: StdioOptions;
}
export interface CreateOptions {
  /** Short unique id (a-z, 0-9, at most 12); default: 4 random hex digits. */
  id?: string;
  /** Leave the lab in place when this process exits (used by `lab up`). Default false. */
  keep?: boolean;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;
const TERM_GRACE_MS = 3000;
const KILL_GRACE_MS = 3000;

const alive = (pid: number) => {
  try {
    return pid > 0 && (process.kill(pid, 0), true);
  } catch {
    return false;
  }
};

export class Lab {
  readonly root: string;
  /** Our own spawned children: killed through their handle, which cannot hit a reused PID. */
  private readonly children = new Set<ChildProcess>();
  private downPromise?: Promise<void>;
  private readonly exitCleanup = (): void => this.downSync();

  private constructor(
    readonly id: string,
    private state: LabState,
  ) {
    this.root = labRoot(id);
  }

  get hosts(): LabHost[] {
    return this.state.hosts;
  }
  get topology(): Topology {
    return this.state.spec.topology;
  }
  get containers(): LabContainer[] {
    return this.refresh().containers;
  }

  static async create(spec: LabSpec, opts: CreateOptions = {}): Promise<Lab> {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (it creates network namespaces)');
    const full = validateSpec(spec);
    const id = opts.id ?? randomBytes(2).toString('hex');
    checkId(id);
    const prefix = nsPrefix(id);
    if (readState(id) || (await listNs()).some((n) => n.startsWith(prefix)))
      throw new Error(`lab "${id}" already exists (tear it down with: lab down --id ${id})`);
    mkdirSync(LAB_BASE, { recursive: true });
    try {
      mkdirSync(labRoot(id)); // not recursive: fails if a concurrent create won the race
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new Error(`lab "${id}" already exists (tear it down with: lab down --id ${id})`);
      throw e;
    }

    const p = plan(full);
    const hostNs = (h: string): string => `${prefix}${h}`;
    const swNs = (k: number): string => `${prefix}sw${k}`;
    const hosts: LabHost[] = p.hosts.map((h) => ({
      name: h,
      netns: hostNs(h),
      addrs: hostAddrs(p, h),
      dataDir: join(labRoot(id), h),
    }));
    // Record every namespace before creating it, so a crash half-way is still cleaned up.
    const state: LabState = {
      version: 1,
      id,
      spec: full,
      createdAt: new Date().toISOString(),
      creatorPid: process.pid,
      checkout: CHECKOUT,
      hosts,
      containers: [],
      namespaces: [...p.segments.map((s) => swNs(s.index)), ...hosts.map((h) => h.netns)],
      pids: [],
    };
    writeState(state);
    const lab = new Lab(id, state);
    if (!opts.keep) onExit(lab.exitCleanup);

    try {
      // The root is a shared mount point (as `ip netns` makes /run/netns), so that what is mounted
      // under it later (volume pools, plugin mount points) propagates into each dockerd's mount
      // namespace, a slave of this one. Teardown unmounts it and everything below it.
      await runOk(['mount', '--bind', lab.root, lab.root]);
      await runOk(['mount', '--make-shared', lab.root]);
      for (const ns of state.namespaces) await addNs(ns);
      for (const h of hosts) {
        mkdirSync(join(h.dataDir, 'plugins'), { recursive: true }); // the host's own Docker plugin directory
        // New namespaces default to no forwarding; set it explicitly because the line topology
        // relies on it (h1 must not reach h3 through h2).
        await runOk(['ip', 'netns', 'exec', h.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=0']);
      }
      for (const seg of p.segments) {
        const sw = swNs(seg.index);
        await ipn(sw, 'link', 'add', 'br0', 'type', 'bridge'); // STP off (default): ports forward at once
        for (const port of seg.ports) {
          const hns = hostNs(port.host);
          await ipn(
            sw,
            'link',
            'add',
            port.swPort,
            'mtu',
            '1500',
            'type',
            'veth',
            'peer',
            'name',
            port.ifname,
            'mtu',
            '1500',
            'netns',
            hns,
          );
          await ipn(sw, 'link', 'set', port.swPort, 'master', 'br0', 'up');
          await ipn(hns, 'addr', 'add', `${port.addr}/${port.prefixLen}`, 'dev', port.ifname);
          await ipn(hns, 'link', 'set', port.ifname, 'up');
        }
        await ipn(sw, 'link', 'set', 'br0', 'mtu', '1500', 'up');
      }
      // Return a lab whose links are really up, so callers never need to sleep.
      for (const seg of p.segments) {
        for (const port of seg.ports) {
          await waitFor(
            `${port.host} ${port.ifname} up`,
            async () => {
              const r = await run(['ip', '-n', hostNs(port.host), '-o', 'link', 'show', 'dev', port.ifname]);
              return r.stdout.includes('state UP');
            },
            5000,
            20,
          );
        }
      }
    } catch (e) {
      await lab.down().catch(() => {});
      throw e;
    }
    return lab;
  }

  /** Re-open a lab recorded by this or another process. down() on it tears everything down. */
  static async load(id: string): Promise<Lab> {
    checkId(id);
    const state = readState(id);
    if (!state) throw new Error(`no such lab "${id}"`);
    return new Lab(id, state);
  }

  /**
   * Tears down lab `id` even if its state file is gone (namespaces are found by name prefix).
   * Returns false if there was nothing to tear down.
   */
  static async destroy(id: string): Promise<boolean> {
    checkId(id);
    const recorded = readState(id);
    if (recorded) {
      await new Lab(id, recorded).down();
      return true;
    }
    const strays = (await listNs()).filter((n) => n.startsWith(nsPrefix(id)));
    if (strays.length === 0) return false;
    const state: LabState = {
      version: 1,
      id,
      spec: { hosts: 1, topology: 'flat' },
      createdAt: '',
      creatorPid: 0,
      hosts: [],
      containers: [],
      namespaces: strays,
      pids: [],
    };
    await new Lab(id, state).down();
    return true;
  }

  static async list(): Promise<string[]> {
    return listIds();
  }

  /**
   * Labs this checkout made whose creator is gone (kept with `lab up`, or left by a crash): never a run in progress.
   */
  static ours(): string[] {
    return listIds().filter((id) => Lab.notOurs(id) === undefined);
  }

  /** Why `lab down` without --id leaves lab `id` alone, in words; undefined when it is this checkout's to remove. */
  static notOurs(id: string): string | undefined {
    const s = readState(id);
    if (!s?.checkout) return 'made by an older version, which did not record its checkout';
    if (s.checkout !== CHECKOUT) return `made by another checkout, ${s.checkout}`;
    if (alive(s.creatorPid)) return `in use by a run in progress, pid ${s.creatorPid}`;
    return undefined;
  }

  host(name: string): LabHost {
    const h = this.state.hosts.find((x) => x.name === name);
    if (!h)
      throw new Error(
        `unknown host "${name}" in lab "${this.id}" (hosts: ${this.state.hosts.map((x) => x.name).join(', ')})`,
      );
    return h;
  }

  /** Runs argv inside the host's namespace. Never throws on a non-zero exit. */
  exec(host: string, argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    return this.execIn(this.host(host).netns, argv, opts);
  }

  /** Like exec() but throws (with argv and stderr) on a non-zero exit; returns stdout. */
  async execOk(host: string, argv: string[], opts?: ExecOptions): Promise<string> {
    return this.execOkIn(this.host(host).netns, argv, opts);
  }

  /** Runs argv inside any namespace of this lab (a host or a container). */
  execIn(netns: string, argv: string[], opts?: ExecOptions): Promise<ExecResult> {
    this.checkOwnNs(netns);
    if (argv.length === 0) throw new Error('exec: empty command');
    return run(['ip', 'netns', 'exec', netns, ...argv], opts);
  }

  async execOkIn(netns: string, argv: string[], opts?: ExecOptions): Promise<string> {
    const r = await this.execIn(netns, argv, opts);
    if (r.code !== 0)
      throw new Error(
        `command failed in ${netns} (exit ${r.code}): ${argv.join(' ')}${r.stderr.trim() ? `\n${r.stderr.trim()}` : ''}`,
      );
    return r.stdout;
  }

  /**
   * Starts a long-running process in the host's namespace. Default stdio is
   * ['ignore', 'pipe', 'pipe']: read or ignore the pipes, a full pipe blocks the child.
   * It is killed (by PID) at down() and recorded in state.json meanwhile.
   */
  spawn(host: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    return this.spawnIn(this.host(host).netns, argv, opts);
  }

  spawnIn(netns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    this.checkOwnNs(netns);
    if (argv.length === 0) throw new Error('spawn: empty command');
    if (this.downPromise) throw new Error(`lab "${this.id}" is down`);
    // `ip netns exec` execs the command in place, so child.pid is the command's own PID.
    const child = spawnChild('ip', ['netns', 'exec', netns, ...argv], {
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
    });
    this.track(child);
    return child;
  }

  /**
   * Starts a Docker engine in the host's namespace with its own data-root, exec-root and socket
   * (unix://<host data dir>/docker.sock, which lab/weave.ts hands to weave as DOCKER_HOST), and
   * imports the busybox test image. Returns once the engine answers. The engine runs in a mount
   * namespace of its own where /run/docker/plugins is <host data dir>/plugins: it finds the
   * volume plugin of this host's router only.
   */
  async startDockerd(host: string): Promise<LabDockerd> {
    const h = this.host(host);
    if (this.downPromise) throw new Error(`lab "${this.id}" is down`);
    if (this.refresh().dockerds?.some((d) => d.host === host)) throw new Error(`${host} already runs dockerd`);
    // exec-root holds containerd's socket: keep it short (unix socket paths are limited to 108 bytes).
    const execRoot = `/run/${h.netns}`;
    const d = {
      host,
      dataRoot: join(h.dataDir, 'docker'),
      execRoot,
      socket: join(h.dataDir, 'docker.sock'),
      mountNs: join(execRoot, 'mnt.ns'),
    };
    mkdirSync(d.dataRoot, { recursive: true });
    this.update((s) => {
      (s.dockerds ??= []).push(d);
    }); // recorded first: cleanupDockerd unmounts the namespace file too
    await makeMountNs(d, join(h.dataDir, 'plugins'));
    const argv = dockerdArgv(d, `/var/run/netns/${h.netns}`);
    const logFd = openSync(join(h.dataDir, 'dockerd.log'), 'a');
    // nsenter execs dockerd: same PID
    const child = spawnChild(argv[0], argv.slice(1), { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    this.track(child);
    child.unref(); // a kept lab (`lab up`) must not keep its creator alive; down() finds dockerd by PID and namespace
    let exited = false;
    child.once('exit', () => (exited = true));
    const docker = new DockerClient(`unix://${d.socket}`);
    await waitFor(
      `dockerd on ${host} (see ${join(h.dataDir, 'dockerd.log')})`,
      async () => {
        if (exited) throw new Error('dockerd exited');
        return docker.ping().then(() => true);
      },
      30_000,
      100,
    );
    await importBusybox(d);
    return d;
  }

  /** The engines started by startDockerd(). */
  get dockerds(): LabDockerd[] {
    return this.refresh().dockerds ?? [];
  }

  private track(child: ChildProcess): void {
    const pid = child.pid;
    if (pid === undefined) return;
    this.children.add(child);
    this.update((s) => {
      if (!s.pids.includes(pid)) s.pids.push(pid);
    });
    child.once('exit', () => {
      this.children.delete(child);
      if (!this.downPromise)
        this.update((s) => {
          s.pids = s.pids.filter((p) => p !== pid);
        });
    });
  }

  /** A plain namespace `wl<id>-<host>-<name>` with lo up, not attached to anything. */
  async addContainer(host: string, name: string): Promise<LabContainer> {
    this.host(host);
    if (!NAME_RE.test(name)) throw new Error(`invalid container name "${name}" (letters, digits, _ . -; at most 32)`);
    if (this.downPromise) throw new Error(`lab "${this.id}" is down`);
    const c: LabContainer = { name, host, netns: `${nsPrefix(this.id)}${host}-${name}` };
    const s = this.refresh();
    if (s.containers.some((x) => x.netns === c.netns) || (await listNs()).includes(c.netns))
      throw new Error(`container "${name}" already exists on ${host} in lab "${this.id}"`);
    this.update((st) => {
      st.containers.push(c);
      st.namespaces.push(c.netns);
    });
    try {
      await addNs(c.netns);
    } catch (e) {
      await delNs(c.netns).catch(() => {});
      this.update((st) => {
        st.containers = st.containers.filter((x) => x.netns !== c.netns);
        st.namespaces = st.namespaces.filter((n) => n !== c.netns);
      });
      throw e;
    }
    return c;
  }

  /** Idempotent. Kills our processes (by PID), deletes every namespace of the lab, removes root. */
  down(): Promise<void> {
    this.downPromise ??= this.teardown();
    return this.downPromise;
  }

  private async teardown(): Promise<void> {
    offExit(this.exitCleanup);
    const namespaces = await this.ourNamespaces();
    const recorded = this.refresh().pids;
    const dockerds = this.refresh().dockerds ?? [];
    // Containers live in namespaces of their own that the scan below never sees: remove them first.
    await Promise.all(dockerds.map((d) => removeContainers(d)));

    for (const c of this.children) c.kill('SIGTERM');
    const targets = async (): Promise<number[]> => {
      const pids = new Set<number>();
      for (const ns of namespaces) for (const p of await nsPids(ns)) pids.add(p);
      // Recorded PIDs from another process: only if still inside one of our namespaces.
      for (const p of recorded) if ((await pidNs(p)).some((n) => namespaces.includes(n))) pids.add(p);
      return [...pids];
    };
    const gone = async (): Promise<boolean> => (await targets()).length === 0;

    for (const p of await targets()) signal(p, 'SIGTERM');
    const termed = await waitFor('lab processes to exit', gone, TERM_GRACE_MS, 50).then(
      () => true,
      () => false,
    );
    if (!termed) {
      for (const c of this.children) c.kill('SIGKILL');
      for (const p of await targets()) signal(p, 'SIGKILL');
      await waitFor('lab processes to die after SIGKILL', gone, KILL_GRACE_MS, 50).catch(() => {});
    }

    const errors: string[] = [];
    // before rm: no deleting through mounts
    for (const d of dockerds) await cleanupDockerd(d).catch((e: Error) => errors.push(e.message));
    for (const ns of namespaces) await delNs(ns).catch((e: Error) => errors.push(e.message));
    // Pools routers left, then the root's own bind; never remove through a mount that stayed.
    const left = releaseMounts(this.root);
    if (left.length) errors.push(`still mounted, so ${this.root} was kept: ${left.join(', ')}`);
    else rmSync(this.root, { recursive: true, force: true });
    if (errors.length) throw new Error(`lab "${this.id}" teardown incomplete:\n${errors.join('\n')}`);
  }

  /** Synchronous last-resort teardown for process exit: SIGKILL, no waiting. */
  private downSync(): void {
    if (this.downPromise) return;
    this.downPromise = Promise.resolve();
    const prefix = nsPrefix(this.id);
    const s = readState(this.id) ?? this.state;
    const namespaces = [...new Set([...s.namespaces, ...listNsSync().filter((n) => n.startsWith(prefix))])];
    for (const d of s.dockerds ?? []) removeContainersSync(d);
    for (const c of this.children) c.kill('SIGKILL');
    for (const p of s.pids) if (pidNsSync(p).some((n) => namespaces.includes(n))) signal(p, 'SIGKILL');
    for (const ns of namespaces) for (const p of nsPidsSync(ns)) signal(p, 'SIGKILL');
    for (const d of s.dockerds ?? []) cleanupDockerdSync(d);
    for (const ns of namespaces) delNsSync(ns);
    if (releaseMounts(this.root).length === 0) rmSync(this.root, { recursive: true, force: true });
  }

  /** Recorded namespaces plus any that follow our naming (e.g. containers made by the router). */
  private async ourNamespaces(): Promise<string[]> {
    const prefix = nsPrefix(this.id);
    const existing = await listNs();
    return [...new Set([...this.refresh().namespaces, ...existing.filter((n) => n.startsWith(prefix))])];
  }

  private checkOwnNs(netns: string): void {
    assertLabNs(netns);
    if (!netns.startsWith(nsPrefix(this.id)))
      throw new Error(`namespace "${netns}" does not belong to lab "${this.id}"`);
  }

  private refresh(): LabState {
    this.state = readState(this.id) ?? this.state;
    return this.state;
  }

  /** Only while the state file exists: never resurrect the root dir of a lab that is gone. */
  private update(fn: (s: LabState) => void): void {
    if (!readState(this.id)) return;
    this.state = updateState(this.id, this.state, fn);
  }
}

/** Creates a lab, runs fn, and always tears the lab down (also when fn throws). */
export async function withLab<T>(spec: LabSpec, fn: (lab: Lab) => Promise<T>, opts?: { id?: string }): Promise<T> {
  const lab = await Lab.create(spec, opts);
  try {
    return await fn(lab);
  } finally {
    await lab.down();
  }
}

/** Polls fn until it returns something truthy; otherwise throws, including fn's last error. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 10000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const detail =
        lastError === undefined
          ? ''
          : `: last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`timed out waiting for ${what} after ${timeoutMs}ms${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
