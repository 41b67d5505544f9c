import { hash } from 'node:crypto';

/**
 * The rendezvous (highest-random-weight) weight of a host for a key: the top 53 bits of sha256, exact as a JS number.
 */
export function score(key: string, host: string): number {
  const d = hash('sha256', `${key}|${host}`, 'buffer');
  return (d.readUInt32BE(0) >>> 11) * 2 ** 32 + d.readUInt32BE(4);
}
