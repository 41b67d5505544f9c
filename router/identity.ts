import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../common/files.js';

const NAME = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** This router's peer name (MAC-shaped, as Weave's are), made once and kept in the data directory. */
export function loadOrCreatePeerName(file: string): string {
  if (existsSync(file)) {
    const name = readFileSync(file, 'utf8').trim();
    if (!NAME.test(name)) throw new Error(`${file} is corrupt: "${name.slice(0, 40)}" is not a peer name`);
    return name;
  }
  const b = randomBytes(6);
  b[0] = (b[0] & 0xfe) | 0x02; // locally administered, unicast
  const name = [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
  writeFileAtomic(file, name + '\n');
  return name;
}
