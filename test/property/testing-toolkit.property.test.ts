// The testing toolkit tests itself: its arbitraries hold their promises, and its checks catch
// deliberately broken operators and shrink them to small counterexamples.
import fc from 'fast-check';
import {
  type Collector,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  ReducingStateDescriptor,
  RichMapFunction,
  type RuntimeContext,
  type StreamExecutionEnvironment,
  type ValueState,
  ValueStateDescriptor,
  WatermarkStrategy,
} from 'tidemark';
import {
  assertSameResults,
  boundedPermutations,
  checkInterleavingInvariance,
  checkOrderInvariance,
  checkParallelismInvariance,
  checkRescaling,
  eventStreams,
  KeySequenceChecker,
  lateStreams,
  type TimedEvent,
} from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

type Ev = TimedEvent<string, number>;

/** Runs a property that must fail; returns fast-check's report (with the shrunk counterexample). */
async function counterexample<T>(
  arb: fc.Arbitrary<T>,
  check: (v: T) => Promise<void>,
): Promise<{ value: T; message: string; error: string }> {
  const details = await fc.check(fc.asyncProperty(arb, check), { numRuns: 100, seed: 42 });
  expect(details.failed).toBe(true);
  const error =
    details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return { value: details.counterexample![0], message: fc.defaultReportMessage(details) ?? '', error };
}

describe('arbitraries', () => {
  test('event streams keep their disorder within the bound', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 2 ** 31 }), (bound, seed) => {
        const [events] = fc.sample(eventStreams({ maxDisorderMs: bound, maxLength: 80 }), {
          seed,
          numRuns: 1,
        });
        let max = Number.NEGATIVE_INFINITY;
        for (const e of events!) {
          expect(e.timestamp).toBeGreaterThanOrEqual(max - bound);
          max = Math.max(max, e.timestamp);
        }
      }),
    );
  });

  test('skewed keys and idle periods', () => {
    const [events] = fc.sample(
      eventStreams({
        hotKeyProbability: 0.9,
        idleProbability: 0.3,
        idleMs: 100_000,
        minLength: 100,
        maxLength: 100,
      }),
      {
        seed: 3,
        numRuns: 1,
      },
    );
    const hot = events![0]!.key;
    expect(events!.filter((e) => e.key === hot).length).toBeGreaterThan(80);
    const gaps = events!.slice(1).map((e, i) => e.timestamp - events![i]!.timestamp);
    expect(gaps.some((g) => g >= 100_000)).toBe(true);
  });

  test('late streams: the late events are exactly those at or below an earlier watermark', () => {
    fc.assert(
      fc.property(lateStreams({ lateProbability: 0.4 }), (s) => {
        let wm = Number.NEGATIVE_INFINITY;
        const late: Ev[] = [];
        for (const step of s.steps) {
          if ('watermark' in step) wm = Math.max(wm, step.watermark);
          else if (step.event.timestamp <= wm) late.push(step.event);
        }
        expect(late).toEqual(s.late);
      }),
    );
  });

  test('bounded permutations keep every event and the bound', () => {
    fc.assert(
      fc.property(
        eventStreams().chain((e) => fc.tuple(fc.constant(e), boundedPermutations(e, 300))),
        ([events, permuted]) => {
          expect(permuted.length).toBe(events.length);
          let max = Number.NEGATIVE_INFINITY;
          for (const e of permuted) {
            expect(e.timestamp).toBeGreaterThanOrEqual(max - 300);
            max = Math.max(max, e.timestamp);
          }
        },
      ),
    );
  });
});

/** A correct job: sum per key with keyed state. */
const sumPerKey = (events: readonly Ev[]) => (env: StreamExecutionEnvironment) =>
  env
    .fromArray(events, { parallel: true })
    .keyBy((e) => e.key)
    .process<[string, number]>({
      open(ctx: RuntimeContext) {
        (this as unknown as { sum: ValueState<number> }).sum = ctx.getState(
          new ValueStateDescriptor<number>('sum'),
        );
      },
      processElement(e, _ctx, out) {
        const s = (this as unknown as { sum: ValueState<number> }).sum;
        s.update((s.value() ?? 0) + e.value);
        out.collect([e.key, s.value()!]);
      },
    })
    .collect();

/** Keeps the final value per key of `[key, value]` updates. */
const finalPerKey = (values: [string, number][]) => [...new Map(values)].sort();

describe('checks catch broken operators', () => {
  test('parallelism invariance passes for keyed state', async () => {
    await fc.assert(
      fc.asyncProperty(eventStreams(), async (events) => {
        await checkParallelismInvariance(sumPerKey(events), { normalize: finalPerKey });
      }),
      { numRuns: 20 },
    );
  });

  test('state kept outside keyed state is caught by parallelism invariance and shrinks', async () => {
    // Broken: counts records in a field of the function: per subtask, not per key.
    class CountInField extends RichMapFunction<Ev, [string, number]> {
      private n = 0;
      map(e: Ev): [string, number] {
        this.n++;
        return [e.key, this.n];
      }
    }
    const job = (events: readonly Ev[]) => (env: StreamExecutionEnvironment) =>
      env
        .fromArray(events)
        .keyBy((e) => e.key)
        .map(new CountInField())
        .collect();
    const { value, message, error } = await counterexample(eventStreams(), (events) =>
      checkParallelismInvariance(job(events), { normalize: finalPerKey, parallelisms: [1, 2] }),
    );
    expect(value.length).toBe(2); // two keys on different subtasks are enough
    expect(message).toMatch(/Counterexample: \[k\d+:-?\d+@\d+ k\d+:-?\d+@\d+\]/);
    expect(error).toMatch(
      /output at parallelism 2 differs from parallelism 1:\n {2}\d+ expected, \d+ actual\n {2}missing/,
    );
  });

  test('emitting on timers twice is caught against a reference and shrinks to two events', async () => {
    // Broken: registers a timer per element and emits on every timer, so a key with two
    // timestamps is reported twice; a correct job reports each key once at the end.
    class ReportKey extends KeyedProcessFunction<string, Ev, string> {
      processElement(e: Ev, ctx: KeyedProcessContext<string>) {
        ctx.timerService().registerEventTimeTimer(e.timestamp);
      }
      override onTimer(_ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
        out.collect(ctx.getCurrentKey());
      }
    }
    const { value } = await counterexample(eventStreams(), async (events) => {
      const env = new (await import('tidemark')).StreamExecutionEnvironment();
      const out = env
        .fromArray(events, {
          watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>().withTimestampAssigner(
            (e) => e.timestamp,
          ),
        })
        .keyBy((e) => e.key)
        .process(new ReportKey())
        .collect();
      await env.execute();
      assertSameResults('keys reported', [...new Set(events.map((e) => e.key))], out.values);
    });
    expect(value.length).toBe(2);
    expect(value[0]!.key).toBe(value[1]!.key);
    expect(value[0]!.timestamp).not.toBe(value[1]!.timestamp);
  });

  test('an order-dependent (non-commutative) aggregation is caught by interleaving invariance', async () => {
    const concat = (events: readonly Ev[]) => (env: StreamExecutionEnvironment) =>
      env
        .fromArray(events, { parallel: true })
        .keyBy((e) => e.key)
        .reduce((a, b) => ({
          key: a.key,
          value: Number(`${a.value}${Math.abs(b.value)}`) % 1_000_003,
          timestamp: b.timestamp,
        }))
        .collect();
    const { value, error } = await counterexample(
      eventStreams({ keys: fc.constant('k'), values: fc.integer({ min: 1, max: 9 }) }),
      (events) =>
        checkInterleavingInvariance(concat(events), {
          parallelism: 3,
          seeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
          normalize: (v) => [...new Map(v.map((r) => [r.key, r.value]))],
        }),
    );
    expect(value.length).toBeLessThanOrEqual(3);
    expect(error).toMatch(
      /output with seed \d+ differs from seed 1 \(replay: simulate\(job, \{ seed: \d+, parallelism: 3 \}\)\)/,
    );
  });

  test('order invariance: passes within the watermark bound, fails for first-wins logic', async () => {
    const firstPerKey = (env: StreamExecutionEnvironment, input: readonly Ev[]) =>
      env
        .fromArray(input)
        .keyBy((e) => e.key)
        .process<string>({
          open(ctx: RuntimeContext) {
            (this as unknown as { seen: ValueState<boolean> }).seen = ctx.getState(
              new ValueStateDescriptor<boolean>('seen'),
            );
          },
          processElement(e, _ctx, out) {
            const seen = (this as unknown as { seen: ValueState<boolean> }).seen;
            if (seen.value() !== true) out.collect(`${e.key}:${e.value}`);
            seen.update(true);
          },
        })
        .collect();
    const sumJob = (env: StreamExecutionEnvironment, input: readonly Ev[]) => sumPerKey(input)(env);
    await fc.assert(
      fc.asyncProperty(
        eventStreams({ maxLength: 20 }).chain((e) => fc.tuple(fc.constant(e), boundedPermutations(e, 500))),
        async ([a, b]) => checkOrderInvariance(sumJob, [a, b], { normalize: finalPerKey }),
      ),
      { numRuns: 20 },
    );
    const { value } = await counterexample(
      eventStreams({ maxLength: 20, maxGapMs: 100 }).chain((e) =>
        fc.tuple(fc.constant(e), boundedPermutations(e, 500)),
      ),
      async ([a, b]) => checkOrderInvariance(firstPerKey, [a, b]),
    );
    expect(value[0].length).toBeLessThanOrEqual(3);
  });

  test('rescaling: keyed state survives; state in a field is lost and caught', async () => {
    const reduced = new ReducingStateDescriptor<number>('sum', (a, b) => a + b);
    class SumOnTimer extends KeyedProcessFunction<string, Ev, string> {
      private sum!: import('tidemark').ReducingState<number>;
      override open(ctx: RuntimeContext) {
        this.sum = ctx.getReducingState(reduced);
      }
      processElement(e: Ev, ctx: KeyedProcessContext<string>) {
        this.sum.add(e.value);
        ctx.timerService().registerEventTimeTimer(1_000_000);
      }
      override onTimer(_ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
        out.collect(`${ctx.getCurrentKey()}=${this.sum.get()}`);
      }
    }
    class SumInField extends KeyedProcessFunction<string, Ev, string> {
      private sums = new Map<string, number>();
      processElement(e: Ev, ctx: KeyedProcessContext<string>) {
        this.sums.set(e.key, (this.sums.get(e.key) ?? 0) + e.value);
        ctx.timerService().registerEventTimeTimer(1_000_000);
      }
      override onTimer(_ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
        out.collect(`${ctx.getCurrentKey()}=${this.sums.get(ctx.getCurrentKey())}`);
      }
    }
    const steps = (events: Ev[]) => events.map((e) => ({ element: e, timestamp: e.timestamp }));
    await fc.assert(
      fc.asyncProperty(
        eventStreams({ minLength: 1 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.nat(),
        async (events, p, q, at) => {
          await checkRescaling((s) => s.keyBy((e: Ev) => e.key).process(new SumOnTimer()), steps(events), {
            from: p,
            to: q,
            splitAt: at % (events.length + 1),
          });
        },
      ),
      { numRuns: 30 },
    );
    const { value } = await counterexample(
      fc.tuple(eventStreams({ minLength: 1 }), fc.nat()),
      ([events, at]) =>
        checkRescaling((s) => s.keyBy((e: Ev) => e.key).process(new SumInField()), steps(events), {
          from: 1,
          to: 2,
          splitAt: at % (events.length + 1),
        }),
    );
    expect(value[0].length).toBeLessThanOrEqual(2);
  });
});

describe('per-key sequence checker', () => {
  test('accepts exact +1 sequences and reports gaps and duplicates', () => {
    const ok = new KeySequenceChecker<string>();
    for (const [k, n] of [
      ['a', 1],
      ['b', 1],
      ['a', 2],
      ['a', 3],
      ['b', 2],
    ] as const)
      ok.observe(k, n);
    ok.assertValid(
      new Map([
        ['a', 3],
        ['b', 2],
      ]),
    );
    const bad = new KeySequenceChecker<string>();
    bad.observe('a', 1);
    bad.observe('a', 3);
    bad.observe('a', 3);
    expect(bad.violations()).toEqual([
      'key "a": 3 after 1 (1 missing)',
      'key "a": 3 after 3 (duplicate or out of order)',
    ]);
    expect(() => bad.assertValid()).toThrow(/per-key sequences broken/);
  });

  test('as a sink in a job: every key counted exactly once per record, at any parallelism', async () => {
    for (const p of [1, 3]) {
      const checker = new KeySequenceChecker<string>();
      const { StreamExecutionEnvironment } = await import('tidemark');
      const env = new StreamExecutionEnvironment({ parallelism: p });
      env
        .fromGenerator((i) => `k${i % 7}`, { count: 700 })
        .keyBy((k) => k)
        .map({
          open(ctx: RuntimeContext) {
            (this as unknown as { n: ValueState<number> }).n = ctx.getState(
              new ValueStateDescriptor<number>('n'),
            );
          },
          map(k: string): [string, number] {
            const s = (this as unknown as { n: ValueState<number> }).n;
            s.update((s.value() ?? 0) + 1);
            return [k, s.value()!];
          },
        })
        .addSink(checker.sink((v: [string, number]) => v));
      await env.execute();
      checker.assertValid(new Map(Array.from({ length: 7 }, (_x, i) => [`k${i}`, 100] as [string, number])));
    }
  });
});
