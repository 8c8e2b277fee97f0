// Incremental checkpoints write only the keys that changed (deltas on a key group's last whole
// snapshot). As properties: with many keys per key group and a few hot keys (so that most
// checkpoints are deltas), failures anywhere and restores at another parallelism give the same
// committed output as a run without them; and the checkpoints really held deltas.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import {
  type CheckpointStorage,
  MemoryCheckpointStorage,
  RedisCheckpointStorage,
  RichMapFunction,
  type StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { checkExactlyOnce, checkJobRescaling, type FailureInjector } from 'tidemark/testing';
import { afterAll, describe, expect, inject, test } from 'vitest';
import { decodeMetadata } from '../../state/snapshot/format.js';
import { testStateDir } from '../helpers/backends.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

/**
 * Counts the key groups stored as deltas in every committed checkpoint, and those a restored run's
 * checkpoint refers to as they were restored (chunks written in an earlier epoch: key groups the
 * run did not change since its restore).
 */
const seen = { deltas: 0, deltaChains: 0, wholeGroups: 0, restarts: 0, sharedAfterRestore: 0 };
function counting(storage: CheckpointStorage): CheckpointStorage {
  // Chunk names start with the id of the checkpoint that wrote them; per epoch, its first id.
  const firstOfEpoch = new Map<number, number>();
  return new Proxy(storage, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      if (prop !== 'commit') return v.bind(target);
      return async (...args: Parameters<CheckpointStorage['commit']>) => {
        const result = await (v as CheckpointStorage['commit']).apply(target, args);
        const meta = decodeMetadata(args[3], { jobId: args[0], checkpointId: args[2] });
        if (!firstOfEpoch.has(args[1])) firstOfEpoch.set(args[1], args[2]);
        const first = firstOfEpoch.get(args[1])!;
        for (const op of meta.operators)
          for (const ref of op.keyGroups) {
            if (args[1] > 1 && Number(ref.chunks[0]!.split('-')[0]) < first) seen.sharedAfterRestore++;
            const n = ref.deltas?.length ?? 0;
            if (n > 0) seen.deltas++;
            else seen.wholeGroups++;
            if (n > 1) seen.deltaChains++;
          }
        return result;
      };
    },
  });
}

function storageFactory(kind: 'memory' | 'redis'): () => CheckpointStorage {
  if (kind === 'memory') return () => counting(new MemoryCheckpointStorage());
  return () => {
    const prefix = `test-${randomUUID()}`;
    cleanups.push(async () => {
      const r = new Redis(inject('redisUrl'));
      const keys = await r.keys(`${prefix}*`);
      if (keys.length > 0) await r.del(...keys);
      r.disconnect();
    });
    return counting(new RedisCheckpointStorage({ url: inject('redisUrl'), keyPrefix: prefix }));
  };
}

interface Ev {
  k: number;
  v: number;
  t: number;
}

class Checked extends RichMapFunction<Ev, Ev> {
  constructor(private readonly injector?: FailureInjector) {
    super();
  }
  map(e: Ev): Ev {
    this.injector?.point('map');
    return e;
  }
}

/**
 * A rolling count per key (value state) and per-key windows (namespaced state and timers), over
 * few key groups so that each holds many keys.
 */
function job(events: readonly Ev[]) {
  return (env: StreamExecutionEnvironment, injector?: FailureInjector) => {
    env.setMaxParallelism(4);
    const input = env
      .fromArray(events, {
        watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Ev>(20).withTimestampAssigner((e) => e.t),
      })
      .map(new Checked(injector));
    // Records of one key may arrive in any order (through two map subtasks): a rolling count
    // is the same whatever the order, a rolling sum would not be.
    const counts = input
      .map((e) => ({ k: e.k, n: 1 }))
      .keyBy((e) => e.k)
      .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
      .map((e) => `count ${e.k}=${e.n}`);
    const windows = input
      .keyBy((e) => e.k)
      .window(TumblingEventTimeWindows.of(200))
      .reduce((a, b) => ({ k: a.k, v: a.v + b.v, t: Math.max(a.t, b.t) }))
      .map((e) => `window ${e.k}=${e.v}`);
    return counts.union(windows).collectCommitted();
  };
}

/** Many keys seen once early, then mostly a few hot ones: later checkpoints change few keys. */
const events = fc
  .tuple(
    fc.integer({ min: 40, max: 80 }),
    fc.array(fc.record({ hot: fc.integer({ min: 0, max: 3 }), v: fc.integer({ min: 0, max: 9 }) }), {
      minLength: 80,
      maxLength: 200,
    }),
  )
  .map(([keys, hot]) => {
    const evs: Ev[] = [];
    for (let k = 0; k < keys; k++) evs.push({ k, v: k % 7, t: k });
    for (const h of hot) evs.push({ k: h.hot * 11, v: h.v, t: evs.length * 2 });
    return evs;
  });

/** The job on a state backend: the heap (the default), or LMDB with a small cache (see BACKENDS). */
function on(backend: 'heap' | 'lmdb' | 'lmdb-cached', build: ReturnType<typeof job>): ReturnType<typeof job> {
  if (backend === 'heap') return build;
  return (env, injector) => {
    // lmdb-cached: a cache that holds every key (snapshots from the cache).
    env.setStateBackend('lmdb', { dir: testStateDir(), cacheEntries: backend === 'lmdb' ? 8 : 1_000_000 });
    return build(env, injector);
  };
}

describe.each([
  ['memory', 'heap'],
  ['redis', 'heap'],
  ['memory', 'lmdb'],
  ['memory', 'lmdb-cached'],
] as const)('incremental checkpoints with %s storage on the %s state backend', (kind, backend) => {
  afterAll(() => {
    // The properties must have exercised deltas, chains of them, and whole key groups.
    expect(seen.deltas).toBeGreaterThan(20);
    expect(seen.deltaChains).toBeGreaterThan(5);
    expect(seen.wholeGroups).toBeGreaterThan(20);
    expect(seen.restarts).toBeGreaterThan(5);
    expect(seen.sharedAfterRestore).toBeGreaterThan(5);
  });

  test('failures in user functions and in the storage lose nothing and count nothing twice', async () => {
    await fc.assert(
      fc.asyncProperty(
        events,
        fc.uniqueArray(fc.integer({ min: 60, max: 300 }), { maxLength: 2 }),
        fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 2 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 3 }),
        async (evs, failAtCalls, writeChunk, seed, parallelism) => {
          const report = await checkExactlyOnce(on(backend, job(evs)), {
            failAtCalls,
            storageFaults: { writeChunk },
            storage: storageFactory(kind),
            seed,
            parallelism,
            checkpointIntervalMs: 5,
          });
          seen.restarts += report.restarts;
        },
      ),
      { numRuns: backend !== 'heap' ? 10 : kind === 'memory' ? 25 : 10 },
    );
  });

  test('a checkpoint with deltas restores at another parallelism', async () => {
    await fc.assert(
      fc.asyncProperty(
        events,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 1, max: 1000 }),
        async (evs, from, to, stopAfterCheckpoints, seed) => {
          await checkJobRescaling((env) => on(backend, job(evs))(env), {
            from,
            to,
            stopAfterCheckpoints,
            storage: storageFactory(kind),
            seed,
            checkpointIntervalMs: 5,
          });
        },
      ),
      { numRuns: backend !== 'heap' ? 8 : kind === 'memory' ? 20 : 8 },
    );
  });
});
