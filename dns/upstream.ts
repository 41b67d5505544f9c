import dgram from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';

const TIMEOUT_MS = 2000;

/**
 * The host's own resolvers, from resolv.conf, read again when the file changes: queries for
 * names outside the cluster domain go there, the original bytes forwarded as they came.
 */
export class Upstream {
  private servers: string[] = [];
  private mtime = -1;

  constructor(
    private readonly resolvConf: string,
    private readonly self: () => string[],
  ) {}

  /** The nameservers now (never ourselves: that would loop). */
  nameservers(): string[] {
    let m = 0;
    try {
      m = statSync(this.resolvConf).mtimeMs;
    } catch {
      this.servers = [];
      this.mtime = -1;
      return [];
    }
    if (m !== this.mtime) {
      this.mtime = m;
      const text = readFileSync(this.resolvConf, 'utf8');
      this.servers = [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((x) => x[1]);
    }
    const mine = new Set(this.self());
    return this.servers.filter((s) => !mine.has(s));
  }

  /**
   * Asks each nameserver in turn over UDP; undefined when none answers in time. For a client on TCP, a truncated
   * answer is asked again over TCP, and relayed truncated as it came when the server does not answer there.
   */
  async forward(query: Buffer, overTcp = false): Promise<Buffer | undefined> {
    for (const server of this.nameservers()) {
      const reply = await ask(server, query).catch(() => undefined);
      if (reply && overTcp && isTruncated(reply)) return (await askTcp(server, query).catch(() => undefined)) ?? reply;
      if (reply) return reply;
    }
    return undefined;
  }
}

/** The TC bit of a reply's header. */
const isTruncated = (reply: Buffer) => reply.length >= 4 && (reply[2] & 0x02) !== 0;

function ask(server: string, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const done = (err?: Error, msg?: Buffer) => {
      clearTimeout(timer);
      sock.close();
      if (msg) resolve(msg);
      else reject(err);
    };
    const timer = setTimeout(() => done(new Error('timeout')), TIMEOUT_MS);
    sock.on('error', (err) => done(err));
    // Only the answer to this query, from the server asked: anything else on the socket is ignored.
    sock.on('message', (msg, r) => {
      if (r.address === server && msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0))
        done(undefined, msg);
    });
    sock.send(query, 53, server);
  });
}

function askTcp(server: string, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(53, server);
    let got = Buffer.alloc(0);
    const done = (err?: Error, msg?: Buffer) => {
      sock.destroy();
      if (msg) resolve(msg);
      else reject(err);
    };
    sock.setTimeout(TIMEOUT_MS, () => done(new Error('timeout')));
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new Error('closed before the answer')));
    sock.on('data', (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 2 || got.length < 2 + got.readUInt16BE(0)) return;
      const msg = got.subarray(2, 2 + got.readUInt16BE(0));
      if (msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0)) done(undefined, msg);
      else done(new Error('an answer to another query'));
    });
    const length = Buffer.alloc(2);
    length.writeUInt16BE(query.length);
    sock.write(Buffer.concat([length, query]));
  });
}
