import type { DatapathChoice } from '../contract/config.js';
import { run } from '../common/exec.js';
import { loadNative } from '../native/netlink.js';
import type { Datapath, DatapathConfig } from './datapath.js';
import { Fastdp, vxlanDevice, vxlanSettings } from './fastdp.js';
import { SleevePcap } from './sleeve-pcap.js';

/**
 * Takes the datapath's ports. auto prefers fastdp and falls back to sleeve-pcap when the kernel or
 * the native addon cannot do it, saying why; a port in use is an error for every choice. A fastdp
 * host takes relayed frames on the control port's number over UDP (the kernel has the VXLAN port),
 * as Weave's sleeve did.
 */
export async function openDatapath(choice: DatapathChoice, cfg: Omit<DatapathConfig, 'sleevePort'>, controlPort: number): Promise<{ datapath: Datapath; why: string }> {
  if (choice !== 'sleeve-pcap') {
    const native = loadNative();
    let failed: string;
    if (native.ok) {
      try {
        return { datapath: await Fastdp.open({ ...cfg, sleevePort: controlPort }, native.netlink), why: choice === 'auto' ? 'the kernel can do it' : 'asked for' };
      } catch (err) {
        if (choice === 'fastdp' || /in use/.test((err as Error).message)) throw err;
        failed = (err as Error).message;
      }
    } else {
      if (choice === 'fastdp') throw new Error(`fastdp needs the native addon: ${native.reason}`);
      failed = native.reason;
    }
    return { datapath: await openSleeve(cfg), why: `fastdp is not possible here: ${failed}` };
  }
  return { datapath: await openSleeve(cfg), why: 'asked for' };
}

/** A vxlan device a fastdp router left holds the VXLAN port: the sleeve takes it back. */
async function openSleeve(cfg: Omit<DatapathConfig, 'sleevePort'>): Promise<SleevePcap> {
  const dev = vxlanDevice(cfg.udpPort);
  if (await vxlanSettings(dev)) await run(['ip', 'link', 'del', 'dev', dev]);
  return SleevePcap.open({ ...cfg, sleevePort: cfg.udpPort });
}
