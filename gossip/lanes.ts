import { peerIdFromString } from '@libp2p/peer-id';
import type { Stream } from '@libp2p/interface';
import type { Node } from './node.js';

/** The protocol of a lane: one-way messages of `protocol`, many on one long-lived stream. */
export const laneProtocol = (protocol: string): string => `${protocol}/lane`;

/**
 * One long-lived stream per neighbour and protocol for one-way messages, each framed by its
 * length (4 bytes, big-endian). A stream per message costs a protocol negotiation and a peer-store
 * write at both ends, several yamux frames and a wait for the remote's close: when a hundred
 * routers start at once, that was most of the CPU and held every push for seconds. Messages on
 * a lane arrive in the order they were sent. A lane goes when its stream or connection does, and
 * the next message opens a new one.
 */
export class Lanes {
  private readonly open = new Map<string, Promise<Stream>>();

  constructor(
    private readonly node: Node,
    private readonly maxMessageBytes: number,
  ) {}

  /** Sends one message; resolves once the stream has taken it (after a drain, when its buffer is full). */
  async send(peer: string, protocol: string, data: Uint8Array, signal: AbortSignal): Promise<void> {
    const stream = await this.lane(peer, protocol, signal);
    const frame = Buffer.allocUnsafe(4 + data.length);
    frame.writeUInt32BE(data.length, 0);
    frame.set(data, 4);
    try {
      if (!stream.send(frame)) await stream.onDrain({ signal });
    } catch (err) {
      stream.abort(err as Error); // a message may be lost with the lane; the next one opens another
      throw err;
    }
  }

  /** Serves a lane: `fn` is given each message in turn, from the peer at the other end. */
  async serve(stream: Stream, from: string, fn: (from: string, data: Uint8Array) => Promise<unknown>): Promise<void> {
    let buf: Buffer = Buffer.alloc(0);
    for await (const chunk of stream as AsyncIterable<Uint8Array | { subarray(): Uint8Array }>) {
      const b = chunk instanceof Uint8Array ? chunk : chunk.subarray();
      buf = buf.length ? Buffer.concat([buf, b]) : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
      while (buf.length >= 4) {
        const len = buf.readUInt32BE(0);
        if (len > this.maxMessageBytes) throw new Error('message too large');
        if (buf.length < 4 + len) break;
        const msg = buf.subarray(4, 4 + len);
        buf = buf.subarray(4 + len);
        await fn(from, msg);
      }
    }
  }

  private lane(peer: string, protocol: string, signal: AbortSignal): Promise<Stream> {
    const key = `${peer} ${protocol}`;
    let s = this.open.get(key);
    if (!s) {
      s = this.node.dialProtocol(peerIdFromString(peer), laneProtocol(protocol), { signal });
      this.open.set(key, s);
      s.then(
        (stream) =>
          stream.addEventListener(
            'close',
            () => {
              if (this.open.get(key) === s) this.open.delete(key);
            },
            { once: true },
          ),
        () => {
          if (this.open.get(key) === s) this.open.delete(key);
        },
      );
    }
    return s;
  }
}
