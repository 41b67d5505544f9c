import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runOk } from '../common/exec.js';
import { LAB_BASE, Lab, waitFor } from '../lab/lab.js';
import { dockerHost, dockerOk, pluginDir } from '../lab/weave.js';
import { servePlugin, type PluginVolumes } from '../volumes/plugin.js';

/** Mount points of this process's namespace at or under dir. */
const mountsUnder = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p && (p === dir || p.startsWith(`${dir}/`)));

/**
 * The test's own stand-in for the volume manager: a directory per volume under the host's data
 * dir, bind-mounted onto its mount point at Mount time (a real mount, made long after dockerd
 * started: the container sees the data only if the mount propagated into dockerd's namespace).
 */
class DirVolumes implements PluginVolumes {
  readonly calls: string[] = [];
  readonly mounts = new Map<string, Set<string>>();
  /** Names whose create or mount fails, with the reason. */
  readonly refuse = new Map<string, string>();
  constructor(readonly dir: string) {}
  store = (name: string) => join(this.dir, 'store', name);
  mountpoint = (name: string) => join(this.dir, 'mnt', name);
  async create(name: string): Promise<void> {
    this.calls.push(`create ${name}`);
    const why = this.refuse.get(name);
    if (why) throw new Error(why);
    if (existsSync(this.store(name))) throw new Error(`volume ${name} exists`);
    mkdirSync(this.store(name), { recursive: true });
  }
  async remove(name: string): Promise<void> {
    this.calls.push(`remove ${name}`);
    if (this.mounts.get(name)?.size) throw new Error(`volume ${name} is in use`);
    rmSync(this.store(name), { recursive: true });
  }
  async mount(name: string, id: string): Promise<string> {
    this.calls.push(`mount ${name} ${id}`);
    const why = this.refuse.get(name);
    if (why) throw new Error(why);
    if (!existsSync(this.store(name))) throw new Error(`no volume ${name}`);
    const ids = this.mounts.get(name) ?? new Set<string>();
    if (ids.size === 0) {
      mkdirSync(this.mountpoint(name), { recursive: true });
      await runOk(['mount', '--bind', this.store(name), this.mountpoint(name)]);
    }
    this.mounts.set(name, ids.add(id));
    return this.mountpoint(name);
  }
  async unmount(name: string, id: string): Promise<void> {
    this.calls.push(`unmount ${name} ${id}`);
    const ids = this.mounts.get(name);
    if (!ids?.delete(id)) throw new Error(`volume ${name} is not mounted for ${id}`);
    if (ids.size === 0) await runOk(['umount', this.mountpoint(name)]);
  }
  path(name: string): string | undefined {
    return this.mounts.get(name)?.size ? this.mountpoint(name) : undefined;
  }
  get(name: string) {
    return existsSync(this.store(name)) ? { name, mountpoint: this.path(name), status: { test: true } } : undefined;
  }
  list() {
    return existsSync(join(this.dir, 'store'))
      ? readdirSync(join(this.dir, 'store')).map((name) => ({ name, mountpoint: this.path(name) }))
      : [];
  }
}

/** One POST to the plugin socket: status, content type and the parsed answer. */
function post(
  socketPath: string,
  path: string,
  body: string,
): Promise<{ status: number; type: string; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, path, method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } },
      (res) => {
        let text = '';
        res
          .setEncoding('utf8')
          .on('data', (c: string) => (text += c))
          .on('end', () => {
            try {
              resolve({
                status: res.statusCode ?? 0,
                type: String(res.headers['content-type']),
                json: JSON.parse(text) as Record<string, unknown>,
              });
            } catch (e) {
              reject(e);
            }
          });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('the Docker volume plugin protocol, on a socket of its own', () => {
  let dir: string;
  let server: { close(): Promise<void> } | undefined;
  let vols: DirVolumes;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'weave-plugin-'));
    vols = new DirVolumes(join(dir, 'data'));
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers what dockerd asks, errors as one-line Err with status 200, and survives bad JSON', async () => {
    const sock = join(dir, 'plugins', 'weave.sock'); // the directory does not exist yet
    server = await servePlugin(sock, vols);
    const activate = await post(sock, '/Plugin.Activate', 'null\n'); // what dockerd sends
    assert.deepEqual(
      [activate.status, activate.type, activate.json],
      [200, 'application/vnd.docker.plugins.v1.2+json', { Implements: ['VolumeDriver'] }],
    );
    assert.deepEqual((await post(sock, '/VolumeDriver.Capabilities', '{}')).json, {
      Capabilities: { Scope: 'global' },
    });
    assert.deepEqual((await post(sock, '/VolumeDriver.Create', '{"Name":"a","Opts":{"size":"1G"}}')).json, { Err: '' });
    assert.deepEqual(await post(sock, '/VolumeDriver.Create', '{"Name":"a","Opts":null}'), {
      status: 200,
      type: 'application/vnd.docker.plugins.v1.2+json',
      json: { Err: 'volume a exists' },
    });
    assert.deepEqual((await post(sock, '/VolumeDriver.Get', '{"Name":"nope"}')).json, { Err: 'no such volume' });
    assert.deepEqual((await post(sock, '/VolumeDriver.Get', '{"Name":"a"}')).json, {
      Volume: { Name: 'a', Mountpoint: '', Status: { test: true } },
      Err: '',
    });
    assert.deepEqual((await post(sock, '/VolumeDriver.List', '{}')).json, {
      Volumes: [{ Name: 'a', Mountpoint: '' }],
      Err: '',
    });
    vols.refuse.set('a', 'volume a is held by h9\n  which cannot be reached\n');
    assert.deepEqual((await post(sock, '/VolumeDriver.Mount', '{"Name":"a","ID":"x"}')).json, {
      Err: 'volume a is held by h9; which cannot be reached',
    });
    for (const bad of ['{"Name":', '[1]', '"a"', 'null', '{"Name":7}', '{"Name":"a","Opts":{"size":1}}']) {
      const r = await post(sock, '/VolumeDriver.Create', bad);
      assert.equal(r.status, 200, bad);
      assert.match(String(r.json.Err), /^[^\n]+$/, bad);
      assert.notEqual(r.json.Err, '', bad);
    }
    assert.equal((await post(sock, '/VolumeDriver.Nonsense', '{}')).status, 404);
    // still serving
    assert.deepEqual((await post(sock, '/VolumeDriver.Path', '{"Name":"a"}')).json, { Mountpoint: '', Err: '' });
  });

  it('refuses a socket a live server answers on, replaces a stale one, and removes its own at close', async () => {
    const sock = join(dir, 'plugins', 'weave.sock');
    await assert.rejects(
      servePlugin(sock, vols),
      (e: Error) => e.message === `another volume plugin is serving on ${sock}`,
    );
    await server!.close();
    server = undefined;
    assert.ok(!existsSync(sock), 'close removed the socket');
    // A server that died without closing (kill -9) leaves its socket file behind.
    const died = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    assert.equal(died.signal, 'SIGKILL');
    assert.ok(existsSync(sock), 'a stale socket is left');
    server = await servePlugin(sock, vols);
    assert.deepEqual((await post(sock, '/Plugin.Activate', '')).json, { Implements: ['VolumeDriver'] });
    writeFileSync(join(dir, 'plain'), 'x');
    await assert.rejects(servePlugin(join(dir, 'plain'), vols), /exists and is not a socket/);
  });
});

describe("Docker volumes through the weave plugin: two lab hosts, a dockerd each, each finding its own host's plugin", function () {
  this.timeout(180_000);
  let lab: Lab | undefined;
  const vols = new Map<string, DirVolumes>();
  const servers = new Map<string, { close(): Promise<void> }>();
  after(async () => {
    for (const s of servers.values()) await s.close().catch(() => {});
    await lab?.down();
  });

  before(async () => {
    lab = await Lab.create({ hosts: 2 });
    await Promise.all(['h1', 'h2'].map((h) => lab!.startDockerd(h)));
    // Served only now, after both engines started: they look the plugin up when first asked.
    for (const h of ['h1', 'h2']) {
      const v = new DirVolumes(join(lab.host(h).dataDir, 'test-volumes'));
      vols.set(h, v);
      servers.set(h, await servePlugin(join(pluginDir(lab, h), 'weave.sock'), v));
    }
  });

  const docker = (host: string, args: string[]) => dockerOk(lab!, host, args);
  const dockerFails = (host: string, args: string[]) =>
    lab!.exec(host, ['docker', ...args], { env: { DOCKER_HOST: dockerHost(lab!, host) }, timeoutMs: 60_000 });
  const volumeLs = async (host: string) =>
    (await docker(host, ['volume', 'ls', '--format', '{{.Driver}} {{.Name}}'])).trim().split('\n').filter(Boolean);
  const balanced = (v: DirVolumes, name: string) => {
    const mounts = v.calls.filter((c) => c.startsWith(`mount ${name} `)).map((c) => c.split(' ')[2]);
    const unmounts = v.calls.filter((c) => c.startsWith(`unmount ${name} `)).map((c) => c.split(' ')[2]);
    return (
      mounts.length > 0 &&
      JSON.stringify(mounts.sort()) === JSON.stringify(unmounts.sort()) &&
      mountsUnder(v.mountpoint(name)).length === 0
    );
  };

  it('creates a weave volume that docker volume ls shows with driver weave', async () => {
    assert.equal((await docker('h1', ['volume', 'create', '-d', 'weave', 'v1'])).trim(), 'v1');
    assert.ok((await volumeLs('h1')).includes('weave v1'), 'listed with driver weave');
    assert.ok(existsSync(vols.get('h1')!.store('v1')), 'the plugin made it');
  });

  it("writes through the volume's mount point in one container and reads it back in another; mounts and unmounts balance", async () => {
    const h1 = vols.get('h1')!;
    await docker('h1', [
      'run',
      '--rm',
      '-v',
      'v1:/data',
      '--volume-driver',
      'weave',
      'busybox',
      'sh',
      '-c',
      'echo hi > /data/f',
    ]);
    // The data is in the directory bound at Mount time: the bind reached dockerd's namespace.
    assert.equal(readFileSync(join(h1.store('v1'), 'f'), 'utf8'), 'hi\n');
    assert.equal(
      await docker('h1', ['run', '--rm', '-v', 'v1:/data', '--volume-driver', 'weave', 'busybox', 'cat', '/data/f']),
      'hi\n',
    );
    await waitFor('every Mount of v1 unmounted', async () => balanced(h1, 'v1'), 10_000, 50);
    assert.equal(h1.calls.filter((c) => c.startsWith('mount v1 ')).length, 2);
    assert.deepEqual(readdirSync(h1.mountpoint('v1')), [], 'nothing was written under the bare mount point');
  });

  it('keeps each host to its own plugin: a volume made on h2 is not on h1', async () => {
    await docker('h2', ['volume', 'create', '-d', 'weave', 'only-on-h2']);
    assert.ok((await volumeLs('h2')).includes('weave only-on-h2'));
    assert.ok(!(await volumeLs('h2')).includes('weave v1'), "h2 does not see h1's volume");
    assert.ok(!(await volumeLs('h1')).some((l) => l.endsWith(' only-on-h2')), "h1 does not see h2's volume");
    assert.ok(vols.get('h2')!.calls.includes('create only-on-h2'));
    assert.ok(!vols.get('h1')!.calls.some((c) => c.includes('only-on-h2')), "h1's plugin was never asked");
  });

  it("shows the plugin's error as docker's, with a non-zero exit", async () => {
    const h1 = vols.get('h1')!;
    await docker('h1', ['volume', 'create', '-d', 'weave', 'fenced']);
    h1.refuse.set('fenced', 'volume fenced is held by h9, which cannot be reached');
    const r = await dockerFails('h1', ['run', '--rm', '-v', 'fenced:/data', 'busybox', 'true']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /volume fenced is held by h9, which cannot be reached/);
    assert.equal(mountsUnder(h1.mountpoint('fenced')).length, 0);
    h1.refuse.set('huge', 'no space left in the pool');
    const full = await dockerFails('h1', ['volume', 'create', '-d', 'weave', 'huge']);
    assert.notEqual(full.code, 0);
    assert.match(full.stderr.trim(), /^[^\n]*no space left in the pool$/);
    assert.ok(!(await volumeLs('h1')).some((l) => l.endsWith(' huge')), 'nothing half-created');
  });

  it('removes a volume through the plugin', async () => {
    await docker('h1', ['volume', 'rm', 'v1']);
    assert.ok(!existsSync(vols.get('h1')!.store('v1')));
    assert.ok(!(await volumeLs('h1')).includes('weave v1'));
  });

  it('tears down every mount under the lab root, also a volume left mounted and a loop pool a killed router left', async () => {
    const l = lab!;
    const h1 = vols.get('h1')!;
    // A container holding a volume when its router dies: the plugin is gone, its mount stays.
    await docker('h1', ['volume', 'create', '-d', 'weave', 'held']);
    await docker('h1', ['run', '-d', '--name', 'holder', '-v', 'held:/data', 'busybox', 'sleep', '3600']);
    await servers.get('h1')!.close();
    servers.delete('h1');
    assert.equal(mountsUnder(h1.mountpoint('held')).length, 1);
    // A loop-mounted btrfs pool and a bare loop device, as a router killed with -9 leaves them.
    const pool = join(l.host('h2').dataDir, 'volumes.img');
    const spare = join(l.host('h2').dataDir, 'spare.img');
    await runOk(['truncate', '-s', '128M', pool]);
    await runOk(['truncate', '-s', '1M', spare]);
    await runOk(['mkfs.btrfs', '-q', pool]);
    mkdirSync(join(l.host('h2').dataDir, 'volumes'));
    await runOk(['mount', '-o', 'loop', pool, join(l.host('h2').dataDir, 'volumes')]);
    await runOk(['losetup', '-f', spare]);
    assert.ok(mountsUnder(l.root).length >= 3);
    // Loop devices are told by their backing file's inode: once unmounted, the kernel no longer names it by its lab
    // path.
    const backing = [pool, spare].map((f) => `${statSync(f).ino}`);
    const attached = async () =>
      (await run(['losetup', '--list', '--noheadings', '--output', 'BACK-INO,NAME,BACK-FILE'])).stdout
        .split('\n')
        .filter((line) => backing.includes(line.trim().split(/\s+/)[0]));
    assert.equal((await attached()).length, 2);

    await l.down();
    // Other labs (other runs on this machine) may hold mounts of their own under /tmp/weave-lab: not ours to judge.
    const others = (await Lab.list()).map((id) => join(LAB_BASE, id));
    assert.deepEqual(
      mountsUnder(LAB_BASE).filter((m) => !others.some((o) => m === o || m.startsWith(`${o}/`))),
      [],
      'nothing of this lab mounted under /tmp/weave-lab',
    );
    assert.deepEqual(await attached(), [], "no loop device left backed by the lab's files");
    assert.ok(!existsSync(l.root), 'the lab root is gone');
    assert.ok(
      !existsSync(join('/run', `${l.host('h1').netns}`)),
      "the engine's exec-root (and mount namespace file) is gone",
    );
  });
});
