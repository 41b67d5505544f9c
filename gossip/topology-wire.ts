import protobuf from 'protobufjs/minimal.js';
import { weave } from '../proto/gen/weave.js';
import type { Codec } from './typed-channel.js';

/**
 * weave.Topology on the wire, record by record. A record never changes once made (a change is a
 * new version), and the same one is sent over and over: to every neighbour, pruned differently
 * for each, in every state and summary; and it arrives from every neighbour that has it. Encoding
 * and decoding each copy was half of what a hundred routers started at once did while the
 * topology spread. So each record's bytes are kept with it, and a record that arrives again (same
 * name, version and bytes) is the object decoded the first time.
 */
export const topologyWire: Codec<weave.ITopology> = {
  decode(data) {
    const r = protobuf.Reader.create(data);
    const peers: weave.ITopologyPeer[] = [];
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag === PEERS) peers.push(decodePeer(r.bytes()));
      else r.skipType(tag & 7);
    }
    return { peers };
  },
  encode(m) {
    const w = protobuf.Writer.create();
    for (const p of m.peers ?? []) w.uint32(PEERS).bytes(bytesOf(p));
    return w;
  },
};

/** Topology.peers: field 1, length-delimited. TopologyPeer.name: field 1, a string; .version: field 2, a varint. */
const PEERS = (1 << 3) | 2,
  NAME = (1 << 3) | 2,
  VERSION = (2 << 3) | 0;
/** Records decoded lately, by name and version: far more than a topology's records in flight at once. */
const MAX_DECODED = 4096;

const encoded = new WeakMap<weave.ITopologyPeer, Uint8Array>();
const decoded = new Map<string, { bytes: Buffer; peer: weave.ITopologyPeer }>();

/** A record's encoding, made once. */
export function bytesOf(p: weave.ITopologyPeer): Uint8Array {
  let b = encoded.get(p);
  if (!b) encoded.set(p, (b = weave.TopologyPeer.encode(p).finish()));
  return b;
}

/** `copy` is the record `original` in another form (normalised): its encoding is the same. */
export function sameRecord(copy: weave.ITopologyPeer, original: weave.ITopologyPeer): void {
  const b = encoded.get(original);
  if (b) encoded.set(copy, b);
}

function decodePeer(slice: Uint8Array): weave.ITopologyPeer {
  const key = keyOf(slice);
  const hit = key === undefined ? undefined : decoded.get(key);
  if (hit?.bytes.equals(slice)) return hit.peer;
  const bytes = Buffer.from(slice); // a copy: the slice would keep the whole message it came in alive
  const peer = weave.TopologyPeer.decode(bytes);
  encoded.set(peer, bytes);
  if (key !== undefined) {
    if (decoded.size >= MAX_DECODED) decoded.delete(decoded.keys().next().value!);
    decoded.set(key, { bytes, peer });
  }
  return peer;
}

/** "name version length" of an encoded record, read without decoding the rest; undefined when either is missing. */
function keyOf(bytes: Uint8Array): string | undefined {
  const r = protobuf.Reader.create(bytes);
  let name: string | undefined, version: string | undefined;
  while (r.pos < r.len && (name === undefined || version === undefined)) {
    const tag = r.uint32();
    if (tag === NAME) name = r.string();
    else if (tag === VERSION) {
      const v = r.uint64() as unknown as number | { low: number; high: number };
      version = typeof v === 'number' ? String(v) : `${v.high}:${v.low}`;
    } else r.skipType(tag & 7);
  }
  // a summary's entry is shorter
  return name === undefined || version === undefined ? undefined : `${name} ${version} ${bytes.length}`;
}
