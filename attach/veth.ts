import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { UserError } from '../common/errors.js';
import { log } from '../common/log.js';
import { run, runOk } from '../common/exec.js';
import { type Cidr, formatCidr } from '../common/cidr.js';
import { BRIDGE, quietIPv6 } from '../router/bridge.js';

export const CONTAINER_IF = 'ethwe';

export interface Attachment {
  target: string;
  netns: string;
  ifname: string;
  hostIf: string;
  mac: string;
  cidrs: string[];
}

/**
 * Where a target's network namespace is: `netns:NAME` (under /var/run/netns), `netns:/path` or
 * `pid:PID`. Docker containers are resolved to a pid by the caller.
 */
export function resolveTarget(target: string): string {
  let path: string;
  if (/^netns:\//.test(target)) path = target.slice(6);
  else if (/^netns:[\w.-]+$/.test(target)) path = `/var/run/netns/${target.slice(6)}`;
  else if (/^pid:\d+$/.test(target)) path = `/proc/${target.slice(4)}/ns/net`;
  else throw new UserError(`unknown target "${target}": expected netns:NAME, netns:/path or pid:PID`);
  if (!existsSync(path)) throw new UserError(`unknown target "${target}": ${path} does not exist`);
  return path;
}

const inNs = (netns: string, argv: string[]) => ['nsenter', `--net=${netns}`, ...argv];

/** The host-side veth name: unique per namespace (its inode) and interface, within the 15-character limit. */
const hostIfName = (netns: string, ifname: string) =>
  ifname === CONTAINER_IF
    ? `vethwepl${statSync(netns).ino.toString(36).slice(-7)}`
    : `vethwecn${createHash('sha256')
        .update(`${statSync(netns).ino}/${ifname}`)
        .digest('hex')
        .slice(0, 7)}`;

async function linkMac(netns: string, dev: string): Promise<string | undefined> {
  const r = await run(inNs(netns, ['ip', '-j', 'link', 'show', 'dev', dev]));
  return r.code === 0 ? (JSON.parse(r.stdout) as { address: string }[])[0]?.address : undefined;
}

export interface AttachOptions {
  mac?: string;
  /** The interface in the target (ethwe unless told: CNI names its own). */
  ifname?: string;
  /** Refuse a target that has the interface already (CNI), instead of adding to it. */
  exclusive?: boolean;
  /** A default route through this address on the bridge, and hairpin on the bridge port (CNI). */
  gateway?: string;
  /** A default route through this address on the bridge unless the target has one (a container with no other network), and hairpin. */
  fallbackGateway?: string;
}

/**
 * Puts a veth (`ethwe`) into the target with the given addresses and MTU, its peer on the bridge.
 * The pair is created from inside the target with the host end placed straight into our own
 * namespace, so no link is ever created under a name that may exist here already. A new interface
 * is made, addressed and brought up by one `ip -batch` in the target (a process each costs tens of
 * milliseconds on a busy host); when the target has one already, that batch fails at its first line
 * and the existing interface gets the addresses instead.
 */
export async function attach(target: string, cidrs: Cidr[], mtu: number, o: AttachOptions = {}): Promise<Attachment> {
  const netns = resolveTarget(target);
  const dev = o.ifname ?? CONTAINER_IF;
  const hostIf = hostIfName(netns, dev);
  const made = await run(inNs(netns, ['ip', '-batch', '-']), {
    input: `${[
      `link add name ${dev} mtu ${mtu}${o.mac ? ` address ${o.mac}` : ''} type veth peer name ${hostIf} mtu ${mtu} netns ${process.pid}`,
      ...cidrs.map((c) => `addr add ${formatCidr(c)} dev ${dev}`),
      `link set dev ${dev} up`,
      ...(o.gateway ? [`route replace default via ${o.gateway} dev ${dev}`] : []),
    ].join('\n')}\n`,
  });
  const existed = made.code !== 0 && /File exists/.test(made.stderr) && /Command failed -:1$/m.test(made.stderr);
  if (existed && o.exclusive) throw new UserError(`${target} has an interface ${dev} already`);
  try {
    if (existed) {
      for (const c of cidrs) {
        const r = await run(inNs(netns, ['ip', 'addr', 'add', formatCidr(c), 'dev', dev]));
        if (r.code !== 0 && !/exists|already assigned/.test(r.stderr))
          throw new Error(`cannot add ${formatCidr(c)}: ${r.stderr.trim()}`);
      }
      await runOk(inNs(netns, ['ip', 'link', 'set', 'dev', dev, 'up']));
      if (o.gateway) await runOk(inNs(netns, ['ip', 'route', 'replace', 'default', 'via', o.gateway, 'dev', dev]));
    } else {
      if (made.code !== 0) throw new Error(`cannot attach ${target}: ${made.stderr.trim().split('\n')[0]}`);
      quietIPv6(hostIf);
      // One process for both: hairpin needs the port on the bridge already, so it cannot go in the same line.
      // Hairpin: with br_netfilter, a container's frame to its own host's published port is DNATed to itself and
      // bridged back out of the port it came in by.
      const hairpin = o.gateway || o.fallbackGateway ? `link set dev ${hostIf} type bridge_slave hairpin on\n` : '';
      await runOk(['ip', '-batch', '-'], { input: `link set dev ${hostIf} master ${BRIDGE} up\n${hairpin}` });
    }
    if (o.fallbackGateway && !o.gateway) {
      const r = await run(
        inNs(netns, ['ip', 'route', 'add', 'default', 'via', o.fallbackGateway, 'dev', dev, 'onlink']),
      );
      if (r.code !== 0 && !/File exists/.test(r.stderr))
        throw new Error(`cannot add a default route via ${o.fallbackGateway}: ${r.stderr.trim()}`);
    }
    for (const c of cidrs) gratuitousArp(netns, dev, c.ip);
  } catch (err) {
    if (!existed) await run(inNs(netns, ['ip', 'link', 'del', 'dev', dev])); // nothing left half-attached
    throw err;
  }
  const mac = !existed && o.mac ? o.mac.toLowerCase() : ((await linkMac(netns, dev)) ?? '');
  return { target, netns, ifname: dev, hostIf, mac, cidrs: cidrs.map(formatCidr) };
}

let arpingMissing = false;

/**
 * Announces ip from dev so that peers which cached the address at another MAC (a container that
 * moved or restarted) learn the new one at once. arping waits a second for answers that never
 * come to an unsolicited ARP, so it runs on its own and nobody waits for it.
 */
export function gratuitousArp(netns: string | undefined, dev: string, ip: string): void {
  if (arpingMissing) return;
  const argv = [...(netns ? ['nsenter', `--net=${netns}`] : []), 'arping', '-U', '-c1', '-I', dev, ip];
  const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
  child.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && !arpingMissing) {
      arpingMissing = true;
      log.warn('arping is not installed: moved addresses are learnt only when caches expire');
    }
  });
  child.on('exit', (code) => {
    if (code === 127 && !arpingMissing) {
      arpingMissing = true;
      log.warn('arping is not installed: moved addresses are learnt only when caches expire');
    }
  });
  child.unref();
}

/** What is attached in a namespace already (after a router restart): the interface's MAC and addresses. */
export async function existingAttachment(
  netns: string,
  dev = CONTAINER_IF,
): Promise<{ mac: string; cidrs: string[] } | undefined> {
  const r = await run(inNs(netns, ['ip', '-j', 'addr', 'show', 'dev', dev]));
  if (r.code !== 0) return undefined;
  const [link] = JSON.parse(r.stdout) as {
    address: string;
    addr_info: { family: string; local: string; prefixlen: number }[];
  }[];
  if (!link) return undefined;
  return {
    mac: link.address,
    cidrs: link.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/** Removes the interface (ethwe) from the target (the host end goes with it). */
export async function detach(target: string, dev = CONTAINER_IF): Promise<{ mac: string }> {
  const netns = resolveTarget(target);
  const mac = await linkMac(netns, dev);
  if (mac === undefined) throw new UserError(`${target} is not attached`);
  await runOk(inNs(netns, ['ip', 'link', 'del', 'dev', dev]));
  return { mac };
}
