import { createHash, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { log } from '../common/log.js';
import type { weave } from '../proto/gen/weave.js';

export type Cipher = 'chacha20-poly1305' | 'aes-256-gcm';
export interface DirectionKey {
  id: number;
  key: Buffer;
}
/**
 * How frames to and from one neighbour go: sealed (tx: ours; rx: the newest first, the one before kept while it
 * drains), or plain (both trust each other's address).
 */
export type PeerSecurity = { plain: true } | { plain: false; cipher: Cipher; tx: DirectionKey; rx: DirectionKey[] };

export interface PeerKeyReport {
  encryption: Cipher | 'none (trusted subnet)' | 'pending';
  epoch: number;
  rotations: number;
  ageSeconds: number;
}

export interface DataKeysDeps {
  self: string;
  password: string;
  /** --trusted-subnets: whether an address is in one. */
  trusts(ip: string): boolean;
  /** AES-GCM in hardware here (native sleeve) */
  aes: boolean;
  ask(peer: string, req: weave.IDataKeyRequest): Promise<weave.IDataKeyReply>;
  install(peer: string, s: PeerSecurity | undefined): void;
  rotateMs: number;
  /** Datagrams sent to a neighbour so far: keys are agreed again after ROTATE_FRAMES of them too. */
  sent(peer: string): number;
}

/** AES-GCM's and ChaCha20-Poly1305's comfortable use of one key: new keys well before it is worn. */
export const ROTATE_FRAMES = 2 ** 32;

// An X25519 public key as DER (SubjectPublicKeyInfo): this prefix, then the 32 raw bytes.
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const rawPublic = (k: KeyObject): Buffer => k.export({ format: 'der', type: 'spki' }).subarray(X25519_SPKI.length);
/** The responder keeps sending under the old key this long, so the asker has the new one when it arrives. */
const SWITCH_MS = 1000;
const NUDGE_AFTER_MS = 3000;
const newPeer = (ip: string): Peer => ({
  ip,
  epoch: 0,
  since: Date.now(),
  sentAt: 0,
  rotations: 0,
  busy: false,
  asked: 0,
});

interface Peer {
  ip: string;
  epoch: number;
  state?: PeerSecurity;
  since: number;
  sentAt: number;
  rotations: number;
  busy: boolean;
  asked: number;
  /** The answering side's keys with the new sending key, installed when switchTimer fires. */
  pending?: PeerSecurity;
  switchTimer?: NodeJS.Timeout;
}

/**
 * The keys of the encrypted data plane, per pair of neighbours and per direction: an ephemeral
 * X25519 exchange over the control connection (noise: private, and authenticated to both peer
 * identities), bound to both names and the epoch and mixed with the password through HKDF-SHA256.
 * The lower-named peer of each pair asks, at first and every rotateMs after; both keep the previous
 * receive key while frames sealed under it drain, so a rotation leaves no gap.
 */
export class DataKeys {
  private readonly peers = new Map<string, Peer>();
  private readonly salt: Buffer;
  private timer?: NodeJS.Timeout;

  constructor(private readonly d: DataKeysDeps) {
    this.salt = createHash('sha256').update('weave-ts data plane\0').update(d.password).digest();
  }

  // Checked four times per period (at most once a second): a check once a second turned a 1 s rotation into 1-2 s.
  start(): void {
    this.timer = setInterval(() => this.tick(), Math.max(100, Math.min(1000, this.d.rotateMs / 4)));
  }
  stop(): void {
    clearInterval(this.timer);
    for (const p of this.peers.values()) clearTimeout(p.switchTimer);
  }

  /** The neighbours, each time they change. */
  setNeighbours(list: { name: string; ip: string }[]): void {
    const now = new Map(list.map((n) => [n.name, n.ip]));
    for (const [name, p] of this.peers) {
      if (p.ip === '' && now.has(name)) p.ip = now.get(name)!; // it asked before we saw it connected
      if (now.get(name) === p.ip) continue;
      clearTimeout(p.switchTimer);
      this.peers.delete(name);
      this.d.install(name, undefined);
    }
    for (const [name, ip] of now) if (!this.peers.has(name)) this.peers.set(name, newPeer(ip));
    this.tick();
  }

  /** The lower-named end asks when it has no keys or they are due; the other nudges it when it has none. */
  private tick(): void {
    const now = Date.now();
    for (const [name, p] of this.peers) {
      if (p.busy) continue;
      if (this.d.self < name) {
        if (
          !p.state ||
          (!p.state.plain && (now - p.since >= this.d.rotateMs || this.d.sent(name) - p.sentAt >= ROTATE_FRAMES))
        )
          void this.exchange(name, p);
      } else if (!p.state && now - p.since >= NUDGE_AFTER_MS && now - p.asked >= NUDGE_AFTER_MS) {
        p.asked = now;
        this.d.ask(name, { nudge: true }).catch(() => {
          /* it asks again on its own */
        });
      }
    }
  }

  private async exchange(name: string, p: Peer): Promise<void> {
    p.busy = true;
    const epoch = p.epoch + 1;
    const mine = generateKeyPairSync('x25519');
    const trusts = this.d.trusts(p.ip);
    try {
      const r = await this.d.ask(name, { epoch, publicKey: rawPublic(mine.publicKey), aes: this.d.aes, trusts });
      if (this.peers.get(name) !== p) return;
      const theirs = Buffer.from(r.publicKey ?? []);
      const keys = this.derive(
        mine.privateKey,
        theirs,
        epoch,
        [this.d.self, rawPublic(mine.publicKey)],
        [name, theirs],
      );
      this.installed(
        name,
        p,
        epoch,
        trusts && r.trusts
          ? { plain: true }
          : {
              plain: false,
              cipher: this.cipherWith(r),
              tx: { id: epoch & 255, key: keys.lowToHigh },
              rx: this.rxWith(p, { id: epoch & 255, key: keys.highToLow }),
            },
      );
    } catch (err) {
      log.warn(`data plane keys with ${name}: ${(err as Error).message} (asking again)`);
    } finally {
      p.busy = false;
    }
  }

  /** A neighbour's request (it is the lower-named one), or its nudge. */
  async handle(from: string, req: weave.IDataKeyRequest): Promise<weave.IDataKeyReply> {
    let p = this.peers.get(from);
    if (req.nudge) {
      if (p && this.d.self < from && !p.busy) void this.exchange(from, p);
      return {};
    }
    if (!(from < this.d.self)) throw new Error('only the lower-named peer of a pair asks');
    // It may ask before our routes show the connection: its address (for --trusted-subnets) comes with them.
    if (!p) this.peers.set(from, (p = newPeer('')));
    const epoch = req.epoch ?? 0;
    const mine = generateKeyPairSync('x25519');
    const theirs = Buffer.from(req.publicKey ?? []);
    const keys = this.derive(mine.privateKey, theirs, epoch, [from, theirs], [this.d.self, rawPublic(mine.publicKey)]);
    const trusts = this.d.trusts(p.ip);
    // A switch still pending is done now: the asker has had those keys since it got our last answer.
    if (p.pending) {
      clearTimeout(p.switchTimer);
      this.installed(from, p, p.epoch, p.pending);
      p.pending = undefined;
    }
    if (trusts && req.trusts) this.installed(from, p, epoch, { plain: true });
    else {
      const cipher = this.cipherWith(req);
      const rx = this.rxWith(p, { id: epoch & 255, key: keys.lowToHigh });
      const next: PeerSecurity = { plain: false, cipher, tx: { id: epoch & 255, key: keys.highToLow }, rx };
      const old = p.state;
      // Until the asker has our answer, our frames stay under the key it can open.
      if (old && !old.plain && old.cipher === cipher) {
        this.installed(from, p, epoch, { ...next, tx: old.tx });
        p.pending = next;
        p.switchTimer = setTimeout(
          () => {
            if (p.pending === next) {
              p.pending = undefined;
              this.installed(from, p, epoch, next);
            }
          },
          Math.min(SWITCH_MS, this.d.rotateMs / 2),
        );
      } else this.installed(from, p, epoch, next);
    }
    return { publicKey: rawPublic(mine.publicKey), aes: this.d.aes, trusts };
  }

  private installed(name: string, p: Peer, epoch: number, s: PeerSecurity): void {
    if (p.state && p.epoch !== epoch) p.rotations++;
    p.epoch = epoch;
    p.state = s;
    p.since = Date.now();
    p.sentAt = this.d.sent(name);
    this.d.install(name, s);
  }

  /** AES-GCM when both ends have it in hardware, else ChaCha20-Poly1305. */
  private cipherWith(other: { aes?: boolean | null }): Cipher {
    return this.d.aes && other.aes ? 'aes-256-gcm' : 'chacha20-poly1305';
  }

  /** The new receive key first, then the one in use until now (frames sealed under it may still come). */
  private rxWith(p: Peer, key: DirectionKey): DirectionKey[] {
    const prev = p.state && !p.state.plain ? p.state.rx[0] : undefined;
    return prev && prev.id !== key.id ? [key, prev] : [key];
  }

  /**
   * Both directions' keys: HKDF over the shared secret, salted with the password, bound to both names, the epoch and
   * both public keys.
   */
  private derive(
    priv: KeyObject,
    theirs: Buffer,
    epoch: number,
    low: [string, Buffer],
    high: [string, Buffer],
  ): { lowToHigh: Buffer; highToLow: Buffer } {
    if (theirs.length !== 32) throw new Error('bad public key');
    const shared = diffieHellman({
      privateKey: priv,
      publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI, theirs]), format: 'der', type: 'spki' }),
    });
    if (shared.every((b) => b === 0)) throw new Error('degenerate public key');
    const info = Buffer.concat([Buffer.from(`weave-ts data keys\0${epoch}\0${low[0]}\0${high[0]}\0`), low[1], high[1]]);
    const okm = Buffer.from(hkdfSync('sha256', shared, this.salt, info, 64));
    return { lowToHigh: okm.subarray(0, 32), highToLow: okm.subarray(32, 64) };
  }

  report(): Record<string, PeerKeyReport> {
    const now = Date.now();
    return Object.fromEntries(
      [...this.peers].map(([name, p]) => [
        name,
        {
          encryption: !p.state ? 'pending' : p.state.plain ? 'none (trusted subnet)' : p.state.cipher,
          epoch: p.epoch,
          rotations: p.rotations,
          ageSeconds: Math.round((now - p.since) / 1000),
        },
      ]),
    );
  }
}
