import net from 'node:net';
import { EventEmitter } from 'node:events';

// A minimal control plane for the router core: one TCP connection per peer pair on the control
// port, newline-delimited JSON (hello, peer list, heartbeat). It tells the data plane which peers
// exist and where they are; the libp2p control plane replaces it without touching the data plane.

export interface Self { name: string; nickname: string; udpPort: number; controlPort: number; vni: number }
export interface RemotePeer { name: string; nickname: string; ip: string; udpPort: number }

type Message =
  | { type: 'hello'; name: string; nickname: string; udpPort: number; controlPort: number; vni: number; known: string[] }
  | { type: 'peers'; known: string[] }
  | { type: 'ping' };

export interface ConnectionView {
  direction: 'outbound' | 'inbound';
  address: string;
  state: 'connecting' | 'established' | 'failed' | 'retry';
  info: string;
  name?: string;
  nickname?: string;
}

const HEARTBEAT_MS = 1000;
const DEAD_AFTER_MS = 5000;
const MAX_LINE = 64 * 1024;
const BACKOFF_START_MS = 2000;
const BACKOFF_CAP_MS = 60_000;
const STABLE_MS = 60_000;

class Connection {
  remote?: RemotePeer & { controlPort: number };
  established = false;
  openedAt = Date.now();
  private lastHeard = Date.now();
  private buf = '';
  private heartbeat?: NodeJS.Timeout;

  constructor(readonly sock: net.Socket, readonly outbound: boolean, readonly address: string,
              private readonly onMessage: (c: Connection, m: Message) => void,
              readonly onClose: (c: Connection, why: string) => void) {
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.receive(chunk));
    sock.on('error', (err) => this.close(err.message));
    sock.on('close', () => this.close('connection closed'));
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > DEAD_AFTER_MS) return this.close('no heartbeat for 5s');
      this.send({ type: 'ping' });
    }, HEARTBEAT_MS);
  }

  send(m: Message): void { if (!this.sock.destroyed) this.sock.write(JSON.stringify(m) + '\n'); }

  private receive(chunk: string): void {
    this.lastHeard = Date.now();
    this.buf += chunk;
    if (this.buf.length > MAX_LINE && !this.buf.includes('\n')) return this.close('protocol error: line too long');
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let m: Message;
      try { m = JSON.parse(line) as Message; } catch { return this.close('protocol error: undecodable message'); }
      if (!m || typeof m !== 'object' || typeof m.type !== 'string') return this.close('protocol error: malformed message');
      this.onMessage(this, m);
      if (this.sock.destroyed) return;
    }
  }

  private closed = false;
  close(why: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.sock.destroy();
    this.onClose(this, why);
  }
}

interface Target { address: string; discovered: boolean; attempts: number; conn?: Connection; timer?: NodeJS.Timeout; lastError?: string; retryAt?: number }

/** Emits 'peer-up' (RemotePeer) and 'peer-down' (name). */
export class ControlPlane extends EventEmitter {
  private server?: net.Server;
  private readonly targets = new Map<string, Target>();
  private readonly conns = new Set<Connection>();
  private readonly peers = new Map<string, Connection>(); // established, by peer name
  private stopped = false;
  protocolErrors = 0;

  constructor(private readonly self: Self, private readonly discovery: boolean) { super(); }

  listen(host = '0.0.0.0'): Promise<void> {
    const server = net.createServer((sock) => {
      const address = `${(sock.remoteAddress ?? '').replace(/^::ffff:/, '')}:${sock.remotePort}`;
      this.track(new Connection(sock, false, address, (c, m) => this.onMessage(c, m), (c, why) => this.onClose(c, why)));
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'EADDRINUSE'
        ? `TCP port ${this.self.controlPort} is already in use` : `cannot listen on TCP port ${this.self.controlPort}: ${err.message}`)));
      server.listen(this.self.controlPort, host, () => resolve());
    });
  }

  /** Adds peers to connect to; an address is host or host:port. */
  connect(addresses: string[], discovered = false): void {
    for (const a of addresses) {
      const address = a.includes(':') ? a : `${a}:${this.self.controlPort}`;
      if (this.targets.has(address) || (discovered && this.connectedTo(address))) continue;
      const t: Target = { address, discovered, attempts: 0 };
      this.targets.set(address, t);
      this.dial(t);
    }
  }

  targetList(): string[] { return [...this.targets.values()].filter((t) => !t.discovered).map((t) => t.address); }

  private connectedTo(address: string): boolean {
    for (const c of this.peers.values()) if (c.remote && `${c.remote.ip}:${c.remote.controlPort}` === address) return true;
    return false;
  }

  private dial(t: Target): void {
    t.timer = undefined;
    if (this.stopped) return;
    if (this.connectedTo(t.address)) return this.retryLater(t, undefined);
    const [host, port] = splitHostPort(t.address);
    const sock = net.connect({ host, port });
    t.conn = new Connection(sock, true, t.address, (c, m) => this.onMessage(c, m), (c, why) => this.onClose(c, why));
    this.track(t.conn);
    sock.on('connect', () => t.conn?.send(this.hello()));
  }

  private track(c: Connection): void { this.conns.add(c); if (!c.outbound) c.send(this.hello()); }

  private hello(): Message {
    const s = this.self;
    return { type: 'hello', name: s.name, nickname: s.nickname, udpPort: s.udpPort, controlPort: s.controlPort, vni: s.vni, known: this.known() };
  }

  /** The control addresses of our peers, less the one we are telling (it cannot dial itself). */
  private known(to?: Connection): string[] {
    return [...this.peers.values()].filter((c) => c !== to).map((c) => `${c.remote!.ip}:${c.remote!.controlPort}`);
  }

  private onMessage(c: Connection, m: Message): void {
    if (m.type === 'ping') return;
    if (m.type === 'hello') return this.onHello(c, m);
    if (m.type === 'peers') { if (c.established && Array.isArray(m.known)) this.discover(m.known); return; }
    this.protocolErrors++;
    c.close('protocol error: unknown message');
  }

  private onHello(c: Connection, m: Extract<Message, { type: 'hello' }>): void {
    if (c.established || typeof m.name !== 'string' || typeof m.nickname !== 'string'
        || !Number.isInteger(m.udpPort) || !Number.isInteger(m.controlPort)) {
      this.protocolErrors++;
      return c.close('protocol error: bad hello');
    }
    if (m.name === this.self.name) {
      // One of our own addresses, learned from a peer: not worth a target.
      const t = this.targets.get(c.address);
      if (t?.discovered) { this.targets.delete(c.address); t.conn = undefined; }
      return c.close('cannot connect to ourself');
    }
    if (m.vni !== this.self.vni) return c.close(`VNI mismatch: theirs ${m.vni}, ours ${this.self.vni}`);
    const ip = c.sock.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    c.remote = { name: m.name, nickname: m.nickname, ip, udpPort: m.udpPort, controlPort: m.controlPort };
    const existing = this.peers.get(m.name);
    if (existing) {
      // Both sides dialled each other: keep the connection whose initiator has the lower name,
      // a rule both ends evaluate identically.
      const initiator = (x: Connection) => (x.outbound ? this.self.name : x.remote!.name);
      if (initiator(existing) <= initiator(c)) return c.close(`duplicate connection to ${m.name}`);
      this.peers.set(m.name, c);
      c.established = true;
      existing.close(`duplicate connection to ${m.name}`);
    } else {
      this.peers.set(m.name, c);
      c.established = true;
      this.emit('peer-up', { name: m.name, nickname: m.nickname, ip, udpPort: m.udpPort } satisfies RemotePeer);
    }
    if (Array.isArray(m.known)) this.discover(m.known);
    for (const other of this.peers.values()) if (other !== c) other.send({ type: 'peers', known: this.known(other) });
  }

  private discover(known: unknown[]): void {
    if (!this.discovery) return;
    const addrs = known.filter((a): a is string => typeof a === 'string' && /^[\d.]+:\d+$/.test(a));
    this.connect(addrs, true);
  }

  private onClose(c: Connection, why: string): void {
    this.conns.delete(c);
    if (why.startsWith('protocol error')) this.protocolErrors++;
    if (c.remote && this.peers.get(c.remote.name) === c) {
      this.peers.delete(c.remote.name);
      this.emit('peer-down', c.remote.name);
    }
    const t = c.outbound ? this.targets.get(c.address) : undefined;
    if (t && t.conn === c) {
      t.conn = undefined;
      if (Date.now() - c.openedAt > STABLE_MS) t.attempts = 0;
      this.retryLater(t, c.established ? undefined : why);
    }
  }

  private retryLater(t: Target, error: string | undefined): void {
    if (this.stopped) return;
    t.lastError = error;
    const base = error ? Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** t.attempts++) : BACKOFF_START_MS;
    const delay = Math.round(base * (0.75 + Math.random() / 2)); // jitter keeps restarts from synchronising
    t.retryAt = Date.now() + delay;
    t.timer = setTimeout(() => this.dial(t), delay);
  }

  view(): { targets: string[]; connections: ConnectionView[]; peers: RemotePeer[] } {
    const connections: ConnectionView[] = [];
    for (const c of this.peers.values()) {
      connections.push({ direction: c.outbound ? 'outbound' : 'inbound', address: c.outbound ? c.address : `${c.remote!.ip}:${c.remote!.controlPort}`,
        state: 'established', info: 'sleeve', name: c.remote!.name, nickname: c.remote!.nickname });
    }
    for (const t of this.targets.values()) {
      if (this.connectedTo(t.address)) continue;
      const state = t.conn ? 'connecting' : t.lastError ? 'failed' : 'retry';
      const retry = t.retryAt ? `, retry in ${Math.max(0, Math.round((t.retryAt - Date.now()) / 1000))}s` : '';
      connections.push({ direction: 'outbound', address: t.address, state, info: t.conn ? '' : `${t.lastError ?? 'not connected'}${retry}` });
    }
    const peers = [...this.peers.values()].map((c) => ({ name: c.remote!.name, nickname: c.remote!.nickname, ip: c.remote!.ip, udpPort: c.remote!.udpPort }));
    return { targets: this.targetList(), connections, peers };
  }

  async close(): Promise<void> {
    this.stopped = true;
    for (const t of this.targets.values()) clearTimeout(t.timer);
    for (const c of [...this.conns]) c.close('shutting down');
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
