// A snapshot's bytes between two hosts, over the control plane's requests (noise-encrypted,
// authenticated, relayed along the topology when the hosts are not neighbours). The receiver pulls
// numbered chunks with a few in flight, and writes each to the backend's receive in order: a slow
// disk stops the pulls (backpressure), a lost reply is asked for again by number.
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import type { SendStream } from './backend.js';

export const CHUNK_BYTES = 1 << 20;
/** Chunks asked for before the first of them has arrived. */
const WINDOW = 4;
/** Chunks a sender keeps behind the newest asked for, for a receiver that asks again. */
const KEEP = 2 * WINDOW;
/** A transfer nobody asked anything of for this long is dropped (the receiver died). */
export const IDLE_MS = 30_000;

export interface Chunk {
  data: Uint8Array;
  eof: boolean;
}

/** The sending end: a backend's stream cut into numbered chunks, read only as they are asked for. */
export class Outgoing {
  readonly id = randomBytes(8).toString('hex');
  bytes = 0;
  lastUse = Date.now();
  private next = 0;
  private readonly kept = new Map<number, Promise<Chunk>>();
  private tail: Promise<unknown> = Promise.resolve();
  private readonly it: AsyncIterator<Buffer>;
  private left: Buffer = Buffer.alloc(0);
  private ended = false;

  constructor(
    readonly name: string,
    readonly gen: number,
    readonly to: string,
    private readonly s: SendStream,
  ) {
    this.it = s.data[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    s.done.catch(() => {}); // read (and reported) by the last chunk
    // Start reading now: Node discards what a child process wrote to a pipe nobody listens to when
    // it exits, and a small snapshot's `btrfs send` exits before the receiver's first ask arrives.
    this.chunk(0).catch(() => {});
  }

  chunk(seq: number): Promise<Chunk> {
    this.lastUse = Date.now();
    if (seq < this.next - KEEP) return Promise.reject(new Error(`chunk ${seq} of ${this.name} is no longer kept`));
    while (this.next <= seq) {
      const p = this.tail.then(() => this.read());
      this.tail = p.catch(() => {});
      this.kept.set(this.next++, p);
    }
    for (const k of this.kept.keys()) if (k < seq - KEEP) this.kept.delete(k);
    return this.kept.get(seq)!;
  }

  cancel(): void {
    this.s.cancel();
    this.s.data.destroy();
  }

  private async read(): Promise<Chunk> {
    const parts: Buffer[] = [this.left];
    let size = this.left.length;
    while (size < CHUNK_BYTES && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        await this.s.done; // the producer's failure is the receiver's error
        this.ended = true;
      } else {
        parts.push(r.value);
        size += r.value.length;
      }
    }
    const all = Buffer.concat(parts, size);
    const n = Math.min(CHUNK_BYTES, size);
    this.left = all.subarray(n);
    this.bytes += n;
    return { data: all.subarray(0, n), eof: this.ended && this.left.length === 0 };
  }
}

/**
 * The receiving end: asks for chunks 0, 1, ... (WINDOW at a time) and gives their bytes, in order,
 * to `receive` as one stream. Resolves when the sender said eof and `receive` finished.
 */
export async function pull(
  ask: (seq: number) => Promise<Chunk>,
  receive: (data: Readable) => Promise<void>,
  progress: (bytes: number) => void = () => {},
): Promise<number> {
  const pipe = new PassThrough({ highWaterMark: 4 * CHUNK_BYTES });
  const received = receive(pipe);
  received.catch(() => pipe.destroy());
  let bytes = 0;
  try {
    const asked = new Map<number, Promise<Chunk>>();
    const askFor = (seq: number) => {
      const p = ask(seq);
      p.catch(() => {});
      asked.set(seq, p);
    };
    for (let seq = 0, eof = false; !eof; seq++) {
      for (let s = seq; s < seq + WINDOW; s++) if (!asked.has(s)) askFor(s);
      let c: Chunk;
      try {
        c = await asked.get(seq)!;
      } catch {
        askFor(seq);
        c = await asked.get(seq)!;
      } // once more: a reply lost on the way
      asked.delete(seq);
      eof = c.eof;
      bytes += c.data.length;
      progress(bytes);
      if (c.data.length && !pipe.write(c.data)) await drained(pipe);
      if (eof) {
        asked.clear();
        pipe.end();
      }
    }
  } catch (err) {
    pipe.destroy(err as Error);
    await received.catch(() => {});
    throw err;
  }
  await received;
  return bytes;
}

/** Waits for a stream's buffer to drain; rejects when it closes first (the receiver gave up). */
function drained(pipe: PassThrough): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const closed = () => reject(new Error('the receiver stopped'));
    pipe.once('close', closed);
    pipe.once('drain', () => {
      pipe.off('close', closed);
      resolve();
    });
  });
}
