import fc from 'fast-check';
import {
  type AggregateFunction,
  type Collector,
  type KeyedProcessContext,
  KeyedProcessFunction,
  RichMapFunction,
  type RuntimeContext,
  StreamExecutionEnvironment,
} from 'tidemark';
import { describe, expect, test } from 'vitest';

const record = fc.record({
  key: fc.oneof(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.integer({ min: 0, max: 40 }).map(String)),
  value: fc.integer({ min: -1000, max: 1000 }),
});
type Rec = { key: string; value: number };

/** Parallelism in [1, 8] and a maxParallelism >= it. */
const parallelism = fc
  .integer({ min: 1, max: 8 })
  .chain((p) => fc.tuple(fc.constant(p), fc.integer({ min: p, max: 300 })));

function lastPerKey<T>(values: T[], key: (v: T) => string): Map<string, T> {
  const m = new Map<string, T>();
  for (const v of values) m.set(key(v), v);
  return m;
}

const avg: AggregateFunction<
  Rec,
  { key: string; sum: number; n: number },
  { key: string; sum: number; n: number }
> = {
  createAccumulator: () => ({ key: '', sum: 0, n: 0 }),
  add: (r, acc) => ({ key: r.key, sum: acc.sum + r.value, n: acc.n + 1 }),
  getResult: (acc) => acc,
};

describe('keyed rolling aggregations are independent of parallelism', () => {
  test('reduce and aggregate give the batch result per key at every parallelism and maxParallelism', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(record, { maxLength: 300 }),
        parallelism,
        fc.boolean(),
        async (records, [p, maxP], parallelSource) => {
          const expected = new Map<string, { sum: number; n: number }>();
          for (const r of records) {
            const e = expected.get(r.key) ?? { sum: 0, n: 0 };
            expected.set(r.key, { sum: e.sum + r.value, n: e.n + 1 });
          }
          const env = new StreamExecutionEnvironment({ parallelism: p, maxParallelism: maxP });
          const keyed = env.fromArray(records, { parallel: parallelSource }).keyBy((r) => r.key);
          const reduced = keyed.reduce((a, b) => ({ key: a.key, value: a.value + b.value })).collect();
          const aggregated = keyed.aggregate(avg).collect();
          await env.execute();

          // One update per record, and the last update of each key is the batch result.
          expect(reduced.values.length).toBe(records.length);
          expect(aggregated.values.length).toBe(records.length);
          const lastReduced = lastPerKey(reduced.values, (r) => r.key);
          const lastAgg = lastPerKey(aggregated.values, (r) => r.key);
          expect(new Map([...lastReduced].map(([k, v]) => [k, v.value]))).toEqual(
            new Map([...expected].map(([k, v]) => [k, v.sum])),
          );
          expect(new Map([...lastAgg].map(([k, v]) => [k, { sum: v.sum, n: v.n }]))).toEqual(expected);
        },
      ),
      { numRuns: 60 },
    );
  });
});

class SubtaskTag<T> extends RichMapFunction<T, [number, T]> {
  private index = -1;
  override open(ctx: RuntimeContext) {
    this.index = ctx.taskInfo.subtaskIndex;
  }
  map(v: T): [number, T] {
    return [this.index, v];
  }
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

describe('partitionings deliver every record the right number of times', () => {
  const values = fc.array(fc.integer(), { maxLength: 200 });
  const par = fc.integer({ min: 1, max: 8 });

  test('union delivers each record of every input once (a stream unioned with itself, twice)', async () => {
    await fc.assert(
      fc.asyncProperty(values, values, par, async (a, b, p) => {
        const env = new StreamExecutionEnvironment({ parallelism: p });
        const sa = env.fromArray(a, { parallel: true });
        const sb = env.fromArray(b);
        const out = sa
          .union(sb, sa)
          .map((x) => x)
          .collect();
        await env.execute();
        expect(sorted(out.values)).toEqual(sorted([...a, ...b, ...a]));
      }),
      { numRuns: 40 },
    );
  });

  test('rebalance and rescale deliver each record exactly once, spread over subtasks', async () => {
    await fc.assert(
      fc.asyncProperty(
        values,
        par,
        par,
        fc.constantFrom('rebalance', 'rescale', 'shuffle'),
        async (a, p, q, kind) => {
          const env = new StreamExecutionEnvironment({ parallelism: p });
          const src = env.fromArray(a, { parallel: true });
          const part =
            kind === 'rebalance' ? src.rebalance() : kind === 'rescale' ? src.rescale() : src.shuffle();
          const out = part.map(new SubtaskTag<number>()).setParallelism(q).collect();
          await env.execute();
          expect(sorted(out.values.map(([, v]) => v))).toEqual(sorted(a));
          if (kind === 'rebalance' && p === 1 && a.length >= q) {
            const perSubtask = new Set(out.values.map(([i]) => i));
            expect(perSubtask.size).toBe(q);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  test('broadcast delivers each record once to every downstream subtask', async () => {
    await fc.assert(
      fc.asyncProperty(values, par, par, async (a, p, q) => {
        const env = new StreamExecutionEnvironment({ parallelism: p });
        const out = env
          .fromArray(a, { parallel: true })
          .broadcast()
          .map(new SubtaskTag<number>())
          .setParallelism(q)
          .collect();
        await env.execute();
        expect(out.values.length).toBe(a.length * q);
        for (let i = 0; i < q; i++)
          expect(sorted(out.values.filter(([s]) => s === i).map(([, v]) => v))).toEqual(sorted(a));
      }),
      { numRuns: 40 },
    );
  });

  test('forward and global keep every record once', async () => {
    await fc.assert(
      fc.asyncProperty(values, par, async (a, p) => {
        const env = new StreamExecutionEnvironment({ parallelism: p });
        const src = env.fromArray(a, { parallel: true });
        const fwd = src.forward().map(new SubtaskTag<number>()).collect();
        const glob = src.global().map(new SubtaskTag<number>()).collect();
        await env.execute();
        expect(sorted(fwd.values.map(([, v]) => v))).toEqual(sorted(a));
        expect(glob.values.every(([s]) => s === 0)).toBe(true);
        expect(sorted(glob.values.map(([, v]) => v))).toEqual(sorted(a));
      }),
      { numRuns: 30 },
    );
  });
});

describe('scheduling', () => {
  test('any interleaving chosen by a scheduling policy gives the same keyed results', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(record, { maxLength: 150 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer(),
        async (records, p, seed) => {
          let s = seed | 1;
          const rnd = (n: number) => {
            s ^= s << 13;
            s ^= s >>> 17;
            s ^= s << 5;
            return (s >>> 0) % n;
          };
          const env = new StreamExecutionEnvironment({ parallelism: p, bufferCapacity: 1 + rnd(8) });
          const out = env
            .fromArray(records, { parallel: true })
            .keyBy((r) => r.key)
            .reduce((a, b) => ({ key: a.key, value: a.value + b.value }))
            .collect();
          await env.execute({
            policy: {
              chooseTask: (ts) => rnd(ts.length),
              budget: () => 1 + rnd(5),
              chooseChannel: (_t, n) => rnd(n),
            },
          });
          const expected = new Map<string, number>();
          for (const r of records) expected.set(r.key, (expected.get(r.key) ?? 0) + r.value);
          expect(new Map([...lastPerKey(out.values, (r) => r.key)].map(([k, v]) => [k, v.value]))).toEqual(
            expected,
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  test("consumers that read inside their producers' steps (records fanned out past the capacity) give the same keyed results", async () => {
    // The round-robin scheduler has a consumer read a channel filled past twice its capacity from
    // inside the producer's step, its own consumers first when its outputs are full: here a
    // fan-out into two keyed exchanges, at small capacities, so that such reads nest.
    await fc.assert(
      fc.asyncProperty(
        fc.array(record, { maxLength: 60 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 40 }),
        async (records, p, capacity, fan) => {
          const env = new StreamExecutionEnvironment({ parallelism: p, bufferCapacity: capacity });
          const fanOut = (r: Rec, out: Collector<Rec>): void => {
            for (let i = 0; i < fan; i++) out.collect({ key: `${r.key}/${i % 3}`, value: r.value });
          };
          const out = env
            .fromArray(records, { parallel: true })
            .flatMap(fanOut)
            .keyBy((r) => r.key)
            .reduce((a, b) => ({ key: a.key, value: a.value + b.value }))
            .keyBy((r) => r.key.split('/')[0]!)
            .process(new LatestPerPart())
            .collect();
          await env.execute();
          const expected = new Map<string, number>();
          for (const r of records)
            for (let i = 0; i < fan; i++) {
              const k = `${r.key}/${i % 3}`;
              expected.set(k, (expected.get(k) ?? 0) + r.value);
            }
          expect(new Map([...lastPerKey(out.values, (r) => r.key)].map(([k, v]) => [k, v.value]))).toEqual(
            expected,
          );
          expect(out.values.length).toBe(records.length * fan);
        },
      ),
      { numRuns: 60 },
    );
  });
});

/** Passes each rolling sum on, keyed by its key's first part (a second exchange after the first). */
class LatestPerPart extends KeyedProcessFunction<string, Rec, Rec> {
  processElement(r: Rec, _ctx: KeyedProcessContext<string>, out: Collector<Rec>): void {
    out.collect(r);
  }
}
