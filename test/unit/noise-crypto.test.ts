import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { pureJsCrypto } from '@chainsafe/libp2p-noise';
import { noiseCrypto } from '../../gossip/noise-crypto.js';

describe('noise crypto (KeyObjects kept, node HKDF)', () => {
  it('agrees with the pure-JS reference on HKDF', () => {
    for (let i = 0; i < 20; i++) {
      const ck = randomBytes(32),
        ikm = randomBytes(i === 0 ? 0 : 32);
      assert.deepEqual(
        noiseCrypto.getHKDF(ck, ikm).map((b) => Buffer.from(b).toString('hex')),
        pureJsCrypto.getHKDF(ck, ikm).map((b) => Buffer.from(b).toString('hex')),
      );
    }
  });

  it('makes key pairs whose shared secrets agree with the reference, from either end', () => {
    for (let i = 0; i < 20; i++) {
      const a = noiseCrypto.generateX25519KeyPair(),
        b = pureJsCrypto.generateX25519KeyPair();
      assert.deepEqual(
        pureJsCrypto.generateX25519KeyPairFromSeed(a.privateKey).publicKey,
        a.publicKey,
        "the public key is the private key's",
      );
      const ours = Buffer.from(noiseCrypto.generateX25519SharedKey(a.privateKey, b.publicKey));
      assert.equal(
        ours.toString('hex'),
        Buffer.from(pureJsCrypto.generateX25519SharedKey(b.privateKey, a.publicKey)).toString('hex'),
      );
      // A private key it did not make (its own copy, or the peer's) still works, the slow way.
      assert.equal(
        Buffer.from(noiseCrypto.generateX25519SharedKey(Uint8Array.from(a.privateKey), b.publicKey)).toString('hex'),
        ours.toString('hex'),
      );
    }
  });
});
