import dgram from 'node:dgram';
import * as packet from 'dns-packet';
import { encodeWithin, MAX_TCP, OUR_OPT, optOf, udpLimit } from './fit.js';
import type { DnsRecords } from './records.js';
import { DnsTcpListener } from './tcp.js';
import type { Upstream } from './upstream.js';

const TTL = 1;
const NXDOMAIN = 3,
  SERVFAIL = 2,
  REFUSED = 5;

export interface DnsCounters {
  queries: number;
  local: number;
  nxdomain: number;
  forwarded: number;
  failed: number;
  refused: number;
  malformed: number;
}

export interface DnsServerOptions {
  /** The cluster domain, lower case, no trailing dot: weave.local. */
  domain: string;
  records: DnsRecords;
  /** Who may ask: addresses on the overlay. Anyone else is refused: we are not an open resolver. */
  mayAsk(ip: string): boolean;
  /** Whether an address is the overlay's (its PTR is ours to answer, or to deny). */
  inOverlay(ip: string): boolean;
  upstream: Upstream;
  port?: number;
}

const shuffle = <T>(xs: T[]): T[] => {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
};

export type Transport = 'udp' | 'tcp';

/**
 * DNS on the bridge's addresses, over UDP and TCP: A and PTR for the cluster's names from the gossiped records
 * (every address of a name, in random order, TTL 1), everything else forwarded upstream. A UDP answer fits the
 * client's size (512 bytes, or its EDNS0 size), truncated (TC) if need be; over TCP it is whole.
 * A query that cannot be decoded is dropped and counted; nothing a client sends can throw.
 */
export class DnsServer {
  readonly counters: DnsCounters = {
    queries: 0,
    local: 0,
    nxdomain: 0,
    forwarded: 0,
    failed: 0,
    refused: 0,
    malformed: 0,
  };
  private readonly sockets = new Map<string, { udp: dgram.Socket; tcp: DnsTcpListener }>();

  constructor(private readonly o: DnsServerOptions) {}

  get addresses(): string[] {
    return [...this.sockets.keys()];
  }

  /** Listens on exactly these addresses (the bridge's, which come and go with expose and hide). */
  async listen(addresses: string[]): Promise<void> {
    for (const [a, s] of this.sockets)
      if (!addresses.includes(a)) {
        s.udp.close();
        s.tcp.close();
        this.sockets.delete(a);
      }
    for (const a of addresses) {
      if (this.sockets.has(a)) continue;
      const port = this.o.port ?? 53;
      const udp = dgram.createSocket('udp4');
      udp.on('message', (msg, r) => void this.onQuery(udp, msg, r));
      udp.on('error', () => {
        /* a send to a vanished client: nothing to do */
      });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, a, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const tcp = await DnsTcpListener.listen(a, port, {
        answer: (msg, from) => {
          this.counters.queries++;
          return this.answer(msg, from, 'tcp');
        },
        malformed: () => this.counters.malformed++,
      }).catch((err: Error) => {
        udp.close();
        throw err;
      });
      this.sockets.set(a, { udp, tcp });
    }
  }

  close(): void {
    for (const s of this.sockets.values()) {
      s.udp.close();
      s.tcp.close();
    }
    this.sockets.clear();
  }

  private async onQuery(s: dgram.Socket, msg: Buffer, r: dgram.RemoteInfo): Promise<void> {
    this.counters.queries++;
    const reply = await this.answer(msg, r.address, 'udp').catch(() => undefined);
    if (reply) s.send(reply, r.port, r.address);
  }

  /** The reply to one query from `from`; undefined for one not worth a reply (undecodable). */
  async answer(msg: Buffer, from: string, transport: Transport = 'udp'): Promise<Buffer | undefined> {
    let q: packet.Packet;
    try {
      q = packet.decode(msg);
      if (q.type !== 'query' || !q.questions || q.questions.length !== 1) throw new Error('not one question');
    } catch {
      this.counters.malformed++;
      return undefined;
    }
    const question = q.questions[0];
    // EDNS0 asked, EDNS0 answered (RFC 6891 7).
    const additionals = optOf(q) ? [OUR_OPT] : [];
    const reply = (flags: number, answers: packet.Answer[] = []) =>
      encodeWithin(
        {
          type: 'response',
          id: q.id,
          flags: flags | ((q.flags ?? 0) & packet.RECURSION_DESIRED) | packet.RECURSION_AVAILABLE,
          questions: q.questions,
          answers,
          additionals,
        },
        transport === 'tcp' ? MAX_TCP : udpLimit(q),
      );
    if (!this.o.mayAsk(from)) {
      this.counters.refused++;
      return reply(REFUSED);
    }
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const local = this.localName(name);
    if (local !== undefined) {
      this.counters.local++;
      const ips = this.o.records.lookup(local);
      if (ips.length === 0) {
        this.counters.nxdomain++;
        return reply(packet.AUTHORITATIVE_ANSWER | NXDOMAIN);
      }
      const answers =
        question.type === 'A' || (question.type as string) === 'ANY'
          ? shuffle(ips).map((ip): packet.Answer => ({ type: 'A', name: question.name, ttl: TTL, data: ip }))
          : [];
      return reply(packet.AUTHORITATIVE_ANSWER, answers);
    }
    const ptr = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.in-addr\.arpa$/.exec(name);
    if (ptr && question.type === 'PTR') {
      const ip = [ptr[4], ptr[3], ptr[2], ptr[1]].join('.');
      const names = this.o.records.names(ip);
      if (names.length || this.o.inOverlay(ip)) {
        this.counters.local++;
        if (names.length === 0) {
          this.counters.nxdomain++;
          return reply(packet.AUTHORITATIVE_ANSWER | NXDOMAIN);
        }
        return reply(
          packet.AUTHORITATIVE_ANSWER,
          names.map(
            (n): packet.Answer => ({ type: 'PTR', name: question.name, ttl: TTL, data: `${n}.${this.o.domain}` }),
          ),
        );
      }
    }
    this.counters.forwarded++;
    const upstream = await this.o.upstream.forward(msg, transport === 'tcp');
    if (!upstream) {
      this.counters.failed++;
      return reply(SERVFAIL);
    }
    return upstream;
  }

  /** The record name a query asks for when it is in the cluster domain, else undefined. */
  private localName(name: string): string | undefined {
    if (name === this.o.domain) return '';
    return name.endsWith(`.${this.o.domain}`) ? name.slice(0, -this.o.domain.length - 1) : undefined;
  }
}
