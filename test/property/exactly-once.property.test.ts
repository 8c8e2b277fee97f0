// Exactly-once recovery, as a property: for arbitrary inputs and failures injected at arbitrary
// points — in user functions, in a function's snapshot hook, while writing chunks, before the
// commit, and after the commit with its reply lost — the committed output equals the failure-free
// run, with memory, file and Redis checkpoint storage.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import {
  type AggregateFunction,
  type CheckpointStorage,
  type Collector,
  FileCheckpointStorage,
  MemoryCheckpointStorage,
  type ProcessWindowContext,
  ProcessWindowFunction,
  RedisCheckpointStorage,
  RichMapFunction,
  type StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { checkExactlyOnce, type FailureInjector } from 'tidemark/testing';
import { afterAll, describe, expect, inject, test } from 'vitest';
import { testStateDir } from '../helpers/backends.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

function storageFactory(kind: 'memory' | 'file' | 'redis'): () => CheckpointStorage {
  if (kind === 'memory') return () => new MemoryCheckpointStorage();
  if (kind === 'file')
    return () => {
      const dir = mkdtempSync(join(tmpdir(), 'tidemark-eo-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      return new FileCheckpointStorage(dir, { fsync: false });
    };
  return () => {
    const prefix = `test-${randomUUID()}`;
    cleanups.push(async () => {
      const r = new Redis(inject('redisUrl'));
      const keys = await r.keys(`${prefix}*`);
      if (keys.length > 0) await r.del(...keys);
      r.disconnect();
    });
    return new RedisCheckpointStorage({ url: inject('redisUrl'), keyPrefix: prefix });
  };
}

interface Ev {
  k: string;
  v: number;
  t: number;
}

const sum: AggregateFunction<Ev, number, number> = {
  createAccumulator: () => 0,
  add: (e, a) => a + e.v,
  getResult: (a) => a,
  merge: (a, b) => a + b,
};

class Label extends ProcessWindowFunction<number, string, string, TimeWindow> {
  process(
    key: string,
    ctx: ProcessWindowContext<TimeWindow>,
    sums: Iterable<number>,
    out: Collector<string>,
  ) {
    for (const s of sums) out.collect(`${key}[${ctx.window.start}]=${s}`);
  }
}

/** A map whose snapshot hook can fail (a failure "during the snapshot"). */
class Checked extends RichMapFunction<Ev, Ev> {
  constructor(private readonly injector: FailureInjector) {
    super();
  }
  map(e: Ev): Ev {
    this.injector.point('map');
    return e;
  }
  snapshotState(): void {
    this.injector.point('snapshot');
  }
}

/** Keyed event-time windows plus a rolling count per key, all into one committed output. */
function job(events: readonly Ev[]) {
  return (env: StreamExecutionEnvironment, injector: FailureInjector) => {
    const input = env
      .fromArray(events, {
        parallel: true,
        watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Ev>(50).withTimestampAssigner((e) => e.t),
      })
      .map(new Checked(injector));
    const windows = input
      .keyBy((e) => e.k)
      .window(TumblingEventTimeWindows.of(100))
      .aggregate(sum, new Label());
    const counts = input
      .map((e) => ({ k: e.k, n: 1 }))
      .keyBy((e) => e.k)
      .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
      .map((e) => `count ${e.k}=${e.n}`); // 1, 2, 3 ... per key, whatever the interleaving
    return windows.union(counts).collectCommitted();
  };
}

const events = fc
  .array(
    fc.record({
      k: fc.constantFrom('a', 'b', 'c', 'd'),
      v: fc.integer({ min: 0, max: 9 }),
      d: fc.integer({ min: 0, max: 40 }),
    }),
    {
      minLength: 60,
      maxLength: 200,
    },
  )
  .map((xs) => xs.map((x, i) => ({ k: x.k, v: x.v, t: i * 10 + x.d })));

/** Events, and failure points among the calls their run makes (one per event, plus snapshots). */
const eventsAndFailures = events.chain((evs) =>
  fc.tuple(
    fc.constant(evs),
    fc.uniqueArray(fc.integer({ min: 1, max: evs.length + 10 }), { minLength: 1, maxLength: 3 }),
  ),
);

const calls = (max: number) => fc.uniqueArray(fc.integer({ min: 1, max }), { maxLength: 3 });

/** The job on a state backend: the heap (the default), or LMDB with a small cache (see BACKENDS). */
function on(backend: 'heap' | 'lmdb' | 'lmdb-cached', build: ReturnType<typeof job>): ReturnType<typeof job> {
  if (backend === 'heap') return build;
  return (env, injector) => {
    // lmdb-cached: a cache that holds every key (snapshots from the cache).
    env.setStateBackend('lmdb', { dir: testStateDir(), cacheEntries: backend === 'lmdb' ? 4 : 1_000_000 });
    return build(env, injector);
  };
}

// NOTE: the LMDB backend runs with file storage only and fewer runs (the shared suite's time).
describe.each([
  ['memory', 'heap'],
  ['file', 'heap'],
  ['redis', 'heap'],
  ['file', 'lmdb'],
  ['memory', 'lmdb-cached'],
] as const)('exactly once with %s storage on the %s state backend', (kind, backend) => {
  const numRuns = backend !== 'heap' ? 8 : kind === 'memory' ? 25 : 10;
  // The properties must actually exercise failures and restores from checkpoints.
  const stats = { injected: 0, checkpoints: 0 };
  afterAll(() => {
    expect(stats.injected).toBeGreaterThan(5);
    expect(stats.checkpoints).toBeGreaterThan(10);
  });

  test('failures in user functions and in snapshot hooks', async () => {
    await fc.assert(
      fc.asyncProperty(
        eventsAndFailures,
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 3 }),
        async ([evs, failAt], seed, p) => {
          const report = await checkExactlyOnce(on(backend, job(evs)), {
            failAtCalls: failAt,
            storage: storageFactory(kind),
            seed,
            parallelism: p,
            checkpointIntervalMs: 5,
          });
          expect(report.restarts).toBe(report.injectedFailures);
          stats.injected += report.injectedFailures;
          stats.checkpoints += report.completedCheckpoints;
        },
      ),
      { numRuns },
    );
  });

  test('failures writing chunks, before the commit, and after it (reply lost)', async () => {
    await fc.assert(
      fc.asyncProperty(
        events,
        calls(30),
        calls(8),
        calls(8),
        fc.integer({ min: 1, max: 1000 }),
        async (evs, writeChunk, commitBefore, commitAfter, seed) => {
          const report = await checkExactlyOnce(on(backend, job(evs)), {
            storageFaults: { writeChunk, commitBefore, commitAfter },
            storage: storageFactory(kind),
            seed,
            parallelism: 2,
            checkpointIntervalMs: 5,
          });
          stats.injected += report.injectedFailures;
          stats.checkpoints += report.completedCheckpoints;
        },
      ),
      { numRuns },
    );
  });
});
