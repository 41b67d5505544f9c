import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { Cipher, PeerSecurity } from './data-keys.js';

// The sealed datagram (native/src/seal.h has the layout): 'E', key id, six zero bytes, a 64-bit
// counter (the AEAD nonce is four zero bytes and these eight), the inner datagram encrypted, a
// 16-byte tag over the header and the inner datagram. The same format in Node's crypto, for the
// sleeve-pcap datapath.
export const SEAL_TYPE = 0x45;
export const SEAL_HEADER = 16;
export const SEAL_TAG = 16;
/** What sealing adds to a datagram: the overlay MTU is that much smaller with encryption. */
export const SEAL_OVERHEAD = SEAL_HEADER + SEAL_TAG;
const WINDOW = 4096;

/**
 * Which counters were taken under one key: the highest, H, and the WINDOW before it (as native/src/seal.h: H - WINDOW
 * .. H).
 */
export class ReplayWindow {
  private top = 0; // H + 1
  private readonly seen = new Uint8Array(WINDOW + 1);

  check(c: number): 'fresh' | 'replay' | 'too-old' {
    if (c >= this.top) return 'fresh';
    if (c + WINDOW + 1 < this.top) return 'too-old';
    return this.seen[c % (WINDOW + 1)] ? 'replay' : 'fresh';
  }

  accept(c: number): void {
    if (c >= this.top) {
      for (let i = this.top; i < c && i <= this.top + WINDOW; i++) this.seen[i % (WINDOW + 1)] = 0;
      this.top = c + 1;
    }
    this.seen[c % (WINDOW + 1)] = 1;
  }
}

interface RxKey {
  id: number;
  key: Buffer;
  window: ReplayWindow;
}

/** One neighbour's keys, as the sleeve-pcap datapath seals to it and opens from it. */
export class PeerSeal {
  private counter = 0;
  private readonly rx: RxKey[];

  constructor(
    readonly cipher: Cipher,
    private readonly tx: { id: number; key: Buffer },
    rx: { id: number; key: Buffer }[],
    before?: PeerSeal,
  ) {
    // A receive key it had before keeps its window: a rotation must not open the door to replays.
    this.rx = rx.map(
      (k) => before?.rx.find((o) => o.id === k.id && o.key.equals(k.key)) ?? { ...k, window: new ReplayWindow() },
    );
    if (before?.tx.key.equals(tx.key)) this.counter = before.counter;
  }

  static of(s: PeerSecurity | undefined, before: PeerSeal | 'plain' | undefined): PeerSeal | 'plain' | undefined {
    if (!s) return undefined;
    return s.plain ? 'plain' : new PeerSeal(s.cipher, s.tx, s.rx, before instanceof PeerSeal ? before : undefined);
  }

  seal(inner: Buffer): Buffer {
    const header = Buffer.alloc(SEAL_HEADER);
    header[0] = SEAL_TYPE;
    header[1] = this.tx.id;
    const c = this.counter++;
    header.writeUInt32BE(Math.floor(c / 2 ** 32), 8);
    header.writeUInt32BE(c >>> 0, 12);
    const cipher = encryptor(this.cipher, this.tx.key, nonce(header));
    cipher.setAAD(header);
    return Buffer.concat([header, cipher.update(inner), cipher.final(), cipher.getAuthTag()]);
  }

  /** The inner datagram, or why the datagram is dropped. */
  open(d: Buffer): Buffer | 'truncated' | 'no-key' | 'auth' | 'replay' | 'too-old' {
    if (d.length < SEAL_HEADER + SEAL_TAG || d[0] !== SEAL_TYPE || d.readUInt16BE(2) || d.readUInt32BE(4))
      return 'truncated';
    const k = this.rx.find((r) => r.id === d[1]);
    if (!k) return 'no-key';
    const c = d.readUInt32BE(8) * 2 ** 32 + d.readUInt32BE(12);
    const verdict = k.window.check(c);
    if (verdict !== 'fresh') return verdict;
    const header = d.subarray(0, SEAL_HEADER);
    const decipher = decryptor(this.cipher, k.key, nonce(header));
    decipher.setAAD(header);
    decipher.setAuthTag(d.subarray(d.length - SEAL_TAG));
    let inner: Buffer;
    try {
      inner = Buffer.concat([decipher.update(d.subarray(SEAL_HEADER, d.length - SEAL_TAG)), decipher.final()]);
    } catch {
      return 'auth';
    }
    k.window.accept(c);
    return inner;
  }
}

// Node's typings take each AEAD by its own name: one branch per cipher.
const encryptor = (c: Cipher, key: Buffer, iv: Buffer) =>
  c === 'aes-256-gcm'
    ? createCipheriv(c, key, iv, { authTagLength: SEAL_TAG })
    : createCipheriv(c, key, iv, { authTagLength: SEAL_TAG });
const decryptor = (c: Cipher, key: Buffer, iv: Buffer) =>
  c === 'aes-256-gcm'
    ? createDecipheriv(c, key, iv, { authTagLength: SEAL_TAG })
    : createDecipheriv(c, key, iv, { authTagLength: SEAL_TAG });
const nonce = (header: Buffer): Buffer => Buffer.concat([Buffer.alloc(4), header.subarray(8, 16)]);
