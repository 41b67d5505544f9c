import { extend, option, text } from '../common/options.js';
import { parseSubnet, within } from '../common/subnet.js';

const subnetArg = (what: string) => (v: string) => parseSubnet(v, `${what} value`).text;

export const ipamOptions = {
  ipallocRange: text(
    '--ipalloc-range <cidr>',
    'the range IPAM hands container addresses out of, the same on every peer',
    { default: '10.32.0.0/12', check: subnetArg('--ipalloc-range') },
  ),
  ipallocDefaultSubnet: extend(
    text(
      '--ipalloc-default-subnet <cidr>',
      'the subnet of the range used when none is asked for (default: the whole range)',
      { check: subnetArg('--ipalloc-default-subnet') },
    ),
    {
      check: (v: string, cfg) => {
        const range = String(cfg.ipallocRange ?? ipamOptions.ipallocRange.default);
        if (!within(parseSubnet(v), parseSubnet(range)))
          throw new Error(`--ipalloc-default-subnet ${v} is outside --ipalloc-range ${range}`);
      },
    },
  ),
  /** Unset: 1 + the peers given to launch (the daemon fills it in). */
  ipallocConsensus: option<number | undefined>({
    flag: '--ipalloc-init <consensus=N>',
    help: 'how many peers must be reachable before the range is first split (default: 1 + the peers given here)',
    parse: (v) => {
      const m = /^consensus=(\d+)$/.exec(v);
      if (!m || Number(m[1]) < 1) throw new Error(`invalid --ipalloc-init "${v}": expected consensus=N with N >= 1`);
      return Number(m[1]);
    },
  }),
};
