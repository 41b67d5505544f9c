import '../common/polyfill.js';
// `lab`: drive a namespace cluster by hand (demo, debugging). Labs outlive this process;
// state lives in /tmp/weave-lab/<id>/state.json.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Command } from 'commander';
import { Lab } from './lab.js';
import { readState } from './state.js';
import { formSwarm } from './swarm.js';
import { dockerHost } from './weave.js';

const DEFAULT_ID = 'shell';

function fail(msg: string): never {
  process.stderr.write(`lab: ${msg}\n`);
  process.exit(1);
}

function printHosts(lab: Lab): void {
  for (const h of lab.hosts) console.log(`  ${h.name.padEnd(4)} ${h.netns.padEnd(20)} ${h.addrs.join(' ')}`);
}

const program = new Command('lab')
  .description('multi-host lab made of network namespaces (underlay 198.18.0.0/15)')
  .enablePositionalOptions()
  .showHelpAfterError(false);

program
  .command('up')
  .description('create a lab with N hosts (default 3)')
  .argument('[n]', 'number of hosts', '3')
  .option('--line', 'hosts in a chain (h1-h2-h3...) instead of one shared switch')
  .option('--id <id>', 'lab id', DEFAULT_ID)
  .action(async (n: string, opts: { line?: boolean; id: string }) => {
    if (!/^\d+$/.test(n)) fail(`N must be a number, got "${n}"`);
    const lab = await Lab.create(
      { hosts: Number(n), topology: opts.line ? 'line' : 'flat' },
      { id: opts.id, keep: true },
    );
    console.log(`lab ${lab.id} up (${lab.topology}, ${lab.hosts.length} hosts)`);
    printHosts(lab);
  });

program
  .command('exec')
  .description("run CMD inside HOST's namespace (use -- before CMD)")
  .argument('<host>')
  .argument('<cmd...>')
  .option('--id <id>', 'lab id', DEFAULT_ID)
  .passThroughOptions()
  .action(async (host: string, cmd: string[], opts: { id: string }) => {
    // passThroughOptions keeps a literal "--" that separates CMD; drop it.
    if (cmd[0] === '--') cmd = cmd.slice(1);
    if (cmd.length === 0) fail('missing command: lab exec HOST -- CMD...');
    const lab = await Lab.load(opts.id);
    const ns = lab.host(host).netns;
    // Ctrl-C reaches the child through the terminal; we just report how it ended.
    process.on('SIGINT', () => {});
    const child = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'inherit' });
    child.on('error', (e) => fail(e.message));
    child.on('exit', (code, sig) => process.exit(code ?? 128 + (sig ? constants.signals[sig] : 0)));
  });

program
  .command('container')
  .description('add a container namespace on HOST (not attached to anything)')
  .argument('<host>')
  .argument('<name>')
  .option('--id <id>', 'lab id', DEFAULT_ID)
  .action(async (host: string, name: string, opts: { id: string }) => {
    const lab = await Lab.load(opts.id);
    const c = await lab.addContainer(host, name);
    console.log(c.netns);
  });

program
  .command('dockerd')
  .description("start a Docker engine on each HOST (its own, in the host's namespace; prints its DOCKER_HOST)")
  .argument('<hosts...>')
  .option('--id <id>', 'lab id', DEFAULT_ID)
  .action(async (hosts: string[], opts: { id: string }) => {
    const lab = await Lab.load(opts.id);
    await Promise.all(hosts.map((h) => lab.startDockerd(h)));
    for (const h of hosts) console.log(`${h} DOCKER_HOST=${dockerHost(lab, h)}`);
  });

program
  .command('swarm')
  .description(
    'form a Docker Swarm of HOSTS (engines started with lab dockerd; the first is the manager), each node labelled host=HOST',
  )
  .argument('<hosts...>')
  .option(
    '--label <host:key=value>',
    'one more node label, e.g. h2:os=centos (repeatable)',
    (v, all: string[]) => [...all, v],
    [],
  )
  .option('--id <id>', 'lab id', DEFAULT_ID)
  .action(async (hosts: string[], opts: { id: string; label: string[] }) => {
    const labels: Record<string, Record<string, string>> = {};
    for (const l of opts.label) {
      const m = /^([^:]+):([^=]+)=(.*)$/.exec(l);
      if (!m || !hosts.includes(m[1])) fail(`bad --label "${l}": HOST:KEY=VALUE, HOST one of ${hosts.join(' ')}`);
      (labels[m[1]] ??= {})[m[2]] = m[3];
    }
    const lab = await Lab.load(opts.id);
    await formSwarm(lab, hosts, labels);
    console.log(`swarm of ${hosts.join(' ')}: ${hosts[0]} manages`);
  });

program
  .command('ls')
  .description('list labs and their hosts')
  .action(async () => {
    const ids = await Lab.list();
    if (ids.length === 0) console.log('no labs');
    for (const id of ids) {
      const s = readState(id);
      if (!s) continue;
      const lab = await Lab.load(id);
      console.log(
        `${id}  ${s.spec.topology}  ${s.hosts.length} hosts  created ${s.createdAt} by pid ${s.creatorPid}${s.checkout ? ` of ${s.checkout}` : ''}`,
      );
      printHosts(lab);
      for (const c of lab.containers) console.log(`  ${`${c.host}/${c.name}`.padEnd(4)} ${c.netns}`);
    }
  });

program
  .command('down')
  .description("tear down a lab: --id ID, or this checkout's labs that no run is using, or --all")
  .option('--id <id>', 'lab id')
  .option('--all', "every lab on this machine: other checkouts' too, and runs in progress")
  .action(async (opts: { id?: string; all?: boolean }) => {
    if (opts.all)
      console.log('removing every lab on this machine, including those of other checkouts and of runs in progress');
    const ids = opts.id ? [opts.id] : opts.all ? await Lab.list() : Lab.ours();
    for (const id of ids) {
      if (!(await Lab.destroy(id))) fail(`no such lab "${id}"`);
      console.log(`lab ${id} down`);
    }
    if (!opts.id && ids.length === 0) console.log('no labs of this checkout to remove');
    // Say plainly what was left and why, so that a user who wanted them gone knows the flag.
    const left = opts.id || opts.all ? [] : (await Lab.list()).filter((id) => !ids.includes(id));
    if (left.length)
      console.log(
        `left alone: ${left.map((id) => `lab ${id} (${Lab.notOurs(id)})`).join(', ')}; lab down --all removes every lab`,
      );
  });

program
  .parseAsync(process.argv)
  .catch((e: unknown) => fail((e instanceof Error ? e.message : String(e)).trim().split('\n').join('; ')));
