import '../common/polyfill.js';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { startApi } from '../api/http.js';
import { log } from '../common/log.js';
import { writeFileAtomic } from '../common/files.js';
import { parseVxlanPeer } from '../common/address.js';
import { registerGossip, type Subsystem } from '../common/subsystem.js';
import { DATA_FILES } from '../contract/files.js';
import { type RouterConfig, withDefaults } from './options.js';
import { ControlPlane } from '../gossip/control-plane.js';
import { IpamService } from '../ipam/service.js';
import { ipamSubsystem } from '../ipam/subsystem.js';
import { dnsSubsystem } from '../dns/subsystem.js';
import { DockerClient } from '../docker/client.js';
import { containersSubsystem } from '../docker/subsystem.js';
import { networkPluginSubsystem } from '../docker/network/subsystem.js';
import { dockerContainers } from '../docker/containers.js';
import { checkProxy, engineHost, proxySubsystem } from '../docker/proxy/subsystem.js';
import { Attachments } from '../attach/attachments.js';
import { attachmentsSubsystem } from '../attach/subsystem.js';
import { cniSubsystem } from '../attach/cni/subsystem.js';
import { BRIDGE, ensureBridge, underlayMtu, VXLAN_OVERHEAD } from '../router/bridge.js';
import { bridgeAddresses } from '../attach/expose.js';
import { DataPlane } from '../router/data-plane.js';
import { lockDataDir } from '../common/data-dir-lock.js';
import { routerSubsystem } from '../router/subsystem.js';
import { openDatapath } from '../router/open-datapath.js';
import { SEAL_OVERHEAD } from '../router/seal.js';
import { loadNative } from '../native/addon.js';
import { parseSubnet } from '../common/subnet.js';
import { MembershipService } from '../membership/service.js';
import { membershipSubsystem } from '../membership/subsystem.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { dockerReplicas } from '../scheduler/replicas.js';
import { schedulerSubsystem } from '../scheduler/subsystem.js';
import { hostLabels } from '../scheduler/host-labels.js';
import { VolumeManager } from '../volumes/manager.js';
import { volumesSubsystem } from '../volumes/subsystem.js';
import { openPool } from '../volumes/pool.js';
import { stopVolumeUsers, volumeUsers } from '../docker/volume-users.js';
import { readPasswordFile } from '../common/password-file.js';
import { NftFirewall } from '../firewall/firewall.js';
import { firewallSubsystem } from '../firewall/subsystem.js';
import { PortPublisher } from '../docker/publish.js';
import { policySubsystem, type LocalContainer } from '../policy/subsystem.js';
import type { AttachedEntry } from '../attach/attachments.js';

// The composition root: the only place that knows every part. Ports are taken before the
// bridge is touched, so a launch that cannot run changes nothing on the host.
async function main(given: RouterConfig): Promise<void> {
  const cfg = { ...given, nickname: given.nickname || hostname() };
  mkdirSync(cfg.dataDir, { recursive: true });
  const unlock = lockDataDir(cfg.dataDir);
  // From the environment or a file, never the command line or the log; the file is read again at each restart.
  cfg.password = process.env.WEAVE_PASSWORD || (cfg.passwordFile ? readPasswordFile(cfg.passwordFile) : undefined);
  // Sealed datagrams carry a header and a tag more: the overlay MTU leaves room for them.
  const mtu = cfg.mtu ?? (await underlayMtu()) - VXLAN_OVERHEAD - (cfg.password ? SEAL_OVERHEAD : 0);
  const vxlanPeers = cfg.vxlanPeers.map((p) => parseVxlanPeer(p, cfg.udpPort));
  if (cfg.proxy) await checkProxy(cfg.dataDir, { tcp: cfg.proxyTcp, adapters: cfg.proxyAdapters });
  const { datapath, why } = await openDatapath(
    cfg.datapath,
    { vni: cfg.vni, udpPort: cfg.udpPort, mtu, vxlanPeers, encrypt: !!cfg.password },
    cfg.port,
  );
  const control = await ControlPlane.create({
    dataDir: cfg.dataDir,
    nickname: cfg.nickname,
    port: cfg.port,
    udpPort: cfg.udpPort,
    sleevePort: datapath.sleevePort,
    mtu,
    datapath: datapath.name,
    password: cfg.password,
    connLimit: cfg.connLimit,
    discovery: cfg.discovery,
  });
  if (!cfg.password && cfg.trustedSubnets.length)
    log.warn('--trusted-subnets has no effect without a password: the data plane is not encrypted');
  const native = loadNative();
  const data = new DataPlane(
    mtu,
    cfg.vni,
    datapath,
    control,
    cfg.password
      ? {
          password: cfg.password,
          trustedSubnets: cfg.trustedSubnets.map((t) => parseSubnet(t)),
          rotateMs: cfg.keyRotationMs,
          aes: native.ok && native.aesGcmHardware,
        }
      : undefined,
  );
  const ipam = new IpamService(
    control,
    cfg.dataDir,
    {
      range: cfg.ipallocRange,
      defaultSubnet: cfg.ipallocDefaultSubnet,
      consensus: cfg.ipallocConsensus ?? 1 + cfg.peers.length,
    },
    cfg.nickname,
  );
  const docker = new DockerClient(engineHost(process.env, join(cfg.dataDir, DATA_FILES.proxySocket)));
  const attachments = new Attachments(
    mtu,
    ipam,
    data,
    dockerContainers(docker),
    join(cfg.dataDir, DATA_FILES.attachments),
  );
  const { subsystem: dnsSub, dns } = dnsSubsystem(control, {
    domain: cfg.dnsDomain,
    resolvConf: cfg.resolvConf,
    bridge: BRIDGE,
    inOverlay: (ip) => ipam.inRange(ip),
    addressesOf: (t) => attachments.addressesOf(t),
  });
  attachments.onChange(({ attached, entry }) =>
    attached
      ? dns.register(
          entry.ident,
          entry.names,
          entry.cidrs.map((c) => c.split('/')[0]),
        )
      : dns.unregister(entry.ident),
  );
  // NetworkPolicy: this host's containers with their labels, covered before their interface is made.
  const asPolicyPod = (e: AttachedEntry): LocalContainer => ({
    ident: e.ident,
    // a replica's label is its container's name; a Docker container's is its short id, its name the first of its names
    name: e.container?.startsWith(e.label) ? (e.names[0] ?? e.label) : e.label,
    ips: e.cidrs.map((c) => c.split('/')[0]),
    labels: e.labels ?? {},
  });
  // One table for all: its sections are the published ports', the masquerade's and the policies'.
  const firewall = new NftFirewall();
  const { subsystem: policySub, stacks: stackPolicies } = policySubsystem(
    control,
    firewall,
    {
      list: () => [...attachments.attached.values()].map(asPolicyPod),
      onChange: (l) => attachments.onChange(() => l()),
      beforeAttach: (g) => attachments.beforeAttach((e) => g(asPolicyPod(e))),
    },
    { defaultDeny: cfg.defaultDeny, file: join(cfg.dataDir, DATA_FILES.policy) },
  );
  // Containers ask the router's DNS on the bridge: give the bridge an overlay address when it has none.
  const resolver = async () => {
    const ip = (await bridgeAddresses()).cidrs[0]?.split('/')[0];
    return ip ? { ip } : { ip: (await attachments.expose()).cidrs[0].split('/')[0], undo: () => attachments.hide() };
  };

  const containerDns = { domain: dns.domain, resolver };
  attachments.gateway = async () => (await resolver()).ip;
  const edges = { range: cfg.ipallocRange, bridge: BRIDGE };
  const ports = new PortPublisher(firewall, docker, { ...edges, bridgeAddress: resolver });
  ports.follow(attachments);
  // Membership first: volumes follow its deaths, the scheduler places on its members, replicas follow their volumes.
  const peerNet = {
    name: control.name,
    nickname: (p: string) => control.nickname(p),
    reachable: (p: string) => control.routes.nextHop(p) !== undefined,
  };
  const membership = new MembershipService(peerNet, {
    hostTimeoutMs: cfg.hostTimeoutMs,
    labels: hostLabels(cfg.labels),
    nickname: cfg.nickname,
    file: join(cfg.dataDir, DATA_FILES.membership),
  });
  const volumes = new VolumeManager(
    { ...peerNet, membership, request: (peer, spec, q, timeoutMs) => control.request(peer, spec, q, timeoutMs) },
    {
      open: () =>
        openPool({ dataDir: cfg.dataDir, spec: cfg.volumePool, backend: cfg.volumeBackend, mountNs: cfg.mountNs }),
      stopUsers: (name) => stopVolumeUsers(docker, name),
      users: async (name) =>
        (await volumeUsers(docker, name)).map((c) => c.Names?.[0]?.replace(/^\//, '') ?? c.Id.slice(0, 12)),
      file: join(cfg.dataDir, DATA_FILES.volumes),
      replicateIntervalMs: cfg.replicateIntervalMs,
    },
  );
  const replicaEngine = dockerReplicas(docker, attachments, cfg.nickname, containerDns);
  const scheduler = new Scheduler(peerNet, membership, ipam, replicaEngine, {
    file: join(cfg.dataDir, DATA_FILES.scheduler),
    policies: stackPolicies,
    volumes: {
      home: (v) => volumes.home(v),
      ensure: async (v, n) => {
        if (!volumes.state.live(v)) await volumes.create(v, n);
      },
    },
  });

  // Every subsystem, in start order (stopped in reverse): a new one is one line here.
  const subsystems: Subsystem[] = [
    routerSubsystem(cfg, control, data),
    firewallSubsystem(firewall, { ...edges, masquerade: cfg.masquerade }),
    ipamSubsystem(ipam),
    attachmentsSubsystem(attachments),
    policySub,
    containersSubsystem(docker, attachments, cfg.releaseGraceMs, ports, containerDns),
    ...(cfg.proxy
      ? [
          proxySubsystem(docker, attachments, containerDns, ports, {
            dataDir: cfg.dataDir,
            tcp: cfg.proxyTcp,
            adaptersFile: cfg.proxyAdapters,
          }),
        ]
      : []),
    dnsSub,
    cniSubsystem(attachments, mtu, async () => (await resolver()).ip),
    membershipSubsystem(membership),
    schedulerSubsystem(scheduler),
    volumesSubsystem(volumes, { pluginDir: cfg.pluginDir, resolveHost: (h) => control.resolvePeer(h) }),
    networkPluginSubsystem(docker, attachments, ipam, volumes.plugin(), {
      pluginDir: cfg.pluginDir,
      managedSocket: cfg.managedPluginSocket,
      mtu,
      mountNs: cfg.mountNs,
    }),
  ];
  await registerGossip(control, subsystems);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping');
    for (const s of [...subsystems].reverse()) if (s.stop) await stopStep(s.name, () => s.stop!());
    await stopStep('the control plane', () => control.stop());
    await stopStep('the data plane', () => data.stop());
    api.close();
    rmSync(join(cfg.dataDir, DATA_FILES.pid), { force: true });
    unlock();
    process.exit(0);
  };
  const api = await startApi(cfg.httpAddr, {
    subsystems,
    stop,
    onChange: (listener) => control.on('routes', listener),
  });
  await control.start(cfg.peers);
  await ensureBridge(mtu);
  await data.start();
  for (const s of subsystems) await s.start?.();
  writeFileAtomic(join(cfg.dataDir, DATA_FILES.pid), `${process.pid}\n`);
  process.send?.('ready'); // to the supervisor: from now on a death is worth a restart
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log.info(
    `router ${control.name}(${cfg.nickname}) up: datapath ${datapath.name} (${why}), MTU ${mtu}, VNI ${cfg.vni}, control TCP ${cfg.port}, data UDP ${cfg.udpPort}${datapath.sleevePort !== cfg.udpPort ? ` (relayed frames: UDP ${datapath.sleevePort})` : ''}, API ${cfg.httpAddr}, control plane noise${cfg.password ? ' with a password' : ''}, data plane ${cfg.password ? 'encrypted' : 'unencrypted'}`,
  );
}

/**
 * A step of stopping that has not finished in this long is left behind, said in the log: the
 * process exits anyway, and `weave stop` waits 10 s for it. (In CI, once, a router's stop never
 * finished, at a step nobody logged, and `weave reset` failed.)
 */
const STOP_STEP_MS = 3000;

async function stopStep(what: string, step: () => Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_STEP_MS);
  });
  const done = step().then(
    () => false,
    (err: Error) => {
      log.warn(`stopping ${what}: ${err.message}`);
      return false;
    },
  );
  if (await Promise.race([done, late]))
    log.warn(`stopping ${what}: not done after ${STOP_STEP_MS / 1000} s; going on without it`);
  clearTimeout(timer);
}

main(withDefaults(JSON.parse(process.argv[2] ?? '{}') as Partial<RouterConfig>)).catch((err: Error) => {
  process.stderr.write(`fatal: ${err.message}\n`);
  process.exit(1);
});
