// Where volumes' bytes live on a host. The manager (manager.ts) decides what exists where and who
// owns it; a backend only keeps a pool of writable volumes and their read-only snapshots, and turns
// a snapshot into a byte stream and back. btrfs.ts does it with subvolumes and `btrfs send -p`;
// dir.ts with plain directories and file-level increments, for hosts without btrfs.
import type { Readable } from 'node:stream';

/**
 * Volume names: what Docker accepts, without '@' (snapshots are NAME@GEN), at most 128 characters (a replica's is
 * stack_service_index_name).
 */
export const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** What a host holds of one volume. */
export interface HeldVolume {
  /** A writable copy exists (what Docker mounts). */
  live: boolean;
  /** Read-only snapshot generations held, ascending. */
  snapshots: number[];
}

/** An outgoing snapshot: the bytes, and how the producer ended (rejects on failure). */
export interface SendStream {
  data: Readable;
  done: Promise<void>;
  /** Stops producing (the peer went away); `done` then rejects. */
  cancel(): void;
}

export interface VolumeBackend {
  readonly kind: 'btrfs' | 'dir';
  /** The pool's directory (and, for a loop pool, its file), for `weave status`. */
  readonly describe: string;
  /** The writable volume's directory: what Docker mounts. Whether it exists or not. */
  path(name: string): string;
  /** Every volume with anything here, by name. */
  list(): Promise<Map<string, HeldVolume>>;
  /** A new, empty writable volume. Throws when one of that name exists here. */
  create(name: string): Promise<void>;
  /** A read-only snapshot of the writable volume, as generation `gen`. */
  snapshot(name: string, gen: number): Promise<void>;
  /**
   * Snapshot `gen` as a stream; with `parent`, only what changed since that snapshot (the receiver
   * holds it). The stream is the backend's own format: only the same backend kind receives it.
   */
  send(name: string, gen: number, parent?: number): SendStream;
  /**
   * Makes snapshot `gen` from a stream `send` made (`parent` as given to send, held here). All or
   * nothing: interrupted or failed, it leaves no snapshot `gen` behind (and a retry may run again).
   */
  receive(name: string, gen: number, parent: number | undefined, data: Readable): Promise<void>;
  /** Makes the writable volume from snapshot `gen`, replacing the writable copy here if any. */
  promote(name: string, gen: number): Promise<void>;
  /** Removes the writable copy (snapshots stay). Nothing when there is none. */
  dropLive(name: string): Promise<void>;
  /** Removes one snapshot. Nothing when it is not there. */
  dropSnapshot(name: string, gen: number): Promise<void>;
  /** Bytes the writable copy holds (du-like; for inspect and progress). 0 when none. */
  size(name: string): Promise<number>;
  /** Bytes free in the pool. */
  free(): Promise<number>;
  /** Releases the pool (unmounts a loop pool this process mounted). */
  close(): Promise<void>;
}
