import { createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';

/** Each private key we made, as the KeyObject it came from, by the raw bytes noise holds. */
const keyObjects = new WeakMap<Uint8Array, KeyObject>();
const raw = (b: Uint8Array | { subarray(): Uint8Array }): Uint8Array => (b instanceof Uint8Array ? b : b.subarray());

/**
 * noise's crypto on node, with what made its handshakes slow taken out: its default imports the
 * private key from DER for every Diffie-Hellman (three per handshake per side, and our static key
 * is the same each time), which was a tenth of the CPU while a hundred routers connected at once;
 * here the key made is kept as its KeyObject. Keys cross as JWK, not DER: OpenSSL's DER decoders
 * take 95 µs for a public key (10 µs as JWK) and 380 µs for a private one. HKDF is node's, not the pure-JS one.
 */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  getHKDF(ck, ikm) {
    const okm = Buffer.from(hkdfSync('sha256', raw(ikm), ck, Buffer.alloc(0), 96));
    return [okm.subarray(0, 32), okm.subarray(32, 64), okm.subarray(64, 96)];
  },
  generateX25519KeyPair() {
    const { privateKey } = generateKeyPairSync('x25519');
    const jwk = privateKey.export({ format: 'jwk' });
    const priv = new Uint8Array(Buffer.from(jwk.d!, 'base64url'));
    keyObjects.set(priv, privateKey);
    return { publicKey: new Uint8Array(Buffer.from(jwk.x!, 'base64url')), privateKey: priv };
  },
  generateX25519SharedKey(privateKey, publicKey) {
    const mine = privateKey instanceof Uint8Array ? keyObjects.get(privateKey) : undefined;
    if (!mine) return defaultCrypto.generateX25519SharedKey(privateKey, publicKey);
    const theirs = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(raw(publicKey)).toString('base64url') },
      format: 'jwk',
    });
    return diffieHellman({ privateKey: mine, publicKey: theirs });
  },
};
