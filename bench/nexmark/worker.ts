/**
 * One benchmark process: runs the queries it is given (see {@link WorkerSpec}) and prints one
 * line `RESULT <json>` with a {@link WorkerResult}. `bench/run.ts` starts one per query, so
 * that each query runs in a fresh process, as a job does under `tidemark run` (the JIT's view of
 * the runtime's call sites is not shaped by the queries measured before).
 */
import { type CheckpointStorage, MemoryCheckpointStorage, RedisCheckpointStorage } from 'tidemark';
import {
  type LatencyFigures,
  type Measurement,
  measureLatency,
  measureRecovery,
  type RecoveryFigures,
  runBaseline,
  runGenerator,
  runQuery,
} from './harness.js';
import { queryByName } from './queries.js';
import { deleteKeys } from './redis.js';

/** What a worker is asked to do. */
export interface WorkerSpec {
  queries: string[];
  /** Measure the generator alone first. */
  generator: boolean;
  events: number;
  /** Measured runs of each (tidemark and the loop, alternating); the median counts. */
  repeat: number;
  /** Events of the warm-up runs (0: none). */
  warmupEvents: number;
  checkpointIntervalMs: number;
  /** Bound of each tidemark run (a stalled job fails its figure instead of hanging). */
  runTimeoutMs: number;
  /** Redis for the checkpoint runs, or why there is none. */
  redis: { url: string } | { skipped: string };
  /** Latency runs of windowed queries: share of the measured maximum rate, and duration. */
  latency: { share: number; durationMs: number } | undefined;
}

/** A figure that could not be measured, and why. */
export interface Unavailable {
  unavailable: string;
}

/** Everything measured for one query. */
export interface QueryResult {
  query: string;
  events: number;
  baseline: Measurement;
  tidemark: Measurement;
  /**
   * tidemark's events/s divided by the loop's: the median over the repetitions of the ratio of
   * each tidemark run to the loop run just before it (so that load from elsewhere on the machine
   * weighs on both sides of each ratio).
   */
  ratio: number;
  /** The same with events per CPU-second. */
  ratioPerCore: number;
  /** Both computed the same result (null: results depend on the wall clock). */
  resultsMatch: boolean | null;
  checkpointsMemory: Measurement | Unavailable;
  checkpointsRedis: Measurement | Unavailable;
  twoSlots: Measurement | Unavailable;
  latency: LatencyFigures | Unavailable | undefined;
  /** q5: from a killed worker thread to caught-up output, checkpointing to Redis (else memory). */
  recovery?: (RecoveryFigures & { storage: 'redis' | 'memory' }) | Unavailable;
}

/** What a worker prints. */
export interface WorkerResult {
  generator: Measurement | undefined;
  queries: QueryResult[];
}

function median(ms: Measurement[]): Measurement {
  const sorted = [...ms].sort((a, b) => a.wallMs - b.wallMs);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function medianOf(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

async function unavailable<T>(what: () => Promise<T>): Promise<T | Unavailable> {
  try {
    return await what();
  } catch (e) {
    return { unavailable: `failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}

async function measure(name: string, spec: WorkerSpec): Promise<QueryResult> {
  const q = queryByName(name);
  // Warm-up: let the JIT settle on both paths before measuring.
  if (spec.warmupEvents > 0) {
    runBaseline(q, spec.warmupEvents);
    await runQuery(q, { events: spec.warmupEvents, timeoutMs: spec.runTimeoutMs });
  }
  const base: Measurement[] = [];
  const tm: Measurement[] = [];
  for (let i = 0; i < spec.repeat; i++) {
    base.push(runBaseline(q, spec.events));
    tm.push(await runQuery(q, { events: spec.events, timeoutMs: spec.runTimeoutMs }));
  }
  const baseline = median(base);
  const tidemark = median(tm);
  const resultsMatch = q.deterministic ? [...base, ...tm].every((m) => m.digest === baseline.digest) : null;
  const interval = spec.checkpointIntervalMs;
  const timeoutMs = spec.runTimeoutMs;
  const checkpointsMemory = await unavailable(() =>
    runQuery(q, {
      events: spec.events,
      checkpoints: { intervalMs: interval, storage: new MemoryCheckpointStorage() },
      timeoutMs,
    }),
  );

  const redis = spec.redis;
  const checkpointsRedis =
    'skipped' in redis
      ? { unavailable: redis.skipped }
      : await unavailable(async () => {
          const keyPrefix = `tidemark-bench-${process.pid}`;
          const storage = new RedisCheckpointStorage({ url: redis.url, keyPrefix });
          try {
            return await runQuery(q, {
              events: spec.events,
              checkpoints: { intervalMs: interval, storage },
              timeoutMs,
            });
          } finally {
            await storage.close();
            await deleteKeys(redis.url, keyPrefix);
          }
        });
  const twoSlots = await unavailable(() => runQuery(q, { events: spec.events, slots: 2 }));
  let latency: LatencyFigures | Unavailable | undefined;
  if (spec.latency !== undefined && q.windowEndAfterTimestamp !== undefined) {
    const { share, durationMs } = spec.latency;
    const rate = Math.round(tidemark.eventsPerSecond * share);
    latency = await unavailable(() => measureLatency(q, rate, durationMs, undefined, timeoutMs));
  }
  let recovery: QueryResult['recovery'];
  if (name === 'q5') {
    const recover = async (storage: CheckpointStorage, kind: 'redis' | 'memory') => ({
      ...(await measureRecovery(q, { intervalMs: interval, storage, timeoutMs })),
      storage: kind,
    });
    recovery = await unavailable(async () => {
      if ('skipped' in redis) return recover(new MemoryCheckpointStorage(), 'memory');
      const keyPrefix = `tidemark-bench-recovery-${process.pid}`;
      const storage = new RedisCheckpointStorage({ url: redis.url, keyPrefix });
      try {
        return await recover(storage, 'redis');
      } finally {
        await storage.close();
        await deleteKeys(redis.url, keyPrefix);
      }
    });
  }
  return {
    query: name,
    events: spec.events,
    baseline,
    tidemark,
    ratio: medianOf(tm.map((t, i) => t.eventsPerSecond / base[i]!.eventsPerSecond)),
    ratioPerCore: medianOf(tm.map((t, i) => t.eventsPerCoreSecond / base[i]!.eventsPerCoreSecond)),
    resultsMatch,
    checkpointsMemory,
    checkpointsRedis,
    twoSlots,
    latency,
    ...(recovery === undefined ? {} : { recovery }),
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as WorkerSpec;
  let generator: Measurement | undefined;
  if (spec.generator) {
    if (spec.warmupEvents > 0) runGenerator(spec.warmupEvents);
    const runs = Array.from({ length: spec.repeat }, () => runGenerator(spec.events));
    generator = median(runs);
  }
  const queries: QueryResult[] = [];
  for (const name of spec.queries) queries.push(await measure(name, spec));
  const result: WorkerResult = { generator, queries };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

await main();
