import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';

/** Signs as this peer and checks another peer's signature: what relayed requests need to be believed. */
export interface Signer {
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** False for a bad signature, or a peer name that carries no public key. */
  verify(peer: string, data: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const bytes = (m: Uint8Array | { subarray(): Uint8Array }): Uint8Array => (m instanceof Uint8Array ? m : m.subarray());

/**
 * Our Ed25519 key with its node KeyObject made once: @libp2p/crypto imports the key from JWK on
 * every signature (each gossipsub message we publish, each noise handshake), which cost as much as
 * the signing itself. Any other key type is returned as it is.
 */
export function cachedSigningKey(key: PrivateKey): PrivateKey {
  if (key.type !== 'Ed25519' || key.raw.length !== 64) return key;
  const obj = createPrivateKey({
    format: 'jwk',
    key: { kty: 'OKP', crv: 'Ed25519', d: b64url(key.raw.subarray(0, 32)), x: b64url(key.raw.subarray(32)) },
  });
  const wrapped = Object.create(key) as PrivateKey & { sign(m: Uint8Array | { subarray(): Uint8Array }): Uint8Array };
  wrapped.sign = (m) => edSign(null, bytes(m), obj);
  return wrapped;
}

/** Public keys of peers whose signatures we checked, imported once each (bounded: cleared when full). */
const MAX_CACHED_KEYS = 4096;

/** A router's peer name is its Ed25519 public key (a libp2p peer id): no key exchange is needed. */
export function peerKeySigner(key: PrivateKey): Signer {
  const signing = cachedSigningKey(key);
  const keys = new Map<string, KeyObject>();
  return {
    sign: async (data) => signing.sign(data),
    verify: async (peer, data, signature) => {
      try {
        let k = keys.get(peer);
        if (!k) {
          const pub = peerIdFromString(peer).publicKey;
          if (!pub) return false;
          // not a router's kind of key: as libp2p does it
          if (pub.type !== 'Ed25519') return await pub.verify(data, signature);
          k = createPublicKey({ format: 'jwk', key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pub.raw) } });
          if (keys.size >= MAX_CACHED_KEYS) keys.clear();
          keys.set(peer, k);
        }
        return signature.length === 64 && edVerify(null, data, k, signature);
      } catch {
        return false;
      }
    },
  };
}
