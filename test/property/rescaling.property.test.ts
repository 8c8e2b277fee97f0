// Rescaling, as a property: a job checkpointed at parallelism p and restored at parallelism q
// (1 <= p, q <= 8) gives the same committed results as an uninterrupted run; every key's state
// is on exactly one subtask after the restore (each key's running count continues at +1).
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import {
  type CheckpointStorage,
  MemoryCheckpointStorage,
  RedisCheckpointStorage,
  type StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { checkJobRescaling, KeySequenceChecker } from 'tidemark/testing';
import { afterAll, describe, expect, inject, test } from 'vitest';
import { testStateDir } from '../helpers/backends.js';

interface Ev {
  k: string;
  t: number;
}

const prefixes: string[] = [];
afterAll(async () => {
  const r = new Redis(inject('redisUrl'));
  for (const p of prefixes) {
    const keys = await r.keys(`${p}*`);
    if (keys.length > 0) await r.del(...keys);
  }
  r.disconnect();
});

function job(events: readonly Ev[]) {
  return (env: StreamExecutionEnvironment) => {
    const input = env.fromArray(events, {
      parallel: true,
      watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>().withTimestampAssigner((e) => e.t),
    });
    const counts = input
      .map((e) => ({ k: e.k, n: 1 }))
      .keyBy((e) => e.k)
      .reduce((a, b) => ({ k: a.k, n: a.n + b.n }))
      .map((e) => `count ${e.k} ${e.n}`);
    const windows = input
      .keyBy((e) => e.k)
      .window(TumblingEventTimeWindows.of(500))
      .process<string>({
        process: (k, ctx, els, out) => out.collect(`window ${k} ${ctx.window.start} ${[...els].length}`),
      });
    return counts.union(windows).collectCommitted();
  };
}

const events = fc
  .array(
    fc.record({
      k: fc.integer({ min: 0, max: 30 }).map((i) => `key-${i}`),
      d: fc.integer({ min: 0, max: 20 }),
    }),
    { minLength: 80, maxLength: 250 },
  )
  .map((xs) => {
    let t = 0;
    return xs.map((x) => ({ k: x.k, t: (t += x.d) }));
  });

/**
 * The job on a state backend: the heap (the default), LMDB, or `switch`: each run on the other
 * backend than the one before, so that every restore switches backends (heap → LMDB and back).
 */
function on(backend: 'heap' | 'lmdb' | 'switch', build: ReturnType<typeof job>): ReturnType<typeof job> {
  if (backend === 'heap') return build;
  let runs = 0;
  return (env) => {
    if (backend === 'lmdb' || runs++ % 2 === 1)
      env.setStateBackend('lmdb', { dir: testStateDir(), cacheEntries: 4 });
    return build(env);
  };
}

describe.each([
  ['memory', 'heap'],
  ['redis', 'heap'],
  ['memory', 'lmdb'],
  ['memory', 'switch'],
] as const)('rescaling with %s storage on the %s state backend', (kind, backend) => {
  const numRuns = backend !== 'heap' ? 12 : kind === 'memory' ? 40 : 12;
  const storage = (): CheckpointStorage => {
    if (kind === 'memory') return new MemoryCheckpointStorage();
    const prefix = `test-${randomUUID()}`;
    prefixes.push(prefix);
    return new RedisCheckpointStorage({ url: inject('redisUrl'), keyPrefix: prefix });
  };

  test('checkpoint at p, restore at q: same results; each key counts on, +1 at a time', async () => {
    let restored = 0;
    await fc.assert(
      fc.asyncProperty(
        events,
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 500 }),
        async (evs, p, q, stopAfter, seed) => {
          const r = await checkJobRescaling(on(backend, job(evs)), {
            from: p,
            to: q,
            stopAfterCheckpoints: stopAfter,
            storage,
            seed,
            checkpointIntervalMs: 5,
          });
          if (r.restoredFrom !== undefined) restored++;
        },
      ),
      { numRuns },
    );
    expect(restored).toBeGreaterThan(numRuns === 40 ? 20 : 5);
  });
});

describe('per-key sequences across a rescale', () => {
  test('counts of every key arrive exactly +1, before and after the restore', async () => {
    const evs = Array.from({ length: 600 }, (_x, i) => ({ k: `key-${i % 23}`, t: i }));
    const checker = new KeySequenceChecker<string>();
    let call = 0;
    await checkJobRescaling(job(evs), {
      from: 3,
      to: 5,
      stopAfterCheckpoints: 2,
      storage: () => new MemoryCheckpointStorage(),
      normalize: (values) => {
        if (call++ === 0) return values; // the uninterrupted reference run
        const counts = (values as string[])
          .filter((v) => v.startsWith('count '))
          .map((v) => v.split(' '))
          .sort((a, b) => Number(a[2]) - Number(b[2]));
        for (const [, k, n] of counts) checker.observe(k!, Number(n));
        return values;
      },
    });
    checker.assertValid(
      new Map(
        Array.from({ length: 23 }, (_x, k) => [`key-${k}`, k < 600 % 23 ? 27 : 26] as [string, number]),
      ),
    );
  });
});
