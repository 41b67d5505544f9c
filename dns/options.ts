import { resolve } from 'node:path';
import { text } from '../common/options.js';

/** A DNS domain as a user writes it (weave.local or weave.local.): stored lower case, without the dot. */
export function parseDomain(text: string): string {
  const d = text.toLowerCase().replace(/\.$/, '');
  if (!/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(d) || d.length > 200)
    throw new Error(`invalid DNS domain "${text}": expected a name like weave.local`);
  return d;
}

export const dnsOptions = {
  dnsDomain: text('--dns-domain <domain>', 'the cluster DNS domain containers are named in', {
    default: 'weave.local',
    check: parseDomain,
  }),
  resolvConf: text('--resolv-conf <file>', 'where the resolvers for other names are listed', {
    default: '/etc/resolv.conf',
    check: (v) => resolve(v),
  }),
};
