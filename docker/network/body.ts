// The fields of a plugin call's JSON body, checked: a wrong one is a one-line error naming it.
import type { Body } from '../../common/plugin-socket.js';

export type { Body, PluginHandlers } from '../../common/plugin-socket.js';

export function str(b: Body, key: string): string {
  const v = b[key];
  if (v === undefined || v === null || v === '') throw new Error(`${key} is missing`);
  if (typeof v !== 'string') throw new Error(`${key} must be a string`);
  return v;
}

/** An optional string: '' when absent. */
export function optStr(b: Body, key: string): string {
  const v = b[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new Error(`${key} must be a string`);
  return v;
}

/** An optional object: {} when absent. */
export function obj(b: Body, key: string): Body {
  const v = b[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${key} must be an object`);
  return v as Body;
}

/** An optional list of objects: [] when absent. */
export function objs(b: Body, key: string): Body[] {
  const v = b[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'object' || x === null || Array.isArray(x)))
    throw new Error(`${key} must be a list of objects`);
  return v as Body[];
}

/** Docker's ids: hex as dockerd makes them (networks, endpoints), or base 36 as Swarm makes its networks'. */
export function dockerId(b: Body, key: string): string {
  const v = str(b, key);
  if (!/^[0-9a-z]{12,64}$/i.test(v)) throw new Error(`${key} "${v.slice(0, 70)}" is not a Docker id`);
  return v;
}
