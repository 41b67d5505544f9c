/** One sample of a metric: its labels and value. */
export interface Sample {
  labels?: Record<string, string>;
  value: number;
}

/**
 * A Prometheus metric as a subsystem declares it; the API turns these into one registry and
 * reads `samples` at scrape time, so nothing is paid for metrics until someone scrapes.
 */
export interface MetricDef {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly labels?: string[];
  samples(): Sample[];
}
