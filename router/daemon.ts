import '../common/polyfill.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { startApi } from '../api/http.js';
import { log } from '../common/log.js';
import { writeFileAtomic } from '../common/files.js';
import { ControlPlane } from '../gossip/control-plane.js';
import { IpamService } from '../ipam/service.js';
import { ensureBridge, underlayMtu, VXLAN_OVERHEAD } from './bridge.js';
import { DEFAULTS, RouterConfig } from '../contract/config.js';
import { containerHost } from './container-host.js';
import { DEFAULT_DOCKER_HOST, DockerClient } from '../docker/client.js';
import { ContainerWatcher } from '../docker/watcher.js';
import { Router, validateConfig } from './router.js';
import { SleevePcap } from './sleeve-pcap.js';
import { UdpTransport } from './udp.js';

// The composition root: the only place that knows every part. Ports are taken before the
// bridge is touched, so a launch that cannot run changes nothing on the host.
async function main(cfg: RouterConfig): Promise<void> {
  validateConfig(cfg);
  mkdirSync(cfg.dataDir, { recursive: true });
  cfg.nickname ||= hostname();
  cfg.password = process.env.WEAVE_PASSWORD || undefined; // from the environment, never the command line or the log
  const mtu = cfg.mtu ?? (await underlayMtu()) - VXLAN_OVERHEAD;
  let router: Router | undefined;
  const udp = await UdpTransport.open(cfg.udpPort, (m, ip) => router?.onDatagram(m, ip));
  const control = await ControlPlane.create({ dataDir: cfg.dataDir, nickname: cfg.nickname, port: cfg.port, udpPort: cfg.udpPort,
    password: cfg.password, connLimit: cfg.connLimit, discovery: cfg.discovery });
  const ipam = new IpamService(control, cfg.dataDir, { range: cfg.ipallocRange, defaultSubnet: cfg.ipallocDefaultSubnet, consensus: cfg.ipallocConsensus }, cfg.nickname);
  const docker = new DockerClient(process.env.DOCKER_HOST || DEFAULT_DOCKER_HOST);
  router = new Router(cfg, mtu, new SleevePcap(), udp, control, ipam, docker);
  const watcher = new ContainerWatcher(docker, containerHost(router), cfg.releaseGraceMs ?? DEFAULTS.releaseGraceMs);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping');
    watcher.stop();
    await router!.stop();
    api.close();
    process.exit(0);
  };
  const api = await startApi(cfg.httpAddr, {
    report: () => router!.report(), attach: (b) => router!.attach(b), detach: (b) => router!.detach(b),
    ps: (b) => router!.ps(b), expose: (b) => router!.expose(b), hide: () => router!.hide(),
    connect: async (b) => router!.connect(b), forget: async (b) => router!.forget(b), stop, ipam: router.ipamApi,
    onChange: (listener) => control.on('routes', listener),
  });
  await ipam.start();
  await control.start(cfg.peers);
  await ensureBridge(mtu);
  await router.start();
  await watcher.start();
  writeFileAtomic(join(cfg.dataDir, 'weave.pid'), `${process.pid}\n`);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log.info(`router ${control.name}(${cfg.nickname}) up: datapath sleeve-pcap, MTU ${mtu}, VNI ${cfg.vni}, control TCP ${cfg.port}, data UDP ${cfg.udpPort}, API ${cfg.httpAddr}, encryption ${cfg.password ? 'on' : 'off'}`);
}

main(JSON.parse(process.argv[2] ?? '{}') as RouterConfig).catch((err: Error) => {
  process.stderr.write(`fatal: ${err.message}\n`);
  process.exit(1);
});
