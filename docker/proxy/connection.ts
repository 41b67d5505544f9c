// One client connection as node's HTTP server sees it: a Duplex we feed from the real socket.
//
// Why not hand the socket itself to the server: a connection can stop being HTTP half-way. Old
// clients hijack POST /containers/{id}/attach without an Upgrade header; the engine answers 200
// with a raw stream and both sides then write raw bytes. Node offers no way to take a socket back
// from its HTTP parser except through 'upgrade', so the parser only ever reads what we push here,
// and takeOver() stops that and hands the socket over for raw piping.
import type net from 'node:net';
import { Duplex } from 'node:stream';

export class ClientConnection extends Duplex {
  /** True once the socket has been taken over: writes from the HTTP side are dropped from then on. */
  raw = false;

  constructor(readonly socket: net.Socket) {
    super({ allowHalfOpen: true });
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
  }

  private readonly onData = (chunk: Buffer) => {
    if (!this.push(chunk)) this.socket.pause();
  };
  private readonly onEnd = () => {
    this.push(null);
  };
  private readonly onError = (err: Error) => {
    this.destroy(err);
  };
  private readonly onClose = () => {
    this.destroy();
  };
  private readonly onTimeout = () => {
    this.emit('timeout');
  };

  override _read(): void {
    if (!this.raw) this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.raw || this.socket.destroyed) return cb();
    if (this.socket.write(chunk)) cb();
    else this.socket.once('drain', () => cb());
  }

  /** Chunks queued while a write was pending leave together, in one syscall. */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    if (this.raw || this.socket.destroyed) return cb();
    this.socket.cork();
    let ok = true;
    for (const c of chunks) ok = this.socket.write(c.chunk);
    this.socket.uncork();
    if (ok) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.raw) this.socket.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.raw) this.socket.destroy();
    cb(err);
  }

  // What node's HTTP server asks of a socket (keep-alive timeouts in particular).
  setTimeout(ms: number, cb?: () => void): this {
    if (!this.raw) this.socket.setTimeout(ms);
    if (cb) this.once('timeout', cb);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
  get remotePort(): number | undefined {
    return this.socket.remotePort;
  }

  /**
   * Detaches the socket from the HTTP side and returns it paused, with the bytes the parser had
   * not read yet (those that followed an Upgrade request's head). The HTTP side sees a closed
   * connection; the socket itself stays open.
   */
  takeOver(): { socket: net.Socket; pending: Buffer[] } {
    this.raw = true;
    const s = this.socket;
    s.pause();
    s.setTimeout(0);
    s.off('data', this.onData)
      .off('end', this.onEnd)
      .off('error', this.onError)
      .off('close', this.onClose)
      .off('timeout', this.onTimeout);
    this.removeAllListeners('data'); // the parser is done with this connection: what is buffered is ours
    const pending: Buffer[] = [];
    for (let c: Buffer | null; (c = this.read() as Buffer | null) !== null; ) pending.push(c);
    this.destroy();
    return { socket: s, pending };
  }
}
