import { randomBytes } from 'node:crypto';
import { weave } from '../proto/gen/weave.js';
import type { RequestHandler } from '../common/channel.js';
import type { GossipNet } from './net.js';
import type { Signer } from './signer.js';

export const requestProtocol = (name: string) => `/weave-ts/${name}/1.0.0`;
export const RELAY_PROTOCOL = '/weave-ts/relay/1.0.0';

/** More hops than any route has: a relay loop (routes changing under a request) ends here. */
export const MAX_HOPS = 32;
/** The longest a relayed request may ask its hops to wait, whatever it says. */
const MAX_TIMEOUT_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 5000;

export interface RequestCounters {
  sent: number;
  relayed: number;
  refused: number;
}

/**
 * Requests between peers, one message each way. A neighbour is asked directly; any other peer
 * in the topology through the unicast route, each hop passing the request to its own next hop
 * and the reply back, with the deadline counting down. So every peer in the topology can be asked,
 * and "unreachable" means not in it. Relayed requests and replies are signed by their authors.
 */
export class Requests {
  readonly counters: RequestCounters = { sent: 0, relayed: 0, refused: 0 };
  private readonly handlers = new Map<string, RequestHandler>();

  constructor(
    private readonly net: GossipNet,
    private readonly self: string,
    private readonly signer: Signer,
    private readonly nextHop: (peer: string) => string | undefined,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {}

  start(): Promise<void> {
    return this.net.serve(RELAY_PROTOCOL, async (from, data) =>
      weave.RelayReply.encode(await this.onRelay(from, data)).finish(),
    );
  }

  /** Answers requests of one kind, from neighbours and relayed. */
  handle(h: RequestHandler): Promise<void> {
    this.handlers.set(h.name, h);
    return this.net.serve(requestProtocol(h.name), (from, data) => h.handle(from, data));
  }

  /** Asks a peer; rejects when it is not in the topology, or it (or a hop) fails, or the deadline passes. */
  async request(peer: string, name: string, payload: Uint8Array, timeoutMs = this.timeoutMs): Promise<Uint8Array> {
    this.counters.sent++;
    if (this.net.peers().includes(peer)) return this.net.call(peer, requestProtocol(name), payload, { timeoutMs });
    const nonce = randomBytes(16);
    const body = weave.RelayBody.encode({ to: peer, origin: this.self, name, payload, nonce }).finish();
    const reply = await this.forward(
      { body, signature: await this.signer.sign(body), hops: MAX_HOPS },
      peer,
      Date.now() + timeoutMs,
    );
    if (reply.error) throw new Error(reply.error);
    const out = reply.payload ?? new Uint8Array();
    if (!(await this.signer.verify(peer, Buffer.concat([nonce, out]), reply.signature ?? new Uint8Array())))
      throw new Error(`the reply from ${peer} is not signed by it`);
    return out;
  }

  /** Passes a relayed request to our next hop towards `to`, with what is left of the deadline. */
  private async forward(r: weave.IRelay, to: string, deadline: number): Promise<weave.IRelayReply> {
    const hop = this.nextHop(to);
    if (!hop) return { error: `${to} is unreachable (not in the topology)` };
    const left = deadline - Date.now();
    if (left <= 0) return { error: `no answer from ${to} in time` };
    try {
      const data = await this.net.call(hop, RELAY_PROTOCOL, weave.Relay.encode({ ...r, timeoutMs: left }).finish(), {
        timeoutMs: left,
      });
      return weave.RelayReply.decode(data);
    } catch (err) {
      return { error: `relaying to ${to} through ${hop}: ${(err as Error).message.split('\n')[0]}` };
    }
  }

  /** A relayed request: ours to answer, or to pass on. A bad one is refused with an error, never thrown. */
  private async onRelay(_from: string, data: Uint8Array): Promise<weave.IRelayReply> {
    const arrived = Date.now();
    let r: weave.Relay, body: weave.RelayBody;
    try {
      r = weave.Relay.decode(data);
      body = weave.RelayBody.decode(r.body);
    } catch {
      return this.refuse('undecodable relayed request');
    }
    if (!body.to || !body.origin || !body.name)
      return this.refuse('relayed request without destination, origin or kind');
    if (body.to !== this.self) {
      if (r.hops <= 1) return this.refuse(`relayed request to ${body.to} went past ${MAX_HOPS} hops`);
      this.counters.relayed++;
      return this.forward(
        { body: r.body, signature: r.signature, hops: r.hops - 1 },
        body.to,
        arrived + Math.min(r.timeoutMs || this.timeoutMs, MAX_TIMEOUT_MS),
      );
    }
    if (!(await this.signer.verify(body.origin, r.body, r.signature)))
      return this.refuse(`relayed request not signed by its origin ${body.origin}`);
    const h = this.handlers.get(body.name);
    if (!h) return this.refuse(`no handler for "${body.name.slice(0, 40)}" requests`);
    try {
      const payload = await h.handle(body.origin, body.payload);
      return { payload, signature: await this.signer.sign(Buffer.concat([body.nonce, payload])) };
    } catch (err) {
      return { error: `${this.self} failed to answer: ${(err as Error).message.split('\n')[0]}` };
    }
  }

  private refuse(error: string): weave.IRelayReply {
    this.counters.refused++;
    return { error };
  }
}
