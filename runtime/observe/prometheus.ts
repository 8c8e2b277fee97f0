/**
 * Prometheus exposition of observed jobs: a registry of its own (never prom-client's global one)
 * whose gauges read the observers when scraped, with Flink's scope words and metric names behind
 * a `tidemark_` prefix (shared/OBSERVABILITY.md).
 */
import { Gauge, Registry } from 'prom-client';
import type { JobObserver } from './job-observer.js';
import type { NodeMetricsSnapshot } from './node-metrics.js';
import { type CheckpointCounts, MAX_WATERMARK_JSON } from './types.js';

const JOB_LABELS = ['job_id', 'job_name'] as const;
const TASK_LABELS = ['job_id', 'job_name', 'task_name', 'vertex_id', 'subtask_index'] as const;
const OPERATOR_LABELS = [...TASK_LABELS, 'operator_id', 'operator_name'] as const;
const NODE_LABELS = ['job_id', 'job_name', 'component', 'slot', 'task_manager'] as const;

/** Node's figures (`node-metrics.ts`) as gauges: name, help, and the value in base units. */
const NODE_METRICS: [string, string, (s: NodeMetricsSnapshot) => number][] = [
  [
    'event_loop_delay_p50_seconds',
    'Event-loop delay, median over the last second',
    (s) => s.eventLoopDelayMs.p50 / 1000,
  ],
  [
    'event_loop_delay_p99_seconds',
    'Event-loop delay, 99th percentile over the last second',
    (s) => s.eventLoopDelayMs.p99 / 1000,
  ],
  [
    'event_loop_delay_max_seconds',
    'Event-loop delay, maximum over the last second',
    (s) => s.eventLoopDelayMs.max / 1000,
  ],
  [
    'event_loop_delay_mean_seconds',
    'Event-loop delay, mean over the last second',
    (s) => s.eventLoopDelayMs.mean / 1000,
  ],
  [
    'event_loop_utilization',
    'Share of the last second the event loop was busy (0..1)',
    (s) => s.eventLoopUtilization,
  ],
  [
    'gc_pauses_per_second',
    'Garbage collections per second over the last second',
    (s) => (s.gc.count * 1000) / s.windowMs,
  ],
  [
    'gc_pause_seconds_per_second',
    'Seconds of GC pauses per second over the last second',
    (s) => s.gc.pauseMsPerSecond / 1000,
  ],
  ['heap_used_bytes', "The thread's V8 heap in use", (s) => s.heap.usedBytes],
  ['heap_total_bytes', "The thread's V8 heap allocated", (s) => s.heap.totalBytes],
  ['heap_limit_bytes', "The thread's V8 heap limit", (s) => s.heap.limitBytes],
  [
    'external_memory_bytes',
    "Memory of C++ objects bound to the thread's JS objects",
    (s) => s.heap.externalBytes,
  ],
  ['rss_bytes', 'Resident set size of the whole process', (s) => s.rssBytes],
];

/**
 * Node's figures of every thread of the observers' jobs, with their labels: the job manager's
 * main thread (`component="jobmanager"`), each slot's worker thread (`component="slot"`, `slot`),
 * and each task-manager process's main thread (`component="taskmanager"`, `task_manager`).
 */
function nodeThreads(
  o: JobObserver,
): { labels: Partial<Record<(typeof NODE_LABELS)[number], string>>; snapshot: NodeMetricsSnapshot }[] {
  const r = o.runtime();
  const job = { job_id: o.jobId, job_name: o.jobName };
  const out: ReturnType<typeof nodeThreads> = [];
  if (r.jobManager !== null)
    out.push({ labels: { ...job, component: 'jobmanager' }, snapshot: r.jobManager });
  const processes = new Set<string>();
  for (const s of r.slots) {
    const tm = s.taskManager === null ? {} : { task_manager: s.taskManager };
    out.push({ labels: { ...job, component: 'slot', slot: String(s.slot), ...tm }, snapshot: s.thread });
    const key = s.taskManager ?? `pid ${s.process?.pid}`;
    if (s.process !== undefined && !processes.has(key)) {
      processes.add(key);
      out.push({
        labels: { ...job, component: 'taskmanager', task_manager: s.taskManager ?? `pid ${s.process.pid}` },
        snapshot: s.process,
      });
    }
  }
  return out;
}

/** A metric value for Prometheus: none for a missing watermark, the JSON form of the final one. */
function value(v: number): number | undefined {
  if (v === Number.POSITIVE_INFINITY) return MAX_WATERMARK_JSON;
  return Number.isFinite(v) ? v : undefined;
}

/** The registry of `GET /metrics` over the observers `observers()` returns. */
export function createMetricsRegistry(observers: () => readonly JobObserver[]): Registry {
  const registry = new Registry();
  const jobGauge = (name: string, help: string, read: (o: JobObserver) => number | null) =>
    new Gauge({
      name: `tidemark_jobmanager_job_${name}`,
      help,
      labelNames: JOB_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const o of observers()) {
          const v = read(o);
          if (v !== null) this.set({ job_id: o.jobId, job_name: o.jobName }, v);
        }
      },
    });
  jobGauge('numRestarts', 'Restarts of the job after failures', (o) => o.numRestarts);
  jobGauge('uptime', 'Milliseconds the job has run', (o) => (o.running ? Date.now() - o.startTimestamp : 0));
  const CHECKPOINT_GAUGES: [keyof CheckpointCounts, string][] = [
    ['numberOfCompletedCheckpoints', 'Completed checkpoints'],
    ['numberOfFailedCheckpoints', 'Failed checkpoints'],
    ['numberOfInProgressCheckpoints', 'Checkpoints in progress'],
    ['lastCheckpointDuration', 'Trigger to commit of the last checkpoint, ms'],
    ['lastCheckpointSize', 'Bytes written by the last checkpoint'],
    ['lastCheckpointFullSize', 'Bytes of the whole last checkpoint'],
    ['lastCompletedCheckpointId', 'Id of the last completed checkpoint'],
  ];
  for (const [name, help] of CHECKPOINT_GAUGES) jobGauge(name, help, (o) => o.jobFigures()[name]);

  const TASK_METRICS = [
    'numRecordsIn',
    'numRecordsOut',
    'numRecordsInPerSecond',
    'numRecordsOutPerSecond',
    'numLateRecordsDropped',
    'busyTimeMsPerSecond',
    'idleTimeMsPerSecond',
    'backPressuredTimeMsPerSecond',
    'isBackPressured',
    'currentInputWatermark',
    'currentOutputWatermark',
  ] as const;
  for (const name of TASK_METRICS)
    new Gauge({
      name: `tidemark_taskmanager_job_task_${name}`,
      help: `${name} of a subtask (Flink's task scope)`,
      labelNames: TASK_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const o of observers())
          for (const { vertex, sample, metrics } of o.subtaskSamples()) {
            const raw = metrics[name];
            const v = typeof raw === 'boolean' ? (raw ? 1 : 0) : raw;
            if (v === null) continue;
            this.set(
              {
                job_id: o.jobId,
                job_name: o.jobName,
                task_name: vertex.name,
                vertex_id: String(vertex.id),
                subtask_index: String(sample.subtaskIndex),
              },
              v,
            );
          }
      },
    });

  // Node's own figures, per thread (see `node-metrics.ts`).
  for (const [name, help, read] of NODE_METRICS)
    new Gauge({
      name: `tidemark_node_${name}`,
      help: `${help} (label component: jobmanager, slot or taskmanager)`,
      labelNames: NODE_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const o of observers())
          for (const { labels, snapshot } of nodeThreads(o)) {
            const v = read(snapshot);
            if (Number.isFinite(v)) this.set(labels, v);
          }
      },
    });

  // Operator scope: every counter and gauge operators have; a gauge per name, made on first sight.
  const operatorGauges = new Map<string, Gauge>();
  const operatorGauge = (name: string) => {
    let g = operatorGauges.get(name);
    if (g !== undefined) return g;
    g = new Gauge({
      name: `tidemark_taskmanager_job_task_operator_${name}`,
      help: `${name} of an operator subtask (Flink's operator scope)`,
      labelNames: OPERATOR_LABELS,
      registers: [registry],
      collect() {
        this.reset();
        for (const o of observers())
          for (const { vertex, sample } of o.subtaskSamples())
            for (const op of sample.operators) {
              const raw = op.values[name];
              const v = raw === undefined ? undefined : value(raw);
              if (v === undefined) continue;
              this.set(
                {
                  job_id: o.jobId,
                  job_name: o.jobName,
                  task_name: vertex.name,
                  vertex_id: String(vertex.id),
                  subtask_index: String(sample.subtaskIndex),
                  operator_id: op.operatorId,
                  operator_name: op.operatorName,
                },
                v,
              );
            }
      },
    });
    operatorGauges.set(name, g);
    return g;
  };
  const valid = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
  // NOTE: prom-client asks each metric to collect when scraped; the operator metric names are
  // only known then, so a scrape first makes the gauges of names not seen before.
  const metrics = registry.metrics.bind(registry);
  registry.metrics = async () => {
    for (const o of observers())
      for (const { sample } of o.subtaskSamples())
        for (const op of sample.operators)
          for (const name of Object.keys(op.values)) if (valid.test(name)) operatorGauge(name);
    return metrics();
  };
  return registry;
}
