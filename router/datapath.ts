/**
 * How frames leave and enter the local bridge. Implementations differ in how (libpcap, a native
 * addon, the kernel); the forwarding decisions above them stay the same.
 */
export interface Datapath {
  readonly name: string;
  /** Starts delivering frames that enter from the bridge; a frame is only valid during the call. */
  start(onFrame: (frame: Buffer) => void): Promise<void>;
  /** Puts a frame onto the bridge as if it arrived from the network. */
  inject(frame: Buffer): void;
  stop(): Promise<void>;
}
