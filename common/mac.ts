// MAC addresses are handled as 48-bit numbers on the hot path: a Map keyed by number is cheaper than one keyed by
// string.
export type Mac = number;

export const readMac = (buf: Buffer, offset: number): Mac => buf.readUIntBE(offset, 6);

/** Group bit (broadcast and multicast): the lowest bit of the first octet. */
export const isGroupMac = (buf: Buffer, offset: number): boolean => (buf[offset] & 1) === 1;

export function formatMac(mac: Mac): string {
  return mac
    .toString(16)
    .padStart(12, '0')
    .replace(/(..)(?!$)/g, '$1:');
}

export function parseMac(text: string): Mac {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(text)) throw new Error(`invalid MAC address "${text}"`);
  return parseInt(text.replace(/:/g, ''), 16);
}

export const isUnicastMac = (text: string): boolean => /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/i.test(text);
