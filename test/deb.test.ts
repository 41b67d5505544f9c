import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHECKOUT } from '../common/checkout.js';
import { run, runOk } from '../common/exec.js';
import { Lab, type LabContainer, waitFor } from '../lab/lab.js';
import { hostVars, launchAll, waitForPing, weaveOk } from '../lab/weave.js';
import type { Report } from '../contract/report.js';

// The Debian package as a host gets it: built from this checkout, listed, its dependencies resolved
// by apt from Debian's archive alone, then unpacked into a directory of ours (never installed on this
// machine). Its programs run with the package's /usr laid over the machine's in a mount namespace of
// their own; its unit's ExecStart runs as systemd would (systemd cannot be PID 1 here) on lab host h1.

const BUILD = join(CHECKOUT, 'packaging', 'build-deb.sh');
const VERSION = (JSON.parse(readFileSync(join(CHECKOUT, 'package.json'), 'utf8')) as { version: string }).version;
const PASSWORD = 'the package test';
/** The PATH systemd gives a service on Debian. */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** An environment file as systemd reads it: KEY=VALUE lines, the value's quotes taken off, comments skipped. */
function readEnvFile(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const m of text.matchAll(/^([A-Z_][A-Z0-9_]*)=(.*)$/gm)) vars[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  return vars;
}

/** A command line as systemd expands it: `$NAME` alone is the variable's words (none when empty). */
const expand = (line: string, vars: Record<string, string>): string[] =>
  line
    .split(/\s+/)
    .filter(Boolean)
    .flatMap((w) => (/^\$\w+$/.test(w) ? (vars[w.slice(1)] ?? '').split(/\s+/).filter(Boolean) : [w]));

describe('the Debian package (make deb): its files, its dependencies, its unit run on a lab host', function () {
  this.timeout(300_000);
  let dir: string;
  let deb: string;
  let root: string;
  let lab: Lab;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weave-deb-'));
    // Uncompressed: the files of make deb's package, without the half minute gzip takes on this machine.
    deb = (await runOk([BUILD, dir], { env: { DEB_COMPRESSION: 'none' }, timeoutMs: 240_000 })).trim();
    root = join(dir, 'root');
    await runOk(['dpkg-deb', '-x', deb, root]);
    lab = await Lab.create({ hosts: 2 });
    await launchAll(lab, ['h2'], [], { WEAVE_PASSWORD: PASSWORD });
  });
  after(async () => {
    await lab?.down(); // every process in its namespaces, the packaged router's too (and so its mounts)
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * argv with the package's /usr over the machine's, in a mount namespace that ends with it: a slave of
   * the machine's, so that it sees namespaces made after it (their /run/netns mounts), and sends nothing back.
   */
  const withPackage = (argv: string[]) => [
    'unshare',
    '--mount',
    '--propagation',
    'slave',
    'sh',
    '-c',
    `mount -t overlay weave-deb -o lowerdir=${root}/usr:/usr /usr && exec "$@"`,
    'sh',
    ...argv,
  ];
  const packagedWeave = (host: string, args: string[]) => lab.exec(host, withPackage(['weave', ...args]));
  const packagedWeaveOk = async (host: string, args: string[]) => {
    const r = await packagedWeave(host, args);
    assert.equal(r.code, 0, `weave ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  it('is weave-ts_<version>_<arch>.deb with the runtime, the built code, production packages only, the CLI, the CNI plugin and the unit', async () => {
    assert.match(deb, new RegExp(`/weave-ts_${VERSION.replace(/\./g, '\\.')}_[a-z0-9]+\\.deb$`));
    const files = (await runOk(['dpkg', '-c', deb])).split('\n').map((l) => l.split(/\s+/)[5]);
    const lib = './usr/lib/weave-ts/';
    for (const f of [
      './usr/bin/weave',
      './usr/lib/cni/weave-net',
      './usr/lib/systemd/system/weave.service',
      './etc/default/weave',
      `${lib}node`,
      `${lib}package.json`,
      `${lib}dist/cli/main.js`,
      `${lib}dist/daemon/supervisor.js`,
      `${lib}dist/daemon/main.js`,
      `${lib}dist/cni/weave-net.js`,
      `${lib}dist/proto/gen/weave.js`,
      `${lib}api/page/index.html`,
      `${lib}native/build/Release/weave_native.node`,
      `${lib}native/wait/build/weavewait`,
      `${lib}native/relay/build/relay`,
      `${lib}node_modules/cap/build/Release/cap.node`,
      `${lib}node_modules/libp2p/package.json`,
    ])
      assert.ok(files.includes(f), `${f} is in the package`);
    for (const dev of ['node_modules/mocha/', 'node_modules/typescript/', 'node_modules/tsx/', 'dist/test/'])
      assert.ok(!files.includes(`${lib}${dev}`), `${dev} is not`);
    const field = async (name: string) => (await runOk(['dpkg-deb', '-f', deb, name])).trim();
    for (const p of ['iproute2', 'ethtool', 'nftables', 'libpcap0.8', 'libssl3'])
      assert.match(await field('Depends'), new RegExp(`\\b${p}\\b`));
    for (const p of ['docker.io', 'btrfs-progs']) assert.match(await field('Recommends'), new RegExp(`\\b${p}\\b`));
    assert.equal((await runOk(['dpkg-deb', '--info', deb, 'conffiles'])).trim(), '/etc/default/weave');
  });

  it('apt on a bare Debian (nothing installed) resolves all it depends on from the Debian archive alone', async function () {
    if ((await run(['apt-cache', 'show', 'iproute2'])).code !== 0) this.skip(); // no package lists on this machine
    const none = join(dir, 'empty-status');
    writeFileSync(none, '');
    const sim = await runOk([
      'apt-get',
      'install',
      '--simulate',
      '--no-install-recommends',
      '-o',
      `Dir::State::status=${none}`,
      deb,
    ]);
    const installs = sim.split('\n').filter((l) => l.startsWith('Inst '));
    assert.ok(
      installs.some((l) => l.startsWith('Inst weave-ts ')),
      sim,
    );
    for (const l of installs.filter((l) => !l.startsWith('Inst weave-ts '))) assert.match(l, /\bDebian\b/);
  });

  it('weave.service passes systemd-analyze verify where the package puts it; every command has --help', async () => {
    const verify = await run(withPackage(['systemd-analyze', 'verify', 'weave.service']));
    assert.equal(verify.code, 0, verify.stderr);
    assert.equal(verify.stderr.trim(), '');
    const help = await packagedWeaveOk('h1', ['--help']);
    const commands = [...help.split('Commands:')[1].matchAll(/^ {2}([a-z-]+)/gm)]
      .map((m) => m[1])
      .filter((c) => c !== 'help');
    assert.ok(commands.includes('launch') && commands.includes('setup-cni'), help);
    const loop = `for c in ${commands.join(' ')}; do weave $c --help >/dev/null || echo "no --help: $c"; done`;
    assert.equal((await lab.execOk('h1', withPackage(['sh', '-c', loop]))).trim(), '');
    assert.match(await packagedWeaveOk('h1', ['launch', '--help']), /--foreground[\s\S]*--password-file/);
  });

  it('remove keeps the data and the password; purge deletes them and the link that enabled the unit', async () => {
    // Its maintainer scripts as dpkg runs them, in a sandbox: a mount namespace where /etc and /var/lib
    // take writes in a tmpfs, and /run/systemd is empty (systemd is not running here: the guarded case).
    const scripts = join(dir, 'DEBIAN');
    const scratch = join(dir, 'scratch');
    mkdirSync(scratch);
    await runOk(['dpkg-deb', '-e', deb, scripts]);
    const sandbox = `set -e
      mount -t tmpfs weave-deb ${scratch}
      for d in etc var/lib; do
        mkdir -p ${scratch}/$d/upper ${scratch}/$d/work
        mount -t overlay weave-deb -o lowerdir=/$d,upperdir=${scratch}/$d/upper,workdir=${scratch}/$d/work /$d
      done
      if [ -d /run/systemd ]; then mount -t tmpfs weave-deb /run/systemd; fi
      export DPKG_MAINTSCRIPT_PACKAGE=weave-ts
      DPKG_MAINTSCRIPT_NAME=postinst ${scripts}/postinst configure
      stat -c '/etc/weave %a' /etc/weave
      echo secret >/etc/weave/password && mkdir -p /var/lib/weave && echo '{}' >/var/lib/weave/ipam.json
      systemctl enable weave.service 2>/dev/null
      DPKG_MAINTSCRIPT_NAME=prerm ${scripts}/prerm remove
      DPKG_MAINTSCRIPT_NAME=postrm ${scripts}/postrm remove
      echo removed: $(ls /var/lib/weave) $(ls /etc/weave)
      DPKG_MAINTSCRIPT_NAME=postrm ${scripts}/postrm purge
      ls -d /var/lib/weave /etc/weave /etc/systemd/system/multi-user.target.wants/weave.service 2>/dev/null || echo purged`;
    const out = await runOk(withPackage(['sh', '-c', sandbox]));
    assert.equal(out, '/etc/weave 700\nremoved: ipam.json password\npurged\n');
  });

  describe('its unit on h1, with /etc/default/weave edited as a user would, h2 running the checkout', () => {
    let router: ChildProcess | undefined;
    let output = '';
    let c1: LabContainer;
    let c2: LabContainer;

    /** The unit's ExecStart, as root in h1, in the environment systemd gives it from its EnvironmentFile. */
    function startUnit(): ChildProcess {
      const unit = readFileSync(join(root, 'usr/lib/systemd/system/weave.service'), 'utf8');
      const envFile = unit.match(/^EnvironmentFile=-?(.*)$/m)![1];
      const vars = readEnvFile(readFileSync(join(root, envFile), 'utf8'));
      const argv = expand(unit.match(/^ExecStart=(.*)$/m)![1], vars);
      const env = { PATH: SYSTEMD_PATH, ...vars, ...hostVars(lab, 'h1') }; // the lab's vars keep it to h1
      const child = lab.spawn('h1', [
        'env',
        '-i',
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        ...withPackage(argv),
      ]);
      output = '';
      child.stdout!.on('data', (d) => (output += d));
      child.stderr!.on('data', (d) => (output += d));
      return child;
    }
    const stopUnit = (child: ChildProcess) =>
      new Promise<number | null>((resolve) => {
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM'); // what systemctl stop sends, to the main process (KillMode=mixed)
      });
    const connectedToH2 = () =>
      waitFor(
        'h1 connected to h2 through an encrypted connection',
        async () => /established.*encrypted\(.*\(h2\)/.test(await packagedWeaveOk('h1', ['status', 'connections'])),
        30_000,
      ).catch((e: Error) => {
        throw new Error(`${e.message}\nrouter output:\n${output}`);
      });

    before(() => {
      const file = join(root, 'etc/default/weave');
      const given = readFileSync(file, 'utf8');
      for (const line of [/^WEAVE_PEERS=""$/m, /^WEAVE_OPTIONS=""$/m, /^#WEAVE_PASSWORD_FILE=\/etc\/weave\/password$/m])
        assert.match(given, line);
      const password = join(root, 'etc/weave/password');
      mkdirSync(join(root, 'etc/weave'), { mode: 0o700 });
      writeFileSync(password, `${PASSWORD}\n`, { mode: 0o600 });
      chmodSync(password, 0o600);
      const edited = given
        .replace(/^WEAVE_PEERS=""$/m, `WEAVE_PEERS="${lab.host('h2').addrs[0]}"`)
        .replace(/^WEAVE_OPTIONS=""$/m, 'WEAVE_OPTIONS="--nickname h1"')
        .replace(/^#WEAVE_PASSWORD_FILE=.*$/m, `WEAVE_PASSWORD_FILE=${password}`);
      writeFileSync(file, edited);
    });

    it('runs the router in the foreground, connected to h2 with the password from the file, which no command line shows', async () => {
      router = startUnit();
      await connectedToH2();
      const r = JSON.parse(await packagedWeaveOk('h1', ['report'])) as Report;
      for (const pid of [router.pid!, r.supervisorPid!, r.pid]) {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        assert.ok(cmdline.includes('/usr/lib/weave-ts/'), `pid ${pid} runs the package: ${cmdline}`);
        assert.ok(!cmdline.includes(PASSWORD), `pid ${pid}'s command line has no password`);
      }
    });

    it('SIGTERM stops it cleanly; started again, it takes its containers back at their addresses', async () => {
      c1 = await lab.addContainer('h1', 'c1');
      c2 = await lab.addContainer('h2', 'c2');
      await packagedWeaveOk('h1', ['attach', '10.32.0.1/12', `netns:${c1.netns}`]);
      await weaveOk(lab, 'h2', ['attach', '10.32.0.2/12', `netns:${c2.netns}`]);
      await waitForPing(lab, c1.netns, '10.32.0.2');

      assert.equal(await stopUnit(router!), 0, output);
      const gone = await packagedWeave('h1', ['status']);
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /the weave router is not running here/);

      router = startUnit();
      await connectedToH2();
      assert.match(await packagedWeaveOk('h1', ['ps']), /\b10\.32\.0\.1\/12\b/);
      await waitForPing(lab, c1.netns, '10.32.0.2');
      assert.equal(await stopUnit(router), 0, output);
      router = undefined;
    });
  });
});
