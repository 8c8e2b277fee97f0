/**
 * Measurements of one query: tidemark's run (optionally with checkpoints), the hand-written loop,
 * the generator alone, and window emit latency at a fixed rate. CPU time is this process's user +
 * system time over the run (`process.cpuUsage()`: every thread, the generator, GC and the
 * runtime included).
 */

import { fileURLToPath } from 'node:url';
import {
  buildJob,
  type CheckpointStorage,
  type ExecuteOptions,
  type JobDefinition,
  RestartStrategies,
  StreamExecutionEnvironment,
} from 'tidemark';
import {
  DEFAULT_CONFIG,
  eventTimestamp,
  type NexmarkConfig,
  nexmarkStream,
} from '../../examples/nexmark/generator.js';
import { JobObserver } from '../../runtime/observe/job-observer.js';
import { generatorOnly } from './baselines.js';
import type { BenchQuery } from './queries.js';

/** Figures of one run. */
export interface Measurement {
  events: number;
  wallMs: number;
  /** User + system CPU time of the process over the run. */
  cpuMs: number;
  eventsPerSecond: number;
  /** Events per CPU-second (per core). */
  eventsPerCoreSecond: number;
  /** Largest `heapUsed` sampled during the run (tidemark runs; 0 for synchronous loops). */
  heapPeakBytes: number;
  /** Largest resident set size sampled during the run (the whole process). */
  rssPeakBytes: number;
  /** Result records. */
  records: number;
  /** Digest of the results (see `ResultChecker`). */
  digest: string;
  /** With checkpoints: how many completed, and the last one's figures. */
  checkpoints?: CheckpointFigures;
  /**
   * From the start of the run until every subtask was deployed (on several slots: until every
   * slot's worker thread had loaded the job), and events/s over the rest of the run.
   */
  startupMs?: number;
  eventsPerSecondAfterStartup?: number;
}

/** Checkpoint figures of a run. */
export interface CheckpointFigures {
  intervalMs: number;
  completed: number;
  lastDurationMs: number | undefined;
  lastBytesWritten: number | undefined;
  lastFullBytes: number | undefined;
}

/** Options of {@link runQuery}. */
export interface RunQueryOptions {
  events: number;
  config?: NexmarkConfig;
  /**
   * Task slots to run the query on. 1 (the default) runs it in this thread at parallelism 1; more
   * run it at parallelism `slots` on as many worker threads, each importing `slot-job.ts` (as
   * `tidemark run --slots N` does), with the default generator configuration. Their results stay in
   * the slots: `records` is 0 and `digest` that of no results.
   */
  slots?: number;
  /** Checkpoints every `intervalMs` to `storage` (off when undefined). */
  checkpoints?: { intervalMs: number; storage: CheckpointStorage };
  /** The run is cancelled, and fails, after this long (default {@link RUN_TIMEOUT_MS}). */
  timeoutMs?: number;
}

/** Default bound of one run: a job that stalls fails its figure instead of hanging the benchmark. */
export const RUN_TIMEOUT_MS = 180_000;

/** Runs a job; cancels it and throws if it has not finished after `timeoutMs`. */
async function execute(
  env: StreamExecutionEnvironment,
  options: ExecuteOptions,
  timeoutMs: number,
): Promise<void> {
  // TIDEMARK_BENCH_OBSERVE=1: the job is watched as with `tidemark run --web-port` (timed steps,
  // samples every 500 ms), to measure what watching costs.
  const observe = process.env.TIDEMARK_BENCH_OBSERVE === '1';
  const client = env.executeAsync(
    observe ? { ...options, observer: new JobObserver({ mode: 'local', slots: 1 }) } : options,
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      client.cancel();
      reject(new Error(`${client.jobName} did not finish within ${timeoutMs / 1000} s (cancelled)`));
    }, timeoutMs);
  });
  try {
    await Promise.race([client.result, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Samples memory while asynchronous work runs (the executor yields every ~10 ms). */
class MemorySampler {
  heapPeak = 0;
  rssPeak = 0;
  private timer: NodeJS.Timeout | undefined;
  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 20);
  }
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
  sample(): void {
    const m = process.memoryUsage();
    if (m.heapUsed > this.heapPeak) this.heapPeak = m.heapUsed;
    if (m.rss > this.rssPeak) this.rssPeak = m.rss;
  }
}

function figures(
  events: number,
  wallMs: number,
  cpu: NodeJS.CpuUsage,
): Pick<Measurement, 'events' | 'wallMs' | 'cpuMs' | 'eventsPerSecond' | 'eventsPerCoreSecond'> {
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    events,
    wallMs,
    cpuMs,
    eventsPerSecond: (events * 1000) / wallMs,
    eventsPerCoreSecond: (events * 1000) / cpuMs,
  };
}

let runs = 0;

/** The job module of runs on several slots. */
const SLOT_JOB = fileURLToPath(new URL('./slot-job.ts', import.meta.url));

/** The job of runs on several slots: `slot-job.ts` running `q` over `events` events. */
async function slotJob(
  q: BenchQuery,
  events: number,
  overrides: { parallelism: number; jobName: string },
): Promise<StreamExecutionEnvironment> {
  // Read by slot-job.ts in every slot (worker threads copy the environment when they start).
  process.env.NEXMARK_BENCH_QUERY = q.name;
  process.env.NEXMARK_EVENTS = String(events);
  const mod = (await import(SLOT_JOB)) as { default: JobDefinition };
  return buildJob(mod.default, overrides);
}

/** Runs a query on tidemark (one job, parallelism 1) over `events` generated events. */
export async function runQuery(q: BenchQuery, options: RunQueryOptions): Promise<Measurement> {
  const slots = options.slots ?? 1;
  gc?.();
  let env: StreamExecutionEnvironment;
  const overrides = { parallelism: slots, jobName: `nexmark-${q.name}` };
  if (slots > 1) env = await slotJob(q, options.events, overrides);
  else {
    env = new StreamExecutionEnvironment(overrides);
  }
  const cp = options.checkpoints;
  if (cp !== undefined) {
    env.enableCheckpointing(cp.intervalMs);
    env.setCheckpointStorage(cp.storage);
  }
  const checker = q.checker();
  if (slots === 1)
    q.attach(
      nexmarkStream(env, { count: options.events, config: options.config ?? DEFAULT_CONFIG }),
      checker,
    );
  let completed = 0;
  let last: { durationMs: number; bytesWritten: number; fullBytes: number } | undefined;
  const sampler = new MemorySampler();
  sampler.start();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let runningAt: number | undefined;
  let finishedAt: number | undefined;
  try {
    await execute(
      env,
      {
        jobId: `bench-${q.name}-${process.pid}-${++runs}`,
        ...(slots > 1 ? { distributed: { slots, jobPath: SLOT_JOB, overrides } } : {}),
        onEvent: (e) => {
          if (e.type === 'running') runningAt ??= performance.now();
          if (e.type === 'finished') finishedAt ??= performance.now();
          if (e.type === 'checkpoint') {
            completed++;
            last = e.stats;
          }
        },
      },
      options.timeoutMs ?? RUN_TIMEOUT_MS,
    );
  } finally {
    sampler.stop();
  }
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    ...figures(options.events, wallMs, cpu),
    heapPeakBytes: sampler.heapPeak,
    rssPeakBytes: sampler.rssPeak,
    records: checker.records,
    digest: checker.digest(),
    ...(runningAt === undefined
      ? {}
      : {
          startupMs: runningAt - t0,
          // NOTE: to when every subtask finished: the end of a run (its last commit, the threads'
          // teardown) is not throughput.
          eventsPerSecondAfterStartup: (options.events * 1000) / ((finishedAt ?? t0 + wallMs) - runningAt),
        }),
    ...(cp === undefined
      ? {}
      : {
          checkpoints: {
            intervalMs: cp.intervalMs,
            completed,
            lastDurationMs: last?.durationMs,
            lastBytesWritten: last?.bytesWritten,
            lastFullBytes: last?.fullBytes,
          },
        }),
  };
}

/** Runs a query's hand-written loop over `events` generated events. */
export function runBaseline(
  q: BenchQuery,
  events: number,
  config: NexmarkConfig = DEFAULT_CONFIG,
): Measurement {
  gc?.();
  const checker = q.checker();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  q.baseline(events, config, checker);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const m = process.memoryUsage();
  return {
    ...figures(events, wallMs, cpu),
    heapPeakBytes: 0,
    rssPeakBytes: m.rss,
    records: checker.records,
    digest: checker.digest(),
  };
}

/** Generates `events` events and nothing else. */
export function runGenerator(events: number, config: NexmarkConfig = DEFAULT_CONFIG): Measurement {
  gc?.();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const x = generatorOnly(events, config);
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return {
    ...figures(events, wallMs, cpu),
    heapPeakBytes: 0,
    rssPeakBytes: 0,
    records: 0,
    digest: String(x),
  };
}

/** Window emit latency of a windowed query at a fixed rate. */
export interface LatencyFigures {
  ratePerSecond: number;
  /** The rate the source achieved (events / wall time of the run). */
  achievedPerSecond: number;
  events: number;
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Of the latency, the wall time the 4 s out-of-orderness bound of the watermarks stands for. */
  watermarkBoundMs: number;
}

/** The nearest-rank percentile `p` (0..1) of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

/**
 * Runs a windowed query at `ratePerSecond` for about `durationMs` and measures, for every result,
 * wall-clock emit time - window end mapped to wall time.
 *
 * NOTE: mapping event time to wall time. Event `n` is due at `start + n * 1000 / rate` (the source
 * paces by event number) and has event time `baseTime + floor(n * interEventDelayUs / 1000)`; so
 * event time `E` is reached, in wall time, at `start + (E - baseTime) * 1e6 / (interEventDelayUs *
 * rate)`. With the default 10,000 events/s of event time, event time runs rate/10,000 times faster
 * than the wall clock. Results of windows that only the final watermark fires (they end after the
 * last event's time minus the 4 s bound) are left out.
 */
export async function measureLatency(
  q: BenchQuery,
  ratePerSecond: number,
  durationMs: number,
  config: NexmarkConfig = DEFAULT_CONFIG,
  timeoutMs: number = RUN_TIMEOUT_MS,
): Promise<LatencyFigures> {
  const events = Math.max(1, Math.round((ratePerSecond * durationMs) / 1000));
  gc?.();
  const env = new StreamExecutionEnvironment({ parallelism: 1, jobName: `nexmark-${q.name}-latency` });
  const startTime = Date.now() + 100;
  const wallMsPerEventMs = 1e6 / (config.interEventDelayUs * ratePerSecond);
  const wallOf = (eventTime: number) => startTime + (eventTime - config.baseTime) * wallMsPerEventMs;
  const lastRegular = eventTimestamp(events - 1, config) - 4000;
  const latencies: number[] = [];
  const results = q.attach(
    nexmarkStream(env, { count: events, config, ratePerSecond, startTime }),
    q.checker(),
  );
  const endAfter = q.windowEndAfterTimestamp ?? 0;
  results.addSink((_r, ctx) => {
    // A result carries the time of the timer that emitted it; the last regular watermark (before
    // the final one) is lastRegular - 1.
    const ts = ctx.timestamp();
    if (ts !== null && ts < lastRegular) latencies.push(Date.now() - wallOf(ts + endAfter));
  });
  await execute(env, {}, timeoutMs);
  const achievedPerSecond = (events * 1000) / (Date.now() - startTime);
  latencies.sort((a, b) => a - b);
  return {
    ratePerSecond,
    achievedPerSecond,
    events,
    samples: latencies.length,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    maxMs: latencies.length === 0 ? Number.NaN : latencies[latencies.length - 1]!,
    watermarkBoundMs: 4000 * wallMsPerEventMs,
  };
}

/** Recovery from a killed worker thread (see {@link measureRecovery}). */
export interface RecoveryFigures {
  /** Events the sources had read when the worker was killed. */
  eventsAtKill: number;
  /** The checkpoint the job restarted from. */
  restoredCheckpoint: number;
  /** Events the sources had read when that checkpoint completed: about its position. */
  eventsAtRestoredCheckpoint: number;
  /** From the kill until every slot of the restarted job had loaded the job. */
  restartMs: number;
  /** From the kill until the restarted job had read again every event read before the kill. */
  caughtUpMs: number;
  /** Resolution of the event counts: slots report their metrics every this often. */
  resolutionMs: number;
}

/** How often slots report their metrics (runtime/distributed/slot.ts). */
const SLOT_METRICS_MS = 500;

/**
 * Runs a query on 2 slots, unbounded, with a checkpoint every `intervalMs` to `storage`; half an
 * interval after the second checkpoint, kills slot 1's worker thread and times the recovery: the
 * job restarts at once
 * (no restart delay) from its latest checkpoint, replays what that checkpoint did not cover and is
 * caught up when its sources have read again as many events as before the kill. Event counts come
 * from the slots' metrics, so the figures are good to about {@link SLOT_METRICS_MS}.
 */
export async function measureRecovery(
  q: BenchQuery,
  options: { intervalMs: number; storage: CheckpointStorage; timeoutMs?: number },
): Promise<RecoveryFigures> {
  const overrides = { parallelism: 2, jobName: `nexmark-${q.name}-recovery` };
  // NOTE: unbounded in practice; the run is cancelled once it has caught up.
  const env = await slotJob(q, 1e12, overrides);
  env.enableCheckpointing(options.intervalMs);
  env.setCheckpointStorage(options.storage);
  env.setRestartStrategy(RestartStrategies.fixedDelay(1, 0));
  const deadline = performance.now() + (options.timeoutMs ?? RUN_TIMEOUT_MS);
  const completedAt = new Map<number, number>();
  let restored: number | undefined;
  let attempts = 0;
  let runningAt: number | undefined;
  let metrics = () => 0;
  const client = env.executeAsync({
    jobId: `bench-recovery-${q.name}-${process.pid}-${++runs}`,
    distributed: { slots: 2, jobPath: SLOT_JOB, overrides },
    onEvent: (e) => {
      if (e.type === 'checkpoint') completedAt.set(e.stats.checkpointId, metrics());
      if (e.type === 'restored') restored = e.checkpointId;
      if (e.type === 'running' && ++attempts === 2) runningAt = performance.now();
    },
  });
  metrics = () => client.metrics().sourceRecords;
  const until = async (done: () => boolean, what: string) => {
    while (!done()) {
      if (performance.now() > deadline)
        throw new Error(`recovery of ${q.name}: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  try {
    await until(() => completedAt.size >= 2, 'two checkpoints');
    // Kill half an interval after a checkpoint, right after the slots reported their counts
    // (so that the count at the kill is fresh and there is something to replay).
    const after = performance.now() + options.intervalMs / 2;
    await until(() => performance.now() >= after, 'half an interval');
    const before = metrics();
    await until(() => metrics() !== before, 'fresh metrics');
    const eventsAtKill = metrics();
    const killedAt = performance.now();
    await client.killSlot(1);
    await until(() => runningAt !== undefined && restored !== undefined, 'the restart');
    const restoredCheckpoint = restored!;
    const eventsAtRestoredCheckpoint = completedAt.get(restoredCheckpoint) ?? 0;
    // NOTE: the restarted job's counts start at 0, from the restored position.
    await until(() => metrics() >= eventsAtKill - eventsAtRestoredCheckpoint, 'the replay');
    return {
      eventsAtKill,
      restoredCheckpoint,
      eventsAtRestoredCheckpoint,
      restartMs: runningAt! - killedAt,
      caughtUpMs: performance.now() - killedAt,
      resolutionMs: SLOT_METRICS_MS,
    };
  } finally {
    client.cancel();
    await client.result.catch(() => undefined);
  }
}
