import '../common/polyfill.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { startApi } from '../api/http.js';
import { log } from '../common/log.js';
import { writeFileAtomic } from '../common/files.js';
import { ensureBridge, underlayMtu, VXLAN_OVERHEAD } from './bridge.js';
import { RouterConfig } from './config.js';
import { ControlPlane } from './control.js';
import { loadOrCreatePeerName } from './identity.js';
import { Router, validateConfig } from './router.js';
import { SleevePcap } from './sleeve-pcap.js';
import { UdpTransport } from './udp.js';

// The composition root: the only place that knows every part. Ports are taken before the
// bridge is touched, so a launch that cannot run changes nothing on the host.
async function main(cfg: RouterConfig): Promise<void> {
  validateConfig(cfg);
  mkdirSync(cfg.dataDir, { recursive: true });
  const name = loadOrCreatePeerName(join(cfg.dataDir, 'peer-name'));
  const nickname = cfg.nickname || hostname();
  const mtu = cfg.mtu ?? (await underlayMtu()) - VXLAN_OVERHEAD;
  let router: Router | undefined;
  const udp = await UdpTransport.open(cfg.udpPort, (m, ip) => router?.onDatagram(m, ip));
  const control = new ControlPlane({ name, nickname, udpPort: cfg.udpPort, controlPort: cfg.port, vni: cfg.vni }, cfg.discovery);
  await control.listen();
  router = new Router({ ...cfg, nickname }, name, mtu, new SleevePcap(), udp, control);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping');
    await router!.stop();
    api.close();
    process.exit(0);
  };
  const api = await startApi(cfg.httpAddr, {
    report: () => router!.report(), attach: (b) => router!.attach(b), detach: (b) => router!.detach(b), stop,
  });
  await ensureBridge(mtu);
  await router.start();
  writeFileAtomic(join(cfg.dataDir, 'weave.pid'), `${process.pid}\n`);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  log.info(`router ${name}(${nickname}) up: datapath sleeve-pcap, MTU ${mtu}, VNI ${cfg.vni}, control TCP ${cfg.port}, data UDP ${cfg.udpPort}, API ${cfg.httpAddr}`);
}

main(JSON.parse(process.argv[2] ?? '{}') as RouterConfig).catch((err: Error) => {
  process.stderr.write(`fatal: ${err.message}\n`);
  process.exit(1);
});
