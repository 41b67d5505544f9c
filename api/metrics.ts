import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { MetricDef } from '../common/metrics.js';

/**
 * GET /metrics: one prom-client Registry per router (never the global one, so two routers in
 * one process, as in unit tests, do not mix), built from the subsystems' declared metrics and
 * read at scrape time: subsystems keep plain counters and pay nothing until someone scrapes.
 */
export class SubsystemMetrics {
  readonly registry = new Registry();

  constructor(defs: readonly MetricDef[]) {
    const registers = [this.registry];
    // The process itself (memory, heap, file descriptors, event loop lag): what a soak test watches.
    collectDefaultMetrics({ register: this.registry });
    for (const d of defs) {
      const o = { name: d.name, help: d.help, labelNames: d.labels ?? [], registers };
      if (d.type === 'gauge') {
        new Gauge({
          ...o,
          collect() {
            this.reset();
            for (const s of d.samples()) this.set(s.labels ?? {}, s.value);
          },
        });
      } else {
        new Counter({
          ...o,
          collect() {
            this.reset();
            for (const s of d.samples()) this.inc(s.labels ?? {}, s.value);
          },
        });
      }
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}
