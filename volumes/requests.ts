// What hosts ask each other about volumes, over the control plane: a snapshot to send, its chunks,
// and the operations only a volume's owner (or a move's destination) performs.
import { handler, requestSpec, type RequestSpec } from '../gossip/typed-channel.js';
import { UserError } from '../common/errors.js';
import { weave } from '../proto/gen/weave.js';
import type { Members } from '../membership/members.js';

export const SEND = requestSpec('volumes.send', weave.VolumeSendRequest, weave.VolumeSendReply);
export const CHUNK = requestSpec('volumes.chunk', weave.VolumeChunkRequest, weave.VolumeChunkReply);
export const OP = requestSpec('volumes.op', weave.VolumeOpRequest, weave.VolumeOpReply);

/** What the manager needs of the cluster; the composition root wires it to the control plane and membership. */
export interface VolumeNet {
  readonly name: string;
  nickname(peer: string): string;
  reachable(peer: string): boolean;
  /**
   * Which hosts are members (those that may hold copies, ourselves included) and which a majority
   * declared dead (their volumes may be promoted elsewhere).
   */
  readonly membership: Pick<Members, 'members' | 'isDead'>;
  request<Q, R>(peer: string, spec: RequestSpec<Q, R>, req: Q, timeoutMs?: number): Promise<R>;
}

/** Asks another host; its refusal is ours to show as it is. */
export async function ask<Q, R extends { error?: string | null }>(
  net: VolumeNet,
  peer: string,
  spec: RequestSpec<Q, R>,
  q: Q,
  timeoutMs: number,
): Promise<R> {
  const r = await net.request(peer, spec, q, timeoutMs);
  if (r.error) throw new UserError(r.error);
  return r;
}

/** A request handler whose failures travel back as the reply's error, in one line. */
export const answer = <Q, R extends { error?: string | null }>(
  spec: RequestSpec<Q, R>,
  fn: (from: string, q: Q) => Promise<R>,
) =>
  handler(spec, async (from, q) => {
    try {
      return await fn(from, q);
    } catch (err) {
      return { error: (err as Error).message.split('\n')[0] } as R;
    }
  });
