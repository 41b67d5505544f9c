export interface Cidr {
  ip: string;
  prefix: number;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export const isIPv4 = (text: string): boolean => IPV4.test(text);

/** Parses an IPv4 address with prefix length, e.g. 10.32.1.5/12. */
export function parseCidr(text: string): Cidr {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(text);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32)
    throw new Error(`invalid CIDR "${text}": expected an IPv4 address with prefix length, e.g. 10.32.1.5/12`);
  return { ip: m[1], prefix: Number(m[2]) };
}

export const formatCidr = (c: Cidr): string => `${c.ip}/${c.prefix}`;
