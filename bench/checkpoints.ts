/**
 * The checkpoint benchmark (issue 5): a keyed, windowed job over 1 million keys, run without
 * checkpoints and with a checkpoint every second to Redis. Reports the throughput of both, the
 * duration and size of the checkpoints, the bandwidth of their writes next to a bulk `SET`
 * bandwidth measured against the same Redis, and the time to restore that state.
 *
 * Run alone: `node --expose-gc --import ./bench/register.mjs bench/checkpoints.ts [--events N] [--keys N] [--interval MS] [--pairs N] [--state-backend heap|lmdb] [--quiet]`
 * (`npm run bench` runs it after the queries, in a process of its own).
 */
import { Redis } from 'ioredis';
import {
  type CheckpointStats,
  type CheckpointStorage,
  RedisCheckpointStorage,
  StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { JobObserver } from '../runtime/observe/job-observer.js';
import { benchRedis, deleteKeys } from './nexmark/redis.js';

export interface CheckpointBenchOptions {
  /** Distinct keys (default 1,000,000). */
  keys?: number;
  /** Events per run (default 4,000,000: every key is in the state after the first quarter). */
  events?: number;
  /** Checkpoint interval (default 1000 ms). */
  intervalMs?: number;
  /**
   * Pairs of runs without and with checkpoints, alternated (default 3), after one warm-up run of
   * each: the overhead is each pair's, and their median.
   */
  pairs?: number;
  log?: (line: string) => void;
}

export interface CheckpointBenchResult {
  keys: number;
  events: number;
  intervalMs: number;
  redis: string;
  /** Events per second without checkpoints (median of the pairs' runs). */
  baseline: number;
  /** Events per second with a checkpoint every interval (median of the pairs' runs). */
  withCheckpoints: number;
  /** Median of {@link overheads}. */
  overhead: number;
  /** Each pair's `1 - withCheckpoints / baseline`, in the order they ran. */
  overheads: number[];
  checkpoints: number;
  /** Trigger to commit, median over the checkpoints with the full state. */
  durationMs: number;
  /** Bytes a checkpoint refers to (its chunks and the earlier ones it shares). */
  bytes: number;
  /** Bytes written by one checkpoint (new chunks: whole key groups and deltas). */
  bytesWritten: number;
  /** Bytes per second while the chunks of a checkpoint were being written. */
  writeBytesPerSecond: number;
  /** Bulk SET of 1 MiB values, pipelined, bytes per second. */
  setBytesPerSecond: number;
  /**
   * From the start of the restored run to the first record its window operator processes, restored
   * from the last checkpoint taken before the source finished; NaN (null in JSON) when every
   * checkpoint of the run was taken after (it held the end of the input), so no record came.
   */
  restoreMs: number;
  /** Heap the job's state takes per key (after a GC, every key in the state), bytes. */
  heapPerKey: number;
  /**
   * Memory per key outside the V8 heap: the typed arrays' backing stores (the timers' columns and
   * their index's tables), which `heapUsed` leaves out; bytes.
   */
  arrayBuffersPerKey: number;
  /** The synchronous part of a checkpoint with the full state, on the job's thread: median ms. */
  syncMs: number;
}

interface Event {
  key: number;
  t: number;
}

function buildJob(
  env: StreamExecutionEnvironment,
  keys: number,
  events: number,
  firstRecord?: () => void,
): void {
  let first = firstRecord;
  env
    .fromGenerator<Event>((i) => ({ key: (i * 7919) % keys, t: Math.floor(i / 100) }), {
      count: events,
      watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Event>(1000).withTimestampAssigner((e) => e.t),
    })
    .uid('events')
    .keyBy((e) => e.key)
    // One long window: the state holds every key for the whole run.
    .window(TumblingEventTimeWindows.of(24 * 3600_000))
    .aggregate({
      createAccumulator: () => 0,
      add:
        first === undefined
          ? (_e, n: number) => n + 1
          : (_e, n: number) => {
              first?.();
              first = undefined;
              return n + 1;
            },
      getResult: (n) => n,
      merge: (a, b) => a + b,
    })
    .uid('counts')
    .addSink(() => {});
}

/** Times every chunk write, per checkpoint (chunk names start with the checkpoint id). */
function timed(storage: CheckpointStorage): {
  storage: CheckpointStorage;
  windows: Map<number, { start: number; end: number; bytes: number; busyMs: number }>;
} {
  const windows = new Map<number, { start: number; end: number; bytes: number; busyMs: number }>();
  const wrapped = new Proxy(storage, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== 'writeChunk' || typeof v !== 'function')
        return typeof v === 'function' ? v.bind(target) : v;
      return async (jobId: string, name: string, data: Uint8Array) => {
        const id = Number(name.split('-')[0]);
        const start = performance.now();
        await (v as CheckpointStorage['writeChunk']).call(target, jobId, name, data);
        const end = performance.now();
        const w = windows.get(id);
        if (w === undefined) windows.set(id, { start, end, bytes: data.length, busyMs: end - start });
        else {
          w.start = Math.min(w.start, start);
          w.end = Math.max(w.end, end);
          w.bytes += data.length;
          w.busyMs += end - start;
        }
      };
    },
  });
  return { storage: wrapped, windows };
}

async function throughput(
  keys: number,
  events: number,
  checkpoint?: { storage: CheckpointStorage; intervalMs: number; jobId: string },
): Promise<{ perSecond: number; stats: CheckpointStats[]; beforeEnd: Set<number> }> {
  const env = new StreamExecutionEnvironment({ parallelism: 1 });
  if (checkpoint !== undefined) {
    // NOTE: four kept: the restore below starts from the last checkpoint taken before the source
    // finished, not from the final one the finished job takes (from which nothing is left to read),
    // nor from one taken after the source finished while windows still fired.
    env.enableCheckpointing(checkpoint.intervalMs, { retain: 4 });
    env.setCheckpointStorage(checkpoint.storage);
  }
  buildJob(env, keys, events);
  (globalThis as { gc?: () => void }).gc?.();
  const stats: CheckpointStats[] = [];
  // Checkpoints completed while the source still had records to read (so triggered before it
  // finished): a restore from one of them has records left to process.
  const beforeEnd = new Set<number>();
  const t0 = performance.now();
  const client = env.executeAsync({
    jobId: checkpoint?.jobId ?? 'checkpoint-bench',
    onEvent: (e) => {
      if (e.type !== 'checkpoint' || e.stats.final) return;
      stats.push(e.stats);
      if (client.metrics().sourceRecords < events) beforeEnd.add(e.stats.checkpointId);
    },
  });
  await client.result;
  return { perSecond: events / ((performance.now() - t0) / 1000), stats, beforeEnd };
}

/** The restore figure (see {@link CheckpointBenchResult.restoreMs}; null once through JSON). */
function restoreText(ms: number | null): string {
  return typeof ms === 'number' && Number.isFinite(ms)
    ? `${ms.toFixed(0)} ms to the first record at the window operator`
    : 'not measured: the last checkpoint held the end of the input (no record came after the restore)';
}

/** Pipelined SET of 1 MiB values (the size of a checkpoint chunk): bytes per second. */
async function setBandwidth(url: string): Promise<number> {
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  try {
    const value = Buffer.alloc(1024 * 1024, 7);
    const n = 64;
    let best = 0;
    for (let round = 0; round < 3; round++) {
      const t0 = performance.now();
      const pipeline = redis.pipeline();
      for (let i = 0; i < n; i++) pipeline.set(`tidemark-bench-set-${i}`, value);
      const results = (await pipeline.exec()) ?? [];
      for (const [err] of results) if (err) throw err;
      best = Math.max(best, (n * value.length) / ((performance.now() - t0) / 1000));
    }
    await redis.del(...Array.from({ length: n }, (_, i) => `tidemark-bench-set-${i}`));
    return best;
  } finally {
    redis.disconnect();
  }
}

async function restoreTime(
  keys: number,
  events: number,
  storage: CheckpointStorage,
  jobId: string,
  checkpointId: number,
): Promise<number> {
  const env = new StreamExecutionEnvironment({ parallelism: 1 });
  let firstAt = Number.NaN;
  buildJob(env, keys, events, () => {
    firstAt = performance.now();
  });
  (globalThis as { gc?: () => void }).gc?.();
  const t0 = performance.now();
  const client = env.executeAsync({ jobId, restore: checkpointId, storage });
  // NOTE: the time the window operator gets its first record, stamped by its aggregate function:
  // a restore installs key groups as records need them, so records flow before all state is in.
  let ended = false;
  void client.result.then(
    () => (ended = true),
    () => (ended = true),
  );
  while (Number.isNaN(firstAt) && !ended) await new Promise((r) => setTimeout(r, 1));
  client.cancel();
  await client.result.catch(() => undefined);
  return firstAt - t0;
}

/**
 * Heap per key of the job's state: the heap after a GC once every key has had two events, less
 * the heap after a GC before the job started, over the number of keys; and the same for the typed
 * arrays' backing stores, which live outside the heap. The job is cancelled then.
 */
async function memoryPerKey(keys: number): Promise<{ heap: number; arrayBuffers: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return { heap: Number.NaN, arrayBuffers: Number.NaN };
  const env = new StreamExecutionEnvironment({ parallelism: 1 });
  buildJob(env, keys, 100 * keys);
  // NOTE: a turn of the event loop first: the runs before may leave their job's state reachable
  // until the microtasks that ended it are done (seen as 73 MB more in `before`, and 48 bytes a
  // key, in 4 of 9 runs once checkpoints ended with promises of their own).
  // Two collections a turn apart: the backing stores of typed arrays freed by the first go back
  // with the turn (measured once as -44 bytes a key in typed arrays without the second).
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc();
  const before = process.memoryUsage();
  const client = env.executeAsync({ jobId: 'checkpoint-bench-heap' });
  while (client.metrics().sourceRecords < 2 * keys) await new Promise((r) => setTimeout(r, 5));
  gc();
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc();
  const after = process.memoryUsage();
  client.cancel();
  await client.result.catch(() => undefined);
  return {
    heap: (after.heapUsed - before.heapUsed) / keys,
    arrayBuffers: (after.arrayBuffers - before.arrayBuffers) / keys,
  };
}

/**
 * The synchronous part of the checkpoints of a watched run (the job observer records each
 * subtask's figures): the median, over checkpoints with every key in the state, of the slowest
 * subtask's synchronous part. A run of its own: watching times every step of the job.
 */
async function syncTime(
  keys: number,
  events: number,
  storage: CheckpointStorage,
  intervalMs: number,
): Promise<number> {
  const env = new StreamExecutionEnvironment({ parallelism: 1 });
  env.enableCheckpointing(intervalMs, { retain: 2 });
  env.setCheckpointStorage(storage);
  buildJob(env, keys, events);
  const observer = new JobObserver({ mode: 'local', slots: 1 });
  const stats: CheckpointStats[] = [];
  // The final checkpoint (after the input ended) counts only if no other completed.
  const finals: CheckpointStats[] = [];
  const client = env.executeAsync({
    jobId: `checkpoint-bench-sync-${Date.now()}`,
    observer,
    onEvent: (e) => {
      if (e.type === 'checkpoint') (e.stats.final ? finals : stats).push(e.stats);
    },
  });
  await client.result;
  if (stats.length === 0) stats.push(...finals);
  const largest = Math.max(...stats.map((s) => s.fullBytes));
  const sync: number[] = [];
  for (const s of stats) {
    if (s.fullBytes < 0.9 * largest) continue;
    let slowest = 0;
    for (const v of observer.checkpointDetails(s.checkpointId)?.vertices ?? [])
      for (const t of v.subtasks) slowest = Math.max(slowest, t.syncDurationMs ?? 0);
    sync.push(slowest);
  }
  return median(sync);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
}

/** Runs the benchmark; a string says why it was skipped. */
export async function runCheckpointBench(
  options: CheckpointBenchOptions = {},
): Promise<CheckpointBenchResult | string> {
  const keys = options.keys ?? 1_000_000;
  const events = options.events ?? 4_000_000;
  const intervalMs = options.intervalMs ?? 1000;
  const log = options.log ?? (() => {});
  const redis = await benchRedis();
  if (typeof redis === 'string') return redis;
  try {
    const jobId = `checkpoint-bench-${Date.now()}`;
    // NOTE: a prefix of its own, deleted at the end: the Redis may be shared (TIDEMARK_REDIS_URL).
    const keyPrefix = `tidemark-bench-cp-${process.pid}`;
    const base = new RedisCheckpointStorage({ url: redis.url, keyPrefix });
    log(`checkpoint bench: ${events.toLocaleString('en')} events over ${keys.toLocaleString('en')} keys`);
    // NOTE: alternated pairs, after a warm-up run of each kind (the first run of a process is
    // slower while the code is compiled): a single run of each moved by 20 points from one
    // invocation to the next on a shared machine. Each checkpointed run has a job id of its own;
    // the last one's checkpoints give the figures below and the restore.
    const pairs = Math.max(1, options.pairs ?? 3);
    const run = (i: number) => {
      const t = timed(base);
      return throughput(keys, events, { storage: t.storage, intervalMs, jobId: `${jobId}-${i}` }).then(
        (r) => ({
          ...r,
          jobId: `${jobId}-${i}`,
          windows: t.windows,
        }),
      );
    };
    await throughput(keys, events);
    // NOTE: the figures below come from the last checkpointed run in which a checkpoint completed
    // before the job finished (the warm-up's if none of the pairs' did: short runs on a fast
    // machine may end before their first interval).
    let withCp = await run(0);
    const nones: number[] = [];
    const cps: number[] = [];
    const overheads: number[] = [];
    for (let p = 0; p < pairs; p++) {
      let none: number;
      let cp: Awaited<ReturnType<typeof run>>;
      if (p % 2 === 0) {
        none = (await throughput(keys, events)).perSecond;
        cp = await run(p + 1);
      } else {
        cp = await run(p + 1);
        none = (await throughput(keys, events)).perSecond;
      }
      if (cp.stats.length > 0 || withCp.stats.length === 0) withCp = cp;
      nones.push(none);
      cps.push(cp.perSecond);
      overheads.push(1 - cp.perSecond / none);
      log(
        `  pair ${p + 1}: ${(none / 1e6).toFixed(3)} M events/s without checkpoints, ${(cp.perSecond / 1e6).toFixed(3)} with a checkpoint every ${intervalMs} ms to Redis (${cp.stats.length} checkpoints): ${(100 * overheads[p]!).toFixed(0)} % lower`,
      );
    }
    const windows = withCp.windows;
    if (withCp.stats.length === 0) {
      await base.close();
      return `skipped: no checkpoint completed during a run of ${events} events (give it more events)`;
    }
    // Checkpoints once every key is in the state (the first ones hold fewer).
    const full = withCp.stats.filter(
      (s) => s.fullBytes >= 0.9 * Math.max(...withCp.stats.map((x) => x.fullBytes)),
    );
    const fullWindows = full.map((s) => windows.get(s.checkpointId)).filter((w) => w !== undefined);
    const writeBytesPerSecond =
      fullWindows.reduce((n, w) => n + w.bytes, 0) /
      (fullWindows.reduce((n, w) => n + (w.end - w.start), 0) / 1000);
    const setBytesPerSecond = await setBandwidth(redis.url);
    // NOTE: the last checkpoint taken before the source finished (one taken after holds the end of
    // the input: no record would come after its restore); the last one if none was.
    const ids = withCp.stats.map((s) => s.checkpointId);
    const restorable = ids.filter((id) => withCp.beforeEnd.has(id));
    const from = restorable.length > 0 ? restorable : ids;
    const restoreMs = await restoreTime(keys, events, base, withCp.jobId, from[from.length - 1]!);
    log(`  restore: ${restoreText(restoreMs)}`);
    const syncMs = await syncTime(keys, events, base, intervalMs);
    log(`  synchronous part of a checkpoint: ${syncMs.toFixed(0)} ms`);
    await base.close();
    const perKey = await memoryPerKey(keys);
    log(
      `  heap per key: ${perKey.heap.toFixed(0)} bytes (and ${perKey.arrayBuffers.toFixed(0)} in typed arrays)`,
    );
    return {
      keys,
      events,
      intervalMs,
      redis: redis.source,
      baseline: median(nones),
      withCheckpoints: median(cps),
      overhead: median(overheads),
      overheads,
      checkpoints: withCp.stats.length,
      durationMs: median(full.map((s) => s.durationMs)),
      bytes: median(full.map((s) => s.fullBytes)),
      bytesWritten: median(full.map((s) => s.bytesWritten)),
      writeBytesPerSecond,
      setBytesPerSecond,
      restoreMs,
      heapPerKey: perKey.heap,
      arrayBuffersPerKey: perKey.arrayBuffers,
      syncMs,
    };
  } finally {
    await deleteKeys(redis.url, `tidemark-bench-cp-${process.pid}`);
    await redis.stop();
  }
}

/** The report lines of a result. */
export function formatCheckpointBench(r: CheckpointBenchResult | string): string[] {
  if (typeof r === 'string') return [`checkpoints: ${r}`];
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  return [
    `checkpoints (${r.keys.toLocaleString('en')} keys, ${r.events.toLocaleString('en')} events, ${r.redis}):`,
    `  throughput without checkpoints     ${(r.baseline / 1e6).toFixed(3)} M events/s`,
    `  ${`throughput, checkpoint/${r.intervalMs} ms`.padEnd(35)}${(r.withCheckpoints / 1e6).toFixed(3)} M events/s  (${(100 * r.overhead).toFixed(0)} % lower, median of ${r.overheads.length} alternated pairs: ${r.overheads.map((o) => (100 * o).toFixed(0)).join(', ')} %; target <= 10 % in every run)`,
    `  checkpoint duration                ${r.durationMs.toFixed(0)} ms (median of ${r.checkpoints}, trigger to commit)`,
    `  checkpoint size                    ${mb(r.bytesWritten)} written each (median), ${mb(r.bytes)} referred to with the shared chunks`,
    `  Redis write bandwidth              ${mb(r.writeBytesPerSecond)}/s during checkpoints vs ${mb(r.setBytesPerSecond)}/s bulk SET (${((100 * r.writeBytesPerSecond) / r.setBytesPerSecond).toFixed(0)} %; target >= 50 %)`,
    `  restore of that state              ${restoreText(r.restoreMs)}`,
    `  synchronous part of a checkpoint   ${typeof r.syncMs === 'number' && Number.isFinite(r.syncMs) ? `${r.syncMs.toFixed(0)} ms (median, slowest subtask, a watched run)` : 'not measured: no checkpoint completed in the watched run'}`,
    `  heap per key                       ${typeof r.heapPerKey !== 'number' || Number.isNaN(r.heapPerKey) ? 'not measured (run node with --expose-gc)' : `${r.heapPerKey.toFixed(0)} bytes, and ${r.arrayBuffersPerKey.toFixed(0)} bytes in typed arrays (outside the heap)`}`,
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : Number(process.argv[i + 1]);
  };
  // --state-backend lmdb: the jobs keep their state in LMDB (TIDEMARK_STATE_BACKEND is the default
  // of jobs that set none; a process started by bench/run.ts inherits it from there).
  const backend = process.argv.indexOf('--state-backend');
  if (backend >= 0) process.env.TIDEMARK_STATE_BACKEND = process.argv[backend + 1];
  const result = await runCheckpointBench({
    ...(arg('--keys') === undefined ? {} : { keys: arg('--keys')! }),
    ...(arg('--events') === undefined ? {} : { events: arg('--events')! }),
    ...(arg('--interval') === undefined ? {} : { intervalMs: arg('--interval')! }),
    ...(arg('--pairs') === undefined ? {} : { pairs: arg('--pairs')! }),
    ...(process.argv.includes('--quiet') ? {} : { log: (l: string) => process.stderr.write(`${l}\n`) }),
  });
  // --result: one line for bench/run.ts, which runs this in a process of its own.
  if (process.argv.includes('--result')) process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  else for (const line of formatCheckpointBench(result)) console.log(line);
}
