import { isIPv4 } from './cidr.js';

/** IPv4 addresses as unsigned 32-bit numbers, ranges as [start, end) in those numbers. */
export const ipToNum = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
export const numToIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

export interface Subnet {
  start: number;
  end: number;
  prefix: number;
  text: string;
}

/** Parses a network CIDR such as 10.32.0.0/12; the address must be the network's first. */
export function parseSubnet(text: string, what = 'range'): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32 || Number(m[2]) < 8)
    throw new Error(`invalid ${what} "${text}": expected a network like 10.32.0.0/12`);
  const prefix = Number(m[2]);
  const size = 2 ** (32 - prefix);
  const start = ipToNum(m[1]);
  if (start % size !== 0)
    throw new Error(`invalid ${what} "${text}": ${m[1]} is not the first address of a /${prefix}`);
  return { start, end: start + size, prefix, text };
}

/** Whether addr lies in [start, end): a subnet, or any range of addresses. */
export const contains = (r: { start: number; end: number }, addr: number): boolean => addr >= r.start && addr < r.end;

export const within = (inner: Subnet, outer: Subnet): boolean => inner.start >= outer.start && inner.end <= outer.end;

/** Addresses that may be handed out in a subnet: not its network or broadcast address. */
export const usable = (s: Subnet): [number, number] =>
  s.end - s.start > 2 ? [s.start + 1, s.end - 1] : [s.start, s.end];
