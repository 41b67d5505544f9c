import type { Channel, RequestHandler } from './channel.js';
import type { StatusSection } from '../contract/report.js';
import type { MetricDef } from './metrics.js';
import type { Route } from './route.js';

export type { StatusSection };

/**
 * What a subsystem contributes to the router. The composition root (daemon/main.ts) registers
 * each one: its channels and request handlers go to the control plane, its routes, report
 * fields, status, views and metrics to the API; start runs in registration order, stop in reverse.
 */
export interface Subsystem {
  readonly name: string;
  readonly channels?: readonly Channel[];
  readonly requests?: readonly RequestHandler[];
  readonly routes?: readonly Route[];
  /** Its fields of /report (top-level keys; two subsystems may not give the same key). */
  report?(): object;
  /** Its section of `weave status`. */
  status?(): StatusSection;
  /** Text views: `weave status NAME` (GET /status/NAME). */
  readonly views?: Record<string, () => string>;
  readonly metrics?: readonly MetricDef[];
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

/** Where subsystems' channels and request handlers go: the control plane in a router. */
export interface GossipRegistrar {
  addChannel(c: Channel): void;
  handle(h: RequestHandler): Promise<void>;
}

/** Gives the control plane every subsystem's channels and request handlers. */
export async function registerGossip(r: GossipRegistrar, subsystems: readonly Subsystem[]): Promise<void> {
  for (const s of subsystems) {
    for (const c of s.channels ?? []) r.addChannel(c);
    for (const h of s.requests ?? []) await r.handle(h);
  }
}
