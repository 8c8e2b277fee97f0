/** Counters and gauges of one operator subtask. */
import type { Counter, MetricGroup } from '../../operators/contract.js';

/** A plain counter. */
export class SimpleCounter implements Counter {
  count = 0;
  inc(n = 1): void {
    this.count += n;
  }
}

/** The metrics of one operator subtask. */
export class OperatorMetrics implements MetricGroup {
  /** Replaced by {@link countRecordsInAs} for a chained operator. */
  numRecordsIn = new SimpleCounter();
  readonly numRecordsOut = new SimpleCounter();
  readonly counters = new Map<string, SimpleCounter>([
    ['numRecordsIn', this.numRecordsIn],
    ['numRecordsOut', this.numRecordsOut],
  ]);
  readonly gauges = new Map<string, () => number>();
  constructor(
    readonly operatorId: string,
    readonly operatorName: string,
    readonly subtaskIndex: number,
  ) {}
  /**
   * Reports `c` as this operator's `numRecordsIn`: a chained operator fed by its predecessor's
   * main output receives exactly what that one emits, so it needs no counter of its own on the
   * per-record path.
   */
  countRecordsInAs(c: SimpleCounter): void {
    this.numRecordsIn = c;
    this.counters.set('numRecordsIn', c);
  }
  counter(name: string): Counter {
    let c = this.counters.get(name);
    if (c === undefined) this.counters.set(name, (c = new SimpleCounter()));
    return c;
  }
  gauge(name: string, read: () => number): void {
    this.gauges.set(name, read);
  }
  /** Current values of every counter and gauge. */
  values(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, c] of this.counters) out[k] = c.count;
    for (const [k, g] of this.gauges) out[k] = g();
    return out;
  }
}
