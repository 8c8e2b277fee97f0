// Property tests of sliced window aggregation (issue 16: one accumulator per key and slice, see
// operators/windows/slicing-window-operator.ts): for random streams with disorder, late records,
// random watermarks, allowed lateness, tumbling and sliding windows of random size, slide (slide >
// size too: gaps) and offset, negative timestamps, keyed and windowAll, reduce and aggregate, with
// and without a window function (one that reads the watermark and keeps per-window and global
// state), the sliced operator gives exactly what the window operator gives (`disableSlicing()`):
// each key's firings with their timestamps in the order emitted, the late side output and
// numLateRecordsDropped. And its committed output is the same across injected failures and across
// a stop and a restore at another parallelism.
//
// NOTE: both windows read one job's source, as in pre-aggregate.property.test.ts: the script moves
// in phases (elements, then the phase's watermark, then a wait until the job processed everything),
// so every element of a phase meets the same watermark at both operators.
import fc from 'fast-check';
import {
  type AggregateFunction,
  type CheckpointStorage,
  type Collector,
  type DataStream,
  EventTimeTrigger,
  type JobResult,
  MemoryCheckpointStorage,
  OutputTag,
  type ProcessWindowContext,
  ProcessWindowFunction,
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  ValueStateDescriptor,
  WatermarkStrategy,
} from 'tidemark';
import {
  checkExactlyOnce,
  checkJobRescaling,
  type FailureInjector,
  fromTestStream,
  ManualClock,
  OperatorHarness,
  TestStream,
} from 'tidemark/testing';
import { afterAll, describe, expect, test } from 'vitest';
import { SlicingWindowOperator } from '../../operators/windows/slicing-window-operator.js';
import { WindowOperator } from '../../operators/windows/window-operator.js';
import { withTimestamps } from '../helpers/windows.js';

interface Ev {
  id: number;
  key: string;
  v: number;
}

/** The contents of a window: the smallest key, how many elements, their sum and their ids (order-free). */
interface Acc {
  key: string;
  count: number;
  sum: number;
  ids: number[];
}

const minKey = (a: string, b: string) => (a === '' || (b !== '' && b < a) ? b : a);

const contents: AggregateFunction<Ev, Acc, Acc> = {
  createAccumulator: () => ({ key: '', count: 0, sum: 0, ids: [] }),
  add: (e, a) => ({ key: minKey(a.key, e.key), count: a.count + 1, sum: a.sum + e.v, ids: [...a.ids, e.id] }),
  getResult: (a) => ({ ...a, ids: [...a.ids].sort((x, y) => x - y) }),
  merge: (a, b) => ({
    key: minKey(a.key, b.key),
    count: a.count + b.count,
    sum: a.sum + b.sum,
    ids: [...a.ids, ...b.ids],
  }),
};

/** The same, with an accumulator that merge modifies in place (as Flink allows). */
const mutatingContents: AggregateFunction<Ev, Acc, Acc> = {
  createAccumulator: () => ({ key: '', count: 0, sum: 0, ids: [] }),
  add: (e, a) => {
    a.key = minKey(a.key, e.key);
    a.count++;
    a.sum += e.v;
    a.ids.push(e.id);
    return a;
  },
  getResult: (a) => ({ ...a, ids: [...a.ids].sort((x, y) => x - y) }),
  merge: (a, b) => {
    a.key = minKey(a.key, b.key);
    a.count += b.count;
    a.sum += b.sum;
    a.ids.push(...b.ids);
    return a;
  },
};

/** A reduce that is associative and commutative: the sum of `v`, the smallest id and key. */
const sumReduce = (a: Ev, b: Ev): Ev => ({
  id: Math.min(a.id, b.id),
  key: [a.key, b.key].sort()[0]!,
  v: a.v + b.v,
});

/**
 * A window function that sees the context: the watermark, how often this window fired before
 * (per-window state, cleared in clear()) and how many firings of the key before (global state).
 */
class Labelled extends ProcessWindowFunction<unknown, unknown, string, TimeWindow> {
  private readonly fired = new ValueStateDescriptor<number>('fired');
  private readonly total = new ValueStateDescriptor<number>('total');
  process(
    key: string,
    ctx: ProcessWindowContext<TimeWindow>,
    xs: Iterable<unknown>,
    out: Collector<unknown>,
  ): void {
    const fired = ctx.windowState().getState(this.fired);
    const total = ctx.globalState().getState(this.total);
    const n = fired.value() ?? 0;
    const t = total.value() ?? 0;
    fired.update(n + 1);
    total.update(t + 1);
    for (const x of xs)
      out.collect({ key, start: ctx.window.start, end: ctx.window.end, wm: ctx.currentWatermark(), n, t, x });
  }
  override clear(ctx: ProcessWindowContext<TimeWindow>): void {
    ctx.windowState().getState(this.fired).clear();
  }
}

interface PhaseElement {
  key: string;
  /** Timestamp relative to the previous phase's watermark: <= 0 is behind it (maybe late). */
  offset: number;
  v: number;
}

interface Phase {
  elements: PhaseElement[];
  /** How far the phase's watermark moves (0: not at all). */
  advance: number;
}

type Fn = 'reduce' | 'aggregate' | 'mutating' | 'reduce+process' | 'aggregate+process';

interface Scenario {
  parallelism: number;
  start: number;
  phases: Phase[];
  sliding: boolean;
  size: number;
  slide: number;
  offset: number;
  lateness: number;
  sideOutput: boolean;
  keyed: boolean;
  fn: Fn;
  explicitTrigger: boolean;
  /** As with a keyed backend that cannot list a key's slices (a timer per key and window end). */
  perWindowTimers: boolean;
}

const phaseArb: fc.Arbitrary<Phase> = fc.record({
  elements: fc.array(
    fc.record({
      key: fc.constantFrom('a', 'b', 'c'),
      offset: fc.integer({ min: -30, max: 30 }),
      v: fc.integer({ min: -50, max: 50 }),
    }),
    { maxLength: 14 },
  ),
  advance: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
});

/** Size and slide as multiples of a common slice, so windows have 1..6 slices (and gaps when slide > size). */
const shapeArb = fc
  .record({
    g: fc.integer({ min: 1, max: 5 }),
    a: fc.integer({ min: 1, max: 6 }),
    b: fc.integer({ min: 1, max: 6 }),
    sliding: fc.boolean(),
    offsetShare: fc.double({ min: -0.99, max: 0.99, noNaN: true }),
  })
  .map(({ g, a, b, sliding, offsetShare }) => {
    const size = g * a;
    const slide = sliding ? g * b : size;
    return { sliding, size, slide, offset: Math.trunc(offsetShare * slide) };
  });

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    parallelism: fc.integer({ min: 1, max: 3 }),
    start: fc.integer({ min: -120, max: 60 }),
    phases: fc.array(phaseArb, { minLength: 1, maxLength: 8 }),
    shape: shapeArb,
    lateness: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 })),
    sideOutput: fc.boolean(),
    keyed: fc.boolean(),
    fn: fc.constantFrom<Fn>('reduce', 'aggregate', 'mutating', 'reduce+process', 'aggregate+process'),
    explicitTrigger: fc.boolean(),
    perWindowTimers: fc.boolean(),
  })
  .map(({ shape, ...s }) => ({ ...s, ...shape }));

/** One script: phase by phase, the elements around the last watermark, then the phase's watermark. */
function scriptOf(s: Scenario): TestStream<Ev> {
  const script = TestStream.create<Ev>();
  let watermark = s.start;
  let id = 0;
  script.advanceWatermarkTo(watermark);
  for (const phase of s.phases) {
    for (const e of phase.elements) script.addElement({ id: id++, key: e.key, v: e.v }, watermark + e.offset);
    watermark += phase.advance;
    script.advanceWatermarkTo(watermark);
    script.advanceProcessingTime(0);
  }
  return script;
}

/** What a window gives: firings with their timestamps, and the late side output. */
interface Observed {
  firings: { values: unknown[] };
  late: { values: unknown[] } | undefined;
}

function windowed(s: Scenario, input: DataStream<Ev>, sliced: boolean, uid: string): Observed {
  const tag = new OutputTag<Ev>(`late-${uid}`);
  const op = windowStream(s, input, sliced, tag).uid(uid);
  return {
    firings: withTimestamps(op).collect(),
    late: s.sideOutput ? withTimestamps(op.getSideOutput(tag)).collect() : undefined,
  };
}

/** The window of a scenario (its results, the late elements to `tag`). */
function windowStream(
  s: Scenario,
  input: DataStream<Ev>,
  sliced: boolean,
  tag: OutputTag<Ev>,
): DataStream<unknown> {
  const assigner = s.sliding
    ? SlidingEventTimeWindows.of(s.size, s.slide, s.offset)
    : TumblingEventTimeWindows.of(s.size, s.offset);
  const label = (key: string, w: TimeWindow, x: unknown) => ({ key, start: w.start, end: w.end, x });
  let results: DataStream<unknown>;
  if (s.keyed) {
    let w = input.keyBy((e) => e.key).window(assigner);
    if (s.explicitTrigger) w = w.trigger(EventTimeTrigger.create());
    if (s.lateness > 0) w = w.allowedLateness(s.lateness);
    if (s.sideOutput) w = w.sideOutputLateData(tag);
    if (!sliced) w = w.disableSlicing();
    switch (s.fn) {
      case 'reduce':
        results = w.reduce(sumReduce) as unknown as DataStream<unknown>;
        break;
      case 'aggregate':
        results = w.aggregate(contents) as unknown as DataStream<unknown>;
        break;
      case 'mutating':
        results = w.aggregate(mutatingContents, (key, win, xs, out) => {
          for (const x of xs) out.collect(label(key, win, x));
        });
        break;
      case 'reduce+process':
        results = w.reduce(sumReduce, new Labelled());
        break;
      case 'aggregate+process':
        results = w.aggregate(contents, new Labelled());
        break;
    }
  } else {
    let w = input.windowAll(assigner);
    if (s.explicitTrigger) w = w.trigger(EventTimeTrigger.create());
    if (s.lateness > 0) w = w.allowedLateness(s.lateness);
    if (s.sideOutput) w = w.sideOutputLateData(tag);
    if (!sliced) w = w.disableSlicing();
    results =
      s.fn === 'reduce' || s.fn === 'reduce+process'
        ? w.reduce(sumReduce, (win, xs, out) => {
            for (const x of xs) out.collect(label('all', win, x));
          })
        : w.aggregate(s.fn === 'mutating' ? mutatingContents : contents, (win, xs, out) => {
            for (const x of xs) out.collect(label('all', win, x));
          });
  }
  return results;
}

function dropped(result: JobResult, uid: string): number {
  return result.metrics.operators.find((o) => o.operatorId === uid)?.metrics.numLateRecordsDropped ?? 0;
}

/** The firings of each key, in the order emitted. */
function perKey(values: unknown[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const v of values) {
    const r = (v as [{ key?: string; x?: { key?: string } }, number])[0];
    const k = String(r.key ?? r.x?.key);
    const list = m.get(k) ?? [];
    list.push(JSON.stringify(v));
    m.set(k, list);
  }
  return m;
}

describe('sliced windows give what the window operator gives', () => {
  // The properties must meet what they are about: late and late-but-allowed elements, gaps, slices.
  const seen = { runs: 0, lateOutput: 0, dropped: 0, refired: 0, severalSlices: 0, gaps: 0 };
  afterAll(() => {
    expect(seen.runs).toBeGreaterThan(300);
    expect(seen.lateOutput).toBeGreaterThan(20);
    expect(seen.dropped).toBeGreaterThan(20);
    expect(seen.refired).toBeGreaterThan(20);
    expect(seen.severalSlices).toBeGreaterThan(100);
    expect(seen.gaps).toBeGreaterThan(10);
  });

  test('firings in order with their timestamps, the late side output and numLateRecordsDropped', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const env = new StreamExecutionEnvironment({ parallelism: s.parallelism });
        const input = fromTestStream(env, [scriptOf(s)]).setParallelism(1);
        const plain = windowed(s, input, false, 'plain');
        const sliced = windowed(s, input, true, 'sliced');
        SlicingWindowOperator.listKeySlices = !s.perWindowTimers;
        let result: JobResult;
        try {
          result = await env.execute({ clock: new ManualClock(0) });
        } finally {
          SlicingWindowOperator.listKeySlices = true;
        }
        expect(perKey(sliced.firings.values)).toEqual(perKey(plain.firings.values));
        expect(sliced.firings.values.length).toBe(plain.firings.values.length);
        expect(sliced.late?.values ?? []).toEqual(plain.late?.values ?? []);
        expect(dropped(result, 'sliced')).toBe(dropped(result, 'plain'));
        seen.runs++;
        if ((plain.late?.values.length ?? 0) > 0) seen.lateOutput++;
        if (dropped(result, 'plain') > 0) seen.dropped++;
        const windows = plain.firings.values.map((f) => {
          const r = (f as [{ key?: string; start?: number; x?: { key: string } }, number])[0];
          return `${r.key ?? r.x?.key}|${r.start}|${(f as [unknown, number])[1]}`;
        });
        if (new Set(windows).size < windows.length) seen.refired++;
        if (s.sliding && s.size % s.slide !== 0) seen.severalSlices++;
        else if (s.sliding && s.size > s.slide) seen.severalSlices++;
        if (s.slide > s.size) seen.gaps++;
      }),
      { numRuns: 400 },
    );
  });
});

interface R {
  k: string;
  n: number;
}

describe('sliced windows leave nothing behind', () => {
  test('after the final watermark no slice, no window-function state and no timer is left', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        SlicingWindowOperator.listKeySlices = !s.perWindowTimers;
        let harness: OperatorHarness<Ev, unknown>;
        try {
          harness = OperatorHarness.forOneInput<Ev, unknown>((input) =>
            windowStream({ ...s, keyed: true }, input, true, new OutputTag<Ev>('late')),
          );
        } finally {
          SlicingWindowOperator.listKeySlices = true;
        }
        let watermark = s.start;
        let id = 0;
        harness.processWatermark(watermark);
        for (const phase of s.phases) {
          for (const e of phase.elements)
            harness.processElement({ id: id++, key: e.key, v: e.v }, watermark + e.offset);
          watermark += phase.advance;
          harness.processWatermark(watermark);
        }
        harness.processWatermark(Number.POSITIVE_INFINITY);
        expect(harness.keys('slice-contents')).toEqual([]);
        expect(harness.keys('fired')).toEqual([]);
        expect(harness.numEventTimeTimers()).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('which windows are sliced', () => {
  // biome-ignore lint/suspicious/noExplicitAny: any result type
  type Build = (s: DataStream<R>) => DataStream<any>;
  const opOf = (f: Build) => (OperatorHarness.forOneInput(f) as unknown as { op: unknown }).op;
  const sum = (a: R, b: R): R => ({ k: a.k, n: a.n + b.n });
  const noMerge: AggregateFunction<R, number, number> = {
    createAccumulator: () => 0,
    add: (e, a) => a + e.n,
    getResult: (a) => a,
  };

  test('event-time tumbling and sliding reduce/aggregate take slices; the rest keeps the window operator', () => {
    const keyed = (s: DataStream<R>) => s.keyBy((e) => e.k);
    expect(opOf((s) => keyed(s).window(SlidingEventTimeWindows.of(10, 2)).reduce(sum))).toBeInstanceOf(
      SlicingWindowOperator,
    );
    expect(
      opOf((s) =>
        keyed(s)
          .window(TumblingEventTimeWindows.of(10))
          .trigger(EventTimeTrigger.create())
          .aggregate(noMerge),
      ),
    ).toBeInstanceOf(SlicingWindowOperator);
    expect(opOf((s) => s.windowAll(SlidingEventTimeWindows.of(10, 5)).sum('n'))).toBeInstanceOf(
      WindowOperator,
    );
    expect(opOf((s) => s.windowAll(TumblingEventTimeWindows.of(10)).sum('n'))).toBeInstanceOf(
      SlicingWindowOperator,
    );
    // Several slices per window need merge().
    expect(opOf((s) => keyed(s).window(SlidingEventTimeWindows.of(10, 2)).aggregate(noMerge))).toBeInstanceOf(
      WindowOperator,
    );
    expect(
      opOf((s) => keyed(s).window(SlidingEventTimeWindows.of(10, 2)).disableSlicing().reduce(sum)),
    ).toBeInstanceOf(WindowOperator);
    expect(
      opOf((s) =>
        keyed(s)
          .window(SlidingEventTimeWindows.of(10, 2))
          .process({ process: () => {} }),
      ),
    ).toBeInstanceOf(WindowOperator);
  });
});

interface TimedEv {
  k: string;
  v: number;
  t: number;
}

const sumOf: AggregateFunction<TimedEv, number, number> = {
  createAccumulator: () => 0,
  add: (e, a) => a + e.v,
  getResult: (a) => a,
  merge: (a, b) => a + b,
};

/** Events with disorder below the watermark bound (50 ms), some late for the allowed lateness. */
const timedEvents = fc
  .array(
    fc.record({
      k: fc.constantFrom('a', 'b', 'c'),
      v: fc.integer({ min: 0, max: 9 }),
      d: fc.integer({ min: 0, max: 40 }),
    }),
    { minLength: 40, maxLength: 160 },
  )
  .map((xs) => xs.map((x, i) => ({ k: x.k, v: x.v, t: i * 10 + x.d - 300 })));

/** Sliced keyed tumbling, keyed sliding (with allowed lateness) and windowAll windows into one committed output. */
function checkpointedJob(events: readonly TimedEv[], injector?: FailureInjector) {
  return (env: StreamExecutionEnvironment) => {
    const input = env
      .fromArray(events, {
        parallel: true,
        watermarks: WatermarkStrategy.forBoundedOutOfOrderness<TimedEv>(50).withTimestampAssigner((e) => e.t),
      })
      .map((e) => {
        injector?.point('map');
        return e;
      });
    const tumbling = input
      .keyBy((e) => e.k)
      .window(TumblingEventTimeWindows.of(100))
      .aggregate(sumOf, (k, w, xs, out) => {
        for (const x of xs) out.collect(`tumbling ${k}[${w.start}]=${x}`);
      })
      .uid('tumbling');
    const sliding = input
      .keyBy((e) => e.k)
      .window(SlidingEventTimeWindows.of(100, 30, 7))
      .allowedLateness(20)
      .reduce(
        (a, b) => ({ k: a.k, v: a.v + b.v, t: Math.max(a.t, b.t) }),
        (k, w, xs, out) => {
          for (const x of xs) out.collect(`sliding ${k}[${w.start}]=${x.v}`);
        },
      )
      .uid('sliding');
    const all = input
      .windowAll(SlidingEventTimeWindows.of(70, 20))
      .aggregate(sumOf, (w, xs, out) => {
        for (const x of xs) out.collect(`all [${w.start}]=${x}`);
      })
      .uid('all');
    return tumbling.union(sliding, all).collectCommitted();
  };
}

const storage = (): CheckpointStorage => new MemoryCheckpointStorage();

describe('sliced windows exactly once', () => {
  const stats = { injected: 0, checkpoints: 0, restored: 0 };
  afterAll(() => {
    expect(stats.injected).toBeGreaterThan(5);
    expect(stats.checkpoints).toBeGreaterThan(10);
    expect(stats.restored).toBeGreaterThan(3);
  });

  test('failures in user functions: the committed output equals the failure-free run', async () => {
    await fc.assert(
      fc.asyncProperty(
        timedEvents.chain((evs) =>
          fc.tuple(
            fc.constant(evs),
            fc.uniqueArray(fc.integer({ min: 1, max: evs.length + 10 }), { minLength: 1, maxLength: 3 }),
          ),
        ),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 4 }),
        async ([evs, failAt], seed, parallelism) => {
          const report = await checkExactlyOnce((env, injector) => checkpointedJob(evs, injector)(env), {
            failAtCalls: failAt,
            storage,
            seed,
            parallelism,
            checkpointIntervalMs: 5,
          });
          expect(report.restarts).toBe(report.injectedFailures);
          stats.injected += report.injectedFailures;
          stats.checkpoints += report.completedCheckpoints;
        },
      ),
      { numRuns: 25 },
    );
  });

  test('a stop and a restore at another parallelism: the committed output equals an uninterrupted run', async () => {
    await fc.assert(
      fc.asyncProperty(
        timedEvents,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 5 }),
        async (evs, from, to, seed, stopAfterCheckpoints) => {
          const { restoredFrom } = await checkJobRescaling(checkpointedJob(evs), {
            from,
            to,
            storage,
            seed,
            checkpointIntervalMs: 2,
            stopAfterCheckpoints,
          });
          if (restoredFrom !== undefined) stats.restored++;
        },
      ),
      { numRuns: 20 },
    );
  });
});
