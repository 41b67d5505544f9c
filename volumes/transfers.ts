// Snapshot bytes in flight to or from this host: the streams we serve chunk by chunk (transfer.ts's
// Outgoing), the transfers we pull (transfer.ts's pull), and their progress for the report.
import type { Readable } from 'node:stream';
import type { weave } from '../proto/gen/weave.js';
import type { SendStream } from './backend.js';
import type { VolumeCounters } from './records.js';
import { ask, CHUNK, type VolumeNet } from './requests.js';
import { IDLE_MS, Outgoing, pull as pullChunks } from './transfer.js';

/** A transfer in progress, for `weave volume inspect` and the report. */
export interface TransferView {
  name: string;
  peer: string;
  direction: 'in' | 'out';
  gen: number;
  bytes: number;
  started: number;
  full: boolean;
}

export class Transfers {
  private readonly outgoing = new Map<string, Outgoing>();
  /** The transfer of each volume in progress here, in or out. */
  private readonly views = new Map<string, TransferView>();

  constructor(
    private readonly net: VolumeNet,
    private readonly counters: Pick<VolumeCounters, 'bytesIn' | 'bytesOut'>,
  ) {}

  view(name: string): TransferView | undefined {
    return this.views.get(name);
  }

  all(): TransferView[] {
    return [...this.views.values()];
  }

  /** The generations of a volume being sent: their snapshots stay until the receiver has them. */
  sending(name: string): Set<number> {
    return new Set([...this.outgoing.values()].filter((t) => t.name === name).map((t) => t.gen));
  }

  // ---- as the sender ----

  /** Serves snapshot `gen`'s stream to `to`, chunk by chunk as asked; the transfer's id. */
  serve(name: string, gen: number, to: string, full: boolean, stream: SendStream): string {
    const t: TransferView = { name, peer: to, direction: 'out', gen, bytes: 0, started: Date.now(), full };
    const out = new Outgoing(name, gen, to, stream);
    this.outgoing.set(out.id, out);
    this.views.set(name, t);
    return out.id;
  }

  /** One chunk a receiver asked for, and the volume it is of. */
  async chunk(q: weave.IVolumeChunkRequest): Promise<{ name: string; reply: weave.IVolumeChunkReply }> {
    const out = this.outgoing.get(q.transfer ?? '');
    if (!out) throw new Error('no such transfer (it ended, or its sender restarted)');
    const c = await out.chunk(q.seq ?? 0);
    const t = this.views.get(out.name);
    if (t?.direction === 'out') t.bytes = out.bytes;
    // Done; kept until it has been idle a while, for a receiver whose last reply was lost.
    if (c.eof && t?.gen === out.gen) {
      this.counters.bytesOut += out.bytes;
      this.views.delete(out.name);
    }
    return { name: out.name, reply: c };
  }

  /** A receiver gave up before it began: its transfers of the volume end. */
  cancel(from: string, name: string): void {
    for (const [id, t] of this.outgoing)
      if (t.name === name && t.to === from) {
        t.cancel();
        this.outgoing.delete(id);
      }
    if (this.views.get(name)?.peer === from) this.views.delete(name);
  }

  /** Drops the transfers nobody asked anything of for a while (their receivers died). */
  expire(now: number): void {
    for (const [id, t] of this.outgoing) {
      if (t.lastUse + IDLE_MS < now) {
        t.cancel();
        this.outgoing.delete(id);
        this.views.delete(t.name);
      }
    }
  }

  stop(): void {
    for (const t of this.outgoing.values()) t.cancel();
  }

  // ---- as the receiver ----

  /** Pulls `from`'s transfer `id` of snapshot `gen` into `receive`, showing its progress. */
  async pull(
    from: string,
    name: string,
    id: weave.IVolumeChunkRequest['transfer'],
    gen: number,
    full: boolean,
    receive: (data: Readable) => Promise<void>,
  ): Promise<void> {
    const t: TransferView = { name, peer: from, direction: 'in', gen, bytes: 0, started: Date.now(), full };
    this.views.set(name, t);
    try {
      const chunk = (seq: number) =>
        ask(this.net, from, CHUNK, { transfer: id, seq }, 30_000).then((c) => ({
          data: c.data ?? new Uint8Array(),
          eof: !!c.eof,
        }));
      const bytes = await pullChunks(chunk, receive, (n) => {
        t.bytes = n;
      });
      this.counters.bytesIn += bytes;
    } finally {
      this.views.delete(name);
    }
  }
}
