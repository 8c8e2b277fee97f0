// Property tests of local pre-aggregation (`preAggregate()`): for random streams with disorder,
// late records, random watermark timing, idle inputs, 1..4 source subtasks and window parallelism
// 1..4, a pre-aggregated window gives exactly what the same window without pre-aggregation gives —
// every firing with its timestamp, the late side output, numLateRecordsDropped — for tumbling and
// sliding windows, keyed and windowAll, reduce and aggregate, with and without allowed lateness.
// And the committed output of a pre-aggregated job is the same across injected failures and
// across a stop and a restore at another parallelism (exactly once).
//
// NOTE: both windows read one job's source. Lateness is decided by the watermark a window
// operator has when an element reaches it, which with several source subtasks depends on how
// their channels interleave; so the scripts move in phases: in each phase every script emits its
// elements, then the phase's watermark, then waits until the job has processed everything
// (`advanceProcessingTime(0)`). Every element of a phase thus meets the previous phase's watermark
// at both window operators, whatever the interleaving, and the two must agree exactly.
import fc from 'fast-check';
import {
  type AggregateFunction,
  type CheckpointStorage,
  type DataStream,
  type JobResult,
  MemoryCheckpointStorage,
  OutputTag,
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import {
  checkExactlyOnce,
  checkJobRescaling,
  type FailureInjector,
  fromTestStream,
  ManualClock,
  TestStream,
} from 'tidemark/testing';
import { afterAll, describe, expect, test } from 'vitest';
import { withTimestamps } from '../helpers/windows.js';

interface Ev {
  id: number;
  key: string;
  v: number;
}

/** The contents of a window: how many elements, their sum and their ids (order-free). */
interface Acc {
  count: number;
  sum: number;
  ids: number[];
}

const contents: AggregateFunction<Ev, Acc, Acc> = {
  createAccumulator: () => ({ count: 0, sum: 0, ids: [] }),
  add: (e, a) => ({ count: a.count + 1, sum: a.sum + e.v, ids: [...a.ids, e.id] }),
  getResult: (a) => ({ ...a, ids: [...a.ids].sort((x, y) => x - y) }),
  merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum, ids: [...a.ids, ...b.ids] }),
};

/** A reduce that is associative and commutative: the sum of `v`, the smallest id and key. */
const sumReduce = (a: Ev, b: Ev): Ev => ({
  id: Math.min(a.id, b.id),
  key: [a.key, b.key].sort()[0]!,
  v: a.v + b.v,
});

interface PhaseElement {
  script: number;
  key: string;
  /** Timestamp relative to the previous phase's watermark: <= 0 is behind it (maybe late). */
  offset: number;
  v: number;
}

interface Phase {
  elements: PhaseElement[];
  /** How far the phase's watermark moves (0: not at all, so it is dropped downstream). */
  advance: number;
  /** A script that is idle during this phase (none if out of range). */
  idle: number;
  /** The script that has the elements behind the watermark (offset <= 0). */
  behind: number;
}

interface Scenario {
  sources: number;
  parallelism: number;
  phases: Phase[];
  sliding: boolean;
  size: number;
  slide: number;
  lateness: number;
  sideOutput: boolean;
  keyed: boolean;
  reduce: boolean;
}

const phaseArb: fc.Arbitrary<Phase> = fc.record({
  elements: fc.array(
    fc.record({
      script: fc.nat(3),
      key: fc.constantFrom('a', 'b', 'c'),
      offset: fc.integer({ min: -25, max: 25 }),
      v: fc.integer({ min: -50, max: 50 }),
    }),
    { maxLength: 12 },
  ),
  advance: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
  idle: fc.integer({ min: 0, max: 7 }),
  behind: fc.nat(3),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  sources: fc.integer({ min: 1, max: 4 }),
  parallelism: fc.integer({ min: 1, max: 4 }),
  phases: fc.array(phaseArb, { minLength: 1, maxLength: 8 }),
  sliding: fc.boolean(),
  size: fc.integer({ min: 1, max: 20 }),
  slide: fc.integer({ min: 1, max: 20 }),
  lateness: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 15 })),
  sideOutput: fc.boolean(),
  keyed: fc.boolean(),
  reduce: fc.boolean(),
});

/**
 * One script per source subtask. Phase by phase: an idle script marks itself idle and waits; the
 * others emit their elements (timestamps around the last watermark) and the phase's watermark;
 * then every script waits until the job has processed everything.
 */
function scriptsOf(s: Scenario): TestStream<Ev>[] {
  const scripts = Array.from({ length: s.sources }, () => TestStream.create<Ev>());
  const idle = new Array<boolean>(s.sources).fill(false);
  let watermark = 0;
  let id = 0;
  for (const phase of s.phases) {
    // NOTE: a script that comes back from idleness first catches up with the watermark, and all
    // wait: until its channel counts again, the others' watermarks could pass its elements.
    let reactivated = false;
    for (let i = 0; i < s.sources; i++)
      if (idle[i] && phase.idle !== i) {
        scripts[i]!.markActive().advanceWatermarkTo(watermark);
        idle[i] = false;
        reactivated = true;
      }
    if (reactivated) for (const script of scripts) script.advanceProcessingTime(0);
    for (let i = 0; i < s.sources; i++) {
      const script = scripts[i]!;
      if (phase.idle === i) {
        if (!idle[i]) script.markIdle();
        idle[i] = true;
        continue;
      }
      // NOTE: elements behind the watermark come from one script per phase: two late but allowed
      // elements of one window from two channels re-fire it in their order of arrival.
      for (const e of phase.elements)
        if ((e.offset <= 0 ? phase.behind : e.script) % s.sources === i)
          script.addElement({ id: id++, key: e.key, v: e.v }, watermark + e.offset);
    }
    watermark += phase.advance;
    for (let i = 0; i < s.sources; i++) {
      if (!idle[i]) scripts[i]!.advanceWatermarkTo(watermark);
      scripts[i]!.advanceProcessingTime(0);
    }
  }
  return scripts;
}

/** What a window gives: firings with their timestamps, and the late side output. */
interface Observed {
  firings: { values: unknown[] };
  late: { values: unknown[] } | undefined;
}

function windowed(s: Scenario, input: DataStream<Ev>, pre: boolean, uid: string): Observed {
  const assigner = s.sliding
    ? SlidingEventTimeWindows.of(s.size, s.slide)
    : TumblingEventTimeWindows.of(s.size);
  const tag = new OutputTag<Ev>(`late-${uid}`);
  const label = (key: string, w: TimeWindow, x: unknown) => ({ key, start: w.start, end: w.end, x });
  let results: DataStream<unknown>;
  if (s.keyed) {
    let w = input.keyBy((e) => e.key).window(assigner);
    if (s.lateness > 0) w = w.allowedLateness(s.lateness);
    if (s.sideOutput) w = w.sideOutputLateData(tag);
    if (pre) w = w.preAggregate();
    results = s.reduce
      ? w.reduce(sumReduce, (key, win, xs, out) => {
          for (const x of xs) out.collect(label(key, win, x));
        })
      : w.aggregate(contents, (key, win, xs, out) => {
          for (const x of xs) out.collect(label(key, win, x));
        });
  } else {
    let w = input.windowAll(assigner);
    if (s.lateness > 0) w = w.allowedLateness(s.lateness);
    if (s.sideOutput) w = w.sideOutputLateData(tag);
    if (pre) w = w.preAggregate();
    results = s.reduce
      ? w.reduce(sumReduce, (win, xs, out) => {
          for (const x of xs) out.collect(label('all', win, x));
        })
      : w.aggregate(contents, (win, xs, out) => {
          for (const x of xs) out.collect(label('all', win, x));
        });
  }
  const op = results.uid(uid);
  return {
    firings: withTimestamps(op).collect(),
    late: s.sideOutput ? withTimestamps(op.getSideOutput(tag)).collect() : undefined,
  };
}

function dropped(result: JobResult, uid: string): number {
  return result.metrics.operators.find((o) => o.operatorId === uid)?.metrics.numLateRecordsDropped ?? 0;
}

const sorted = (values: unknown[]) => values.map((v) => JSON.stringify(v)).sort();

describe('preAggregate() gives what the unsplit window gives', () => {
  // The properties must meet what they are about: late and late-but-allowed elements, idle inputs.
  const seen = { runs: 0, lateOutput: 0, dropped: 0, notPreAggregated: 0, refired: 0 };
  afterAll(() => {
    expect(seen.runs).toBeGreaterThan(100);
    expect(seen.lateOutput).toBeGreaterThan(10);
    expect(seen.dropped).toBeGreaterThan(10);
    expect(seen.notPreAggregated).toBeGreaterThan(20);
    expect(seen.refired).toBeGreaterThan(10);
  });

  test('firings, their timestamps, the late side output and numLateRecordsDropped', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const env = new StreamExecutionEnvironment({ parallelism: s.parallelism });
        const input = fromTestStream(env, scriptsOf(s)).setParallelism(s.sources);
        const plain = windowed(s, input, false, 'plain');
        const pre = windowed(s, input, true, 'pre');
        const result = await env.execute({ clock: new ManualClock(0) });
        expect(sorted(pre.firings.values)).toEqual(sorted(plain.firings.values));
        expect(sorted(pre.late?.values ?? [])).toEqual(sorted(plain.late?.values ?? []));
        expect(dropped(result, 'pre')).toBe(dropped(result, 'plain'));
        seen.runs++;
        if ((plain.late?.values.length ?? 0) > 0) seen.lateOutput++;
        if (dropped(result, 'plain') > 0) seen.dropped++;
        const local = result.metrics.operators.find((o) => o.operatorId === 'pre-local');
        if ((local?.metrics.numRecordsNotPreAggregated ?? 0) > 0) seen.notPreAggregated++;
        const windows = plain.firings.values.map(
          (f) =>
            JSON.stringify((f as [{ key: string; start: number }])[0].key) +
            (f as [{ start: number }])[0].start,
        );
        if (new Set(windows).size < windows.length) seen.refired++;
      }),
      { numRuns: 300 },
    );
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

/** Events with disorder below the watermark bound (50 ms): none is late, in any run. */
const timedEvents = fc
  .array(
    fc.record({
      k: fc.constantFrom('a', 'b', 'c'),
      v: fc.integer({ min: 0, max: 9 }),
      d: fc.integer({ min: 0, max: 40 }),
    }),
    { minLength: 40, maxLength: 160 },
  )
  .map((xs) => xs.map((x, i) => ({ k: x.k, v: x.v, t: i * 10 + x.d })));

/** Pre-aggregated keyed tumbling, keyed sliding and windowAll windows into one committed output. */
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
      .preAggregate()
      .aggregate(sumOf, (k, w, xs, out) => {
        for (const x of xs) out.collect(`tumbling ${k}[${w.start}]=${x}`);
      })
      .uid('tumbling');
    const sliding = input
      .keyBy((e) => e.k)
      .window(SlidingEventTimeWindows.of(100, 30))
      .preAggregate()
      .reduce(
        (a, b) => ({ k: a.k, v: a.v + b.v, t: Math.max(a.t, b.t) }),
        (k, w, xs, out) => {
          for (const x of xs) out.collect(`sliding ${k}[${w.start}]=${x.v}`);
        },
      )
      .uid('sliding');
    const all = input
      .windowAll(TumblingEventTimeWindows.of(70))
      .preAggregate()
      .aggregate(sumOf, (w, xs, out) => {
        for (const x of xs) out.collect(`all [${w.start}]=${x}`);
      })
      .uid('all');
    return tumbling.union(sliding, all).collectCommitted();
  };
}

const storage = (): CheckpointStorage => new MemoryCheckpointStorage();

describe('preAggregate() exactly once', () => {
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
