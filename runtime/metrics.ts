/** Metrics of operators summed over their subtasks, and of the job. */
import type { RuntimeMetrics } from './observe/node-metrics.js';

/** Metrics of one operator, summed over its subtasks. */
export interface OperatorMetricsSnapshot {
  operatorId: string;
  operatorName: string;
  isSource: boolean;
  isSink: boolean;
  parallelism: number;
  metrics: Record<string, number>;
}

/** Metrics of a job at one moment. */
export interface JobMetricsSnapshot {
  timeMs: number;
  operators: OperatorMetricsSnapshot[];
  /** Records emitted by all sources. */
  sourceRecords: number;
  /** Records received by all sinks. */
  sinkRecords: number;
  /**
   * Node's own figures (event-loop delay, GC pauses, heap) of the job manager's thread and of
   * every slot (see `observe/node-metrics.ts`); absent when the job runs in one thread.
   */
  runtime?: RuntimeMetrics;
}

/** The metrics of one operator subtask at one moment, as plain data (it crosses threads and hosts). */
export interface SubtaskMetrics {
  operatorId: string;
  operatorName: string;
  isSource: boolean;
  isSink: boolean;
  parallelism: number;
  values: Record<string, number>;
}

/** Sums the metrics of subtasks per operator (wherever they ran). */
export function aggregateMetrics(subtasks: Iterable<SubtaskMetrics>, timeMs: number): JobMetricsSnapshot {
  const byOp = new Map<string, OperatorMetricsSnapshot>();
  for (const s of subtasks) {
    let o = byOp.get(s.operatorId);
    if (o === undefined)
      byOp.set(
        s.operatorId,
        (o = {
          operatorId: s.operatorId,
          operatorName: s.operatorName,
          isSource: s.isSource,
          isSink: s.isSink,
          parallelism: s.parallelism,
          metrics: {},
        }),
      );
    for (const [k, v] of Object.entries(s.values)) o.metrics[k] = (o.metrics[k] ?? 0) + v;
  }
  const operators = [...byOp.values()];
  return {
    timeMs,
    operators,
    sourceRecords: operators
      .filter((o) => o.isSource)
      .reduce((n, o) => n + (o.metrics.numRecordsOut ?? 0), 0),
    sinkRecords: operators.filter((o) => o.isSink).reduce((n, o) => n + (o.metrics.numRecordsIn ?? 0), 0),
  };
}
