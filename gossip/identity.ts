import { existsSync, readFileSync } from 'node:fs';
import { createHash, scryptSync } from 'node:crypto';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { writeFileAtomic } from '../common/files.js';

/** This router's Ed25519 key, made once and kept in the data directory, so its peer name survives restarts. */
export async function loadOrCreateKey(file: string): Promise<PrivateKey> {
  if (existsSync(file)) {
    try {
      return privateKeyFromProtobuf(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64'));
    } catch (err) {
      throw new Error(`${file} is corrupt (${(err as Error).message}): move it away to start as a new peer`);
    }
  }
  const key = await generateKeyPair('Ed25519');
  writeFileAtomic(file, `${Buffer.from(privateKeyToProtobuf(key)).toString('base64')}\n`);
  return key;
}

/** The private-network key (libp2p pnet swarm key format) derived from a password. */
export function swarmKey(password: string): Uint8Array {
  const key = scryptSync(password, 'weave-ts private network v1', 32);
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${key.toString('hex')}`);
}

/** A short, stable id for a peer name, carried in relayed frames (8 bytes of its hash). */
export const shortId = (peer: string): bigint => createHash('sha256').update(peer).digest().readBigUInt64BE(0);
