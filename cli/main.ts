import '../common/polyfill.js';
import { Command, CommanderError } from 'commander';
import { basename, join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { LAUNCH_OPTIONS, type RouterConfig } from '../daemon/options.js';
import { addFlags, configOf } from './launch-flags.js';
import type {
  AttachResult,
  DetachResult,
  ExposeResult,
  PolicyApplyRequest,
  PolicyWhyRequest,
  PsRow,
  ResetResult,
  RmpeerResult,
  RunResult,
} from '../contract/requests.js';
import type { Report } from '../contract/report.js';
import { RESET_FILES } from '../contract/files.js';
import { isUnicastMac } from '../common/mac.js';
import { isIPv4 } from '../common/cidr.js';
import { parsePeerAddress } from '../common/address.js';
import { call, callText, NotRunning, tryReport } from './client.js';
import { launch, launchInForeground, stop } from './launch.js';
import { checkAddressSpec, isAddressSpec } from '../common/address-spec.js';
import { CNI_DEFAULTS, removeCni, setupCni } from './setup-cni.js';
import { installPlugin } from './plugin-install.js';

const out = (text: string) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

const UNREADABLE: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
};

/** A file the user named, or an error that names it, says why in words and what to do. */
function readText(file: string, what: string, todo: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    throw new Error(`cannot read ${what} ${file}: ${UNREADABLE[code] ?? (err as Error).message} (${todo})`);
  }
}

function peerAddress(v: string): string {
  parsePeerAddress(v);
  return v;
}

/** NAME=VALUE of the variables that `-e NAME` (no value) passes on from this environment to the container. */
function passedEnv(args: string[]): string[] {
  const names = args.flatMap((a, i) =>
    /^(-e|--env)$/.test(args[i - 1] ?? '') ? [a] : a.startsWith('--env=') ? [a.slice(6)] : [],
  );
  return names.filter((n) => !n.includes('=') && process.env[n] !== undefined).map((n) => `${n}=${process.env[n]}`);
}

const program = new Command('weave')
  .description('A layer-2 overlay network for containers across hosts')
  .enablePositionalOptions()
  .exitOverride()
  // Commander's own errors are said once, on one line, by the handler at the end of this file.
  .configureOutput({ writeErr: () => {}, outputError: () => {} });

addFlags(
  program
    .command('launch')
    .description('start the router on this host, connecting to the given peers')
    .argument('[peers...]', 'routers to connect to (HOST or HOST:PORT)')
    .option('--foreground', 'run until stopped by a signal, logging to standard output (for systemd)'),
  LAUNCH_OPTIONS,
).action(async (peers: string[], o: { foreground?: boolean }, cmd: Command) => {
  const cfg = { ...configOf(cmd, LAUNCH_OPTIONS), peers: peers.map(peerAddress) } as RouterConfig;
  process.env.WEAVE_HTTP_ADDR = cfg.httpAddr;
  if (o.foreground) {
    process.exitCode = await launchInForeground(cfg);
    return;
  }
  const r = await launch(cfg);
  out(r.name);
});

program
  .command('stop')
  .description('stop the router on this host')
  .action(async () => {
    if (!(await stop())) throw new Error('the weave router is not running here');
  });

program
  .command('attach')
  .description(
    'attach a container or namespace to the overlay: weave attach [ADDR...] CONTAINER|netns:NAME|netns:/path|pid:PID',
  )
  .argument('<args...>', 'addresses (10.32.1.5/12, net:10.40.0.0/16, net:default) followed by the target')
  .option('--mac <mac>', 'the MAC address for ethwe (keep it when moving a container between hosts)')
  .action(async (args: string[], o: { mac?: string }) => {
    const target = args.at(-1)!;
    const cidrs = args.slice(0, -1);
    for (const c of cidrs) checkAddressSpec(c);
    if (isAddressSpec(target))
      throw new Error('attach needs a target after the addresses: a container or netns:NAME, netns:/path, pid:PID');
    if (o.mac !== undefined && !isUnicastMac(o.mac))
      throw new Error(`invalid MAC "${o.mac}": expected a unicast MAC like 02:00:00:00:00:01`);
    const a = await call<AttachResult>('POST', '/attach', { target, cidrs, mac: o.mac });
    out(a.cidrs.map((c) => c.split('/')[0]).join(' '));
  });

program
  .command('connect')
  .description('add peers to connect to (--replace: instead of the current ones)')
  .argument('<peers...>', 'HOST or HOST:PORT')
  .option('--replace', 'replace the current targets')
  .action(async (peers: string[], o: { replace?: boolean }) => {
    await call('POST', '/connect', { peers: peers.map(peerAddress), replace: !!o.replace });
  });

program
  .command('forget')
  .description('stop connecting to peers')
  .argument('<peers...>', 'HOST or HOST:PORT')
  .action(async (peers: string[]) => {
    await call('POST', '/forget', { peers: peers.map(peerAddress) });
  });

program
  .command('detach')
  .description('detach a container or namespace from the overlay, releasing its addresses')
  .argument('<target>')
  .action(async (target: string) => {
    const r = await call<DetachResult>('POST', '/detach', { target });
    if (r.cidrs?.length) out(r.cidrs.map((c) => c.split('/')[0]).join(' '));
  });

program
  .command('run')
  .description(
    'create and start a Docker container attached to the overlay: weave run [ADDR...] [docker run flags] IMAGE ' +
      '[COMMAND [ARG...]]',
  )
  .argument(
    '<args...>',
    'addresses, then docker run flags (-d, --name, -h, -e, -v, -p, -l, --restart, --rm, -w, --entrypoint, -m, ' +
      '--cpus), image, command',
  )
  .allowUnknownOption()
  .helpOption(false)
  .passThroughOptions()
  .action(async (args: string[], _o: unknown, cmd: Command) => {
    if (args[0] === '--help') return cmd.help(); // -h is docker run's hostname, so only the long form
    let i = 0;
    while (i < args.length && isAddressSpec(args[i])) checkAddressSpec(args[i++]);
    if (!(await tryReport())) throw new NotRunning();
    const r = await call<RunResult>('POST', '/run', {
      cidrs: args.slice(0, i),
      args: args.slice(i),
      env: passedEnv(args.slice(i)),
    });
    out(r.id);
  });

program
  .command('ps')
  .description("list what is attached here: <id> <mac> <cidr...>, the host's own exposed address first")
  .argument('[containers...]', 'only these containers')
  .action(async (targets: string[]) => {
    const rows = await call<PsRow[]>('POST', '/ps', { targets });
    process.stdout.write(rows.map((r) => `${r.id} ${r.mac} ${r.cidrs.join(' ')}\n`).join(''));
  });

program
  .command('expose')
  .description('give this host an address on the overlay (from IPAM unless given): weave expose [ADDR...]')
  .argument('[addrs...]', 'addresses: 10.32.1.5/12, net:10.40.0.0/16, net:default')
  .action(async (cidrs: string[]) => {
    for (const c of cidrs) checkAddressSpec(c);
    const r = await call<ExposeResult>('POST', '/expose', { cidrs });
    out(r.cidrs.map((c) => c.split('/')[0]).join(' '));
  });

program
  .command('hide')
  .description("take this host's overlay addresses away again")
  .action(async () => {
    const r = await call<ExposeResult>('POST', '/hide', {});
    if (r.cidrs.length) out(r.cidrs.map((c) => c.split('/')[0]).join(' '));
  });

program
  .command('status')
  .description('show the router status: weave status [peers|connections|targets|ipam|...]')
  .argument('[what]', 'a section: peers, connections, targets, ipam, ...')
  .action(async (what?: string) => {
    process.stdout.write(await callText(what === undefined ? '/status' : `/status/${encodeURIComponent(what)}`));
  });

/** dns-add/dns-remove arguments as Weave takes them: [IP...] [CONTAINER] [-h NAME]. */
function dnsArgs(args: string[]): { ips: string[]; target?: string } {
  const ips = args.filter((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
  const rest = args.filter((a) => !ips.includes(a));
  for (const ip of ips) if (!isIPv4(ip)) throw new Error(`invalid address "${ip}"`);
  if (rest.length > 1) throw new Error(`expected [IP...] [CONTAINER] [-h NAME], got ${rest.join(' ')}`);
  return { ips, target: rest[0] };
}

program
  .command('dns-add')
  .description(
    "register a name in the cluster's DNS: weave dns-add [IP...] [CONTAINER] -h NAME " +
      "(the container's addresses if none given)",
  )
  .argument('[args...]', 'addresses, then a container or netns:NAME')
  .requiredOption('-h, --hostname <name>', 'the name (web, or web.weave.local)')
  .helpOption('--help')
  .action(async (args: string[], o: { hostname: string }) => {
    const r = await call<{ addresses: string[] }>('POST', '/dns/add', { name: o.hostname, ...dnsArgs(args) });
    out(r.addresses.join(' '));
  });

program
  .command('dns-remove')
  .description('remove names: weave dns-remove [IP...] [CONTAINER] [-h NAME]')
  .argument('[args...]', 'addresses, then a container or netns:NAME')
  .option('-h, --hostname <name>', 'only this name')
  .helpOption('--help')
  .action(async (args: string[], o: { hostname?: string }) => {
    await call('POST', '/dns/remove', { name: o.hostname, ...dnsArgs(args) });
  });

program
  .command('dns-lookup')
  .description("the addresses of a name in the cluster's DNS")
  .argument('<name>', 'web or web.weave.local')
  .action(async (name: string) => {
    const r = await call<{ addresses: string[] }>('GET', `/dns/lookup/${encodeURIComponent(name)}`);
    out(r.addresses.join('\n'));
  });

program
  .command('dns-args')
  .description(
    "the docker run flags that give a container the cluster's DNS (docker run --network weave $(weave dns-args) ...)",
  )
  .action(async () => {
    const r = await call<{ ip: string; domain: string }>('POST', '/dns-args');
    out(`--dns=${r.ip} --dns-search=${r.domain}`);
  });

program
  .command('setup-cni')
  .description(
    'install the CNI plugin (weave-net) and a conflist, so that Kubernetes, containerd and others use the overlay',
  )
  .option('--bin-dir <dir>', 'where CNI plugins are', CNI_DEFAULTS.binDir)
  .option('--conf-dir <dir>', 'where CNI network configurations are', CNI_DEFAULTS.confDir)
  .option('--remove', 'take them away again')
  .action((o: { binDir: string; confDir: string; remove?: boolean }) => {
    for (const f of o.remove ? removeCni(o) : setupCni(o)) out(`${o.remove ? 'removed' : 'wrote'} ${f}`);
  });

const plugin = program.command('plugin').description("Docker's managed plugin for Swarm: weave plugin install");
plugin
  .command('install')
  .description('build the managed plugin (weave-net:latest) from this checkout, install it in Docker and enable it')
  .option('--force', 'replace one that is there')
  .action(async (o: { force?: boolean }) => {
    for (const line of await installPlugin(o.force === true)) out(line);
  });

program
  .command('deploy')
  .description(
    'deploy a stack from a manifest (YAML: services with image, cmd, replicas, env, constraints, spread, volumes, ' +
      'restart, ports); again after an edit to change it',
  )
  .argument('<file>', 'the manifest')
  .option('--name <stack>', "the stack's name (default: the file's name without its extension)")
  .action(async (file: string, o: { name?: string }) => {
    const manifest = readText(file, 'the manifest', 'give the path of a YAML manifest');
    const name = o.name ?? basename(file).replace(/\.[^.]*$/, '');
    out(await callText('/stacks', 'POST', { name, manifest, source: file }));
  });

const stack = program.command('stack').description('deployed stacks: weave stack ls | ps NAME | rm NAME');
stack
  .command('ls')
  .description('list deployed stacks')
  .action(async () => {
    out(await callText('/stacks'));
  });
stack
  .command('ps')
  .description('where each replica of a stack runs: replica, host, address, state, since')
  .argument('<name>')
  .action(async (name: string) => {
    out(await callText(`/stacks/${encodeURIComponent(name)}`));
  });
stack
  .command('rm')
  .description('remove a stack: its replicas stop and release their addresses')
  .argument('<name>')
  .action(async (name: string) => {
    await call('DELETE', `/stacks/${encodeURIComponent(name)}`);
  });

const policy = program
  .command('policy')
  .description('Kubernetes NetworkPolicies on the overlay: weave policy apply FILE | ls | rm NAME | why SRC DST PORT');
policy
  .command('apply')
  .description('apply the NetworkPolicies of a YAML file (one or several documents), all or none')
  .argument('<file>')
  .option('--namespace <name>', 'the namespace of policies whose metadata names none', 'default')
  .action(async (file: string, o: { namespace: string }) => {
    const yaml = readText(file, 'the policy file', 'give the path of a YAML file of NetworkPolicies');
    const body: PolicyApplyRequest = { file, yaml, namespace: o.namespace };
    out(await callText('/policy/apply', 'POST', body));
  });
policy
  .command('ls')
  .description('the policies in force: name, types, rules, containers they isolate here, packets dropped here')
  .action(async () => {
    out(await callText('/policy'));
  });
policy
  .command('rm')
  .description('remove a policy (NAME in the default namespace, or NAMESPACE/NAME)')
  .argument('<name>')
  .action(async (name: string) => {
    await call('POST', '/policy/rm', { name });
  });
policy
  .command('why')
  .description('which policy and rule allows or drops a new flow from SRC to DST (addresses or container names)')
  .argument('<src>')
  .argument('<dst>')
  .argument('<port>', 'PORT or PORT/PROTO (tcp, udp, sctp)')
  .action(async (src: string, dst: string, port: string) => {
    const body: PolicyWhyRequest = { src, dst, port };
    out(await callText('/policy/why', 'POST', body));
  });

const volume = program
  .command('volume')
  .description('volumes that move with their containers: weave volume create | ls | inspect | move | rm');
volume
  .command('create')
  .description('create a volume on this host (docker run -v NAME:/path --volume-driver weave mounts it on any host)')
  .argument('<name>')
  .option(
    '--replicas <n>',
    'copies kept, this one included: the others receive its changes every few seconds and survive this host',
    '1',
  )
  .action(async (name: string, o: { replicas: string }) => {
    out(await callText('/volumes', 'POST', { name, replicas: o.replicas }));
  });
volume
  .command('ls')
  .description('list volumes: where each is, its copies, how fresh they are')
  .action(async () => {
    out(await callText('/volumes'));
  });
volume
  .command('inspect')
  .description('a volume as JSON: owner, copies, mounts, a transfer in progress')
  .argument('<name>')
  .action(async (name: string) => {
    out(JSON.stringify(await call('GET', `/volumes/${encodeURIComponent(name)}`), null, 2));
  });
volume
  .command('move')
  .description('move a volume to another host: copied while its containers run, then they stop for the last changes')
  .argument('<name>')
  .argument('<host>', 'peer name or nickname')
  .action(async (name: string, host: string) => {
    out(await callText(`/volumes/${encodeURIComponent(name)}/move`, 'POST', { host }, 3_600_000));
  });
volume
  .command('rm')
  .description('remove a volume and every copy of it (refused while a container uses it)')
  .argument('<name>')
  .action(async (name: string) => {
    out(await callText(`/volumes/${encodeURIComponent(name)}`, 'DELETE'));
  });

program
  .command('rmpeer')
  .description("take over a dead peer's share of the IP range (only once it is gone for good)")
  .argument('<peer>', 'peer name or nickname')
  .action(async (peer: string) => {
    const r = await call<RmpeerResult>('POST', `/ipam/rmpeer?peer=${encodeURIComponent(peer)}`);
    out(`${r.addresses} IPs taken over from ${r.peer}`);
  });

program
  .command('reset')
  .description(
    "hand this peer's share of the IP range to another peer, remove the router's nftables table, stop the router and forget its state",
  )
  .action(async () => {
    const r = await call<ResetResult>('POST', '/ipam/reset');
    await call('POST', '/firewall/reset'); // the router's nftables table, and nothing else
    const report = await call<Report>('GET', '/report');
    await stop();
    for (const f of RESET_FILES) rmSync(join(report.dataDir, f), { force: true });
    if (r.heir) out(`handed the address space to ${r.heir}`);
  });

program
  .command('env')
  .description(
    'print the shell commands that point the docker CLI at the proxy: eval $(weave env); --restore undoes it',
  )
  .option('--restore', 'point DOCKER_HOST back where it was')
  .action(async (o: { restore?: boolean }) => {
    if (o.restore) {
      const orig = process.env.ORIG_DOCKER_HOST;
      out(orig ? `export DOCKER_HOST=${orig}; unset ORIG_DOCKER_HOST` : 'unset DOCKER_HOST ORIG_DOCKER_HOST');
      return;
    }
    const r = await call<Report>('GET', '/report');
    const proxy = r.proxy as { socket: string } | undefined;
    if (!proxy) throw new Error('the router runs without the Docker API proxy (launched with --no-proxy)');
    const here = `unix://${proxy.socket}`;
    const orig =
      process.env.DOCKER_HOST === here ? (process.env.ORIG_DOCKER_HOST ?? '') : (process.env.DOCKER_HOST ?? '');
    out(`export DOCKER_HOST=${here} ORIG_DOCKER_HOST=${orig}`);
  });

program
  .command('report')
  .description('print the router report as JSON')
  .action(async () => {
    out(JSON.stringify(await call('GET', '/report'), null, 2));
  });

/** The command a command line names (the deepest that matches), for the hint in an error. */
function commandOf(args: string[]): Command {
  let cmd = program;
  for (const a of args) {
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (sub) cmd = sub;
    else if (!a.startsWith('-')) break;
  }
  return cmd;
}

const fullName = (c: Command): string => (c.parent ? `${fullName(c.parent)} ${c.name()}` : c.name());

/** What a user sees of any failure: one line that begins `weave:`, and exit status 1. */
function explain(err: Error): string {
  if (!(err instanceof CommanderError)) return err.message;
  const cmd = commandOf(process.argv.slice(2));
  const what =
    err.code === 'commander.help' // a command that takes a subcommand, given none
      ? `${cmd.parent ? `${fullName(cmd).replace(/^weave /, '')} needs` : 'name'} a command: ${cmd.commands.map((c) => c.name()).join(', ')}`
      : err.message.replace(/^error: /, '');
  return `${what} (see ${fullName(cmd)} --help)`;
}

program.parseAsync(process.argv).catch((err: Error) => {
  if (err instanceof CommanderError && err.exitCode === 0) process.exit(0); // --help, as a user expects
  process.stderr.write(`weave: ${explain(err).replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
});
