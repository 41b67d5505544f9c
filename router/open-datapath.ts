import type { DatapathChoice } from './options.js';
import { run } from '../common/exec.js';
import { loadNative } from '../native/addon.js';
import type { Datapath, DatapathConfig } from './datapath.js';
import { Fastdp, vxlanDevice, vxlanSettings } from './fastdp.js';
import { NativeIo } from './native-io.js';
import { PcapIo } from './pcap-io.js';
import { Sleeve } from './sleeve.js';

type Config = Omit<DatapathConfig, 'sleevePort'>;

/**
 * Takes the datapath's ports. auto prefers fastdp, then the native sleeve, then sleeve-pcap, and
 * says why it passed over each; a port in use is an error for every choice. A fastdp host takes
 * relayed frames on the control port's number over UDP (the kernel has the VXLAN port), as Weave's
 * sleeve did.
 */
export async function openDatapath(
  choice: DatapathChoice,
  cfg: Config,
  controlPort: number,
): Promise<{ datapath: Datapath; why: string }> {
  if (choice === 'sleeve-pcap') return { datapath: await openSleeve(cfg, 'pcap'), why: 'asked for' };
  if (choice === 'sleeve') return { datapath: await openSleeve(cfg, 'native'), why: 'asked for' };
  const native = loadNative();
  // The kernel's vxlan cannot seal frames: encryption is the native sleeve's (or sleeve-pcap's) work.
  if (cfg.encrypt) {
    const fastdp = 'fastdp does not encrypt: with a password every frame is sealed in userspace';
    if (!native.ok)
      return {
        datapath: await openSleeve(cfg, 'pcap'),
        why: `${fastdp}, and the native sleeve is not possible here: ${native.reason}`,
      };
    return { datapath: await openSleeve(cfg, 'native'), why: fastdp };
  }
  if (choice === 'fastdp' && !native.ok) throw new Error(`fastdp needs the native addon: ${native.reason}`);
  const passed: string[] = [];
  const attempt = async (name: string, open: () => Promise<Datapath>): Promise<Datapath | undefined> => {
    try {
      return await open();
    } catch (err) {
      if (choice !== 'auto' || /in use/.test((err as Error).message)) throw err;
      passed.push(`${name} is not possible here: ${(err as Error).message}`);
      return undefined;
    }
  };
  if (native.ok) {
    const fastdp = await attempt('fastdp', () => Fastdp.open({ ...cfg, sleevePort: controlPort }, native.netlink));
    if (fastdp) return { datapath: fastdp, why: choice === 'auto' ? 'the kernel can do it' : 'asked for' };
    const sleeve = await attempt('sleeve', () => openSleeve(cfg, 'native'));
    if (sleeve) return { datapath: sleeve, why: passed.join('; ') };
  } else {
    passed.push(`fastdp and sleeve are not possible here: ${native.reason}`);
  }
  return { datapath: await openSleeve(cfg, 'pcap'), why: passed.join('; ') };
}

/** A vxlan device a fastdp router left holds the VXLAN port: a sleeve takes it back. */
async function openSleeve(cfg: Config, io: 'native' | 'pcap'): Promise<Sleeve> {
  const dev = vxlanDevice(cfg.udpPort);
  if (await vxlanSettings(dev)) await run(['ip', 'link', 'del', 'dev', dev]);
  const c = { ...cfg, sleevePort: cfg.udpPort };
  return new Sleeve(c, io === 'native' ? NativeIo.open(c) : await PcapIo.open(c.udpPort, { encrypt: c.encrypt }));
}
