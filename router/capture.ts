import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  send(buffer: Buffer, size?: number): void;
  close(): void;
}

/** A libpcap handle on one device. cap reuses one buffer: a frame is only valid during the callback. */
export class Capture {
  private cap?: CapHandle;

  constructor(
    private readonly device: string,
    private readonly filter: string,
    private readonly bufferBytes: number,
  ) {}

  open(onFrame: (frame: Buffer) => void): void {
    const { Cap } = require('cap') as { Cap: new () => CapHandle };
    const buf = Buffer.alloc(65536);
    // cap's C++ calls the `emit` its object has when made, once per frame: made from this subclass,
    // that is onFrame itself, with no EventEmitter dispatch in between.
    class FrameCap extends Cap {
      emit(_event: 'packet', nbytes: number): boolean {
        onFrame(buf.subarray(0, nbytes));
        return true;
      }
    }
    const cap = new FrameCap();
    cap.open(this.device, this.filter, this.bufferBytes, buf);
    this.cap = cap;
  }

  send(frame: Buffer): void {
    this.cap?.send(frame, frame.length);
  }

  close(): void {
    this.cap?.close();
    this.cap = undefined;
  }
}
