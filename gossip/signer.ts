import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';

/** Signs as this peer and checks another peer's signature: what relayed requests need to be believed. */
export interface Signer {
  sign(data: Uint8Array): Promise<Uint8Array>;
  /** False for a bad signature, or a peer name that carries no public key. */
  verify(peer: string, data: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

/** A router's peer name is its Ed25519 public key (a libp2p peer id): no key exchange is needed. */
export function peerKeySigner(key: PrivateKey): Signer {
  return {
    sign: async (data) => key.sign(data),
    verify: async (peer, data, signature) => {
      try {
        const pub = peerIdFromString(peer).publicKey;
        return !!pub && (await pub.verify(data, signature));
      } catch { return false; }
    },
  };
}
