import { parseCidr } from './cidr.js';
import { parseSubnet } from './subnet.js';

/** Addresses as Weave writes them: 10.32.1.5/12, net:10.40.0.0/16, net:default. */
export const isAddressSpec = (a: string): boolean => a.startsWith('net:') || /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(a);

export function checkAddressSpec(a: string): void {
  if (a.startsWith('net:')) {
    if (a !== 'net:default') parseSubnet(a.slice(4), 'subnet');
  } else parseCidr(a);
}
