import { createRequire } from 'node:module';
import { Datapath } from './datapath.js';
import { CAPTURE_IF } from './bridge.js';

const require = createRequire(import.meta.url);

interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  on(event: 'packet', cb: (nbytes: number, truncated: boolean) => void): void;
  send(buffer: Buffer, size?: number): void;
  close(): void;
}

/**
 * libpcap on the capture veth. The `inbound` filter keeps our own injections out of the capture,
 * so a frame we put on the bridge is never captured and sent back where it came from.
 */
export class SleevePcap implements Datapath {
  readonly name = 'sleeve-pcap';
  private cap?: CapHandle;

  constructor(private readonly device = CAPTURE_IF, private readonly bufferBytes = 16 << 20) {}

  async start(onFrame: (frame: Buffer) => void): Promise<void> {
    const { Cap } = require('cap') as { Cap: new () => CapHandle };
    const cap = new Cap();
    const buf = Buffer.alloc(65536); // cap reuses this buffer for every frame
    cap.open(this.device, 'inbound', this.bufferBytes, buf);
    cap.on('packet', (nbytes) => onFrame(buf.subarray(0, nbytes)));
    this.cap = cap;
  }

  inject(frame: Buffer): void {
    this.cap?.send(frame, frame.length);
  }

  async stop(): Promise<void> {
    this.cap?.close();
    this.cap = undefined;
  }
}
