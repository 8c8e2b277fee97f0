// Local pre-aggregation of window aggregations (`preAggregate()`, Flink SQL's local-global window
// aggregation) through the public API: where it applies and the graph errors where it cannot, the
// operators' uids and parallelism, the claim that each subtask sends one partial per key and
// window (counted by the global operator's numRecordsIn), late data and idle inputs.
import {
  type AggregateFunction,
  CountEvictor,
  CountTrigger,
  EventTimeSessionWindows,
  GlobalWindows,
  InvalidGraphError,
  type JobResult,
  OutputTag,
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
} from 'tidemark';
import { fromTestStream, ManualClock, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { sortedByJson, tumblingWindow } from '../helpers/windows.js';

interface Ev {
  key: string;
  v: number;
}

interface Stat {
  key: string;
  start: number;
  end: number;
  count: number;
  sum: number;
}

const countSum: AggregateFunction<Ev, { count: number; sum: number }, { count: number; sum: number }> = {
  createAccumulator: () => ({ count: 0, sum: 0 }),
  add: (e, a) => ({ count: a.count + 1, sum: a.sum + e.v }),
  getResult: (a) => a,
  merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum }),
};

const toStat = {
  process(
    key: string,
    ctx: { window: TimeWindow },
    elements: Iterable<{ count: number; sum: number }>,
    out: { collect(s: Stat): void },
  ) {
    for (const e of elements) out.collect({ key, start: ctx.window.start, end: ctx.window.end, ...e });
  },
};

/** The metrics of the operator with id `operatorId`. */
function metricsOf(result: JobResult, operatorId: string): Record<string, number> {
  const op = result.metrics.operators.find((o) => o.operatorId === operatorId);
  if (op === undefined)
    throw new Error(
      `no operator '${operatorId}' among ${result.metrics.operators.map((o) => o.operatorId).join(', ')}`,
    );
  return op.metrics;
}

/** One script per source subtask: elements `[key, v, ts]` each followed by the watermark ts - 1. */
function scripts(parts: [string, number, number][][]): TestStream<Ev>[] {
  return parts.map((elements) => {
    const s = TestStream.create<Ev>();
    for (const [key, v, ts] of elements) s.addElement({ key, v }, ts).advanceWatermarkTo(ts - 1);
    return s;
  });
}

describe('preAggregate(): results', () => {
  test('keyed tumbling windows give the per-window counts and sums of every element', async () => {
    const parts: [string, number, number][][] = [
      [
        ['a', 1, 0],
        ['b', 2, 3],
        ['a', 3, 9],
        ['a', 4, 10],
        ['b', 5, 25],
      ],
      [
        ['a', 10, 1],
        ['a', 20, 12],
        ['b', 30, 14],
        ['c', 40, 29],
      ],
      [
        ['b', 100, 2],
        ['c', 200, 19],
      ],
    ];
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const out = fromTestStream(env, scripts(parts))
      .setParallelism(3)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .preAggregate()
      .aggregate(countSum, toStat)
      .collect();
    await env.execute();
    const expected = new Map<string, Stat>();
    for (const [key, v, ts] of parts.flat()) {
      const [start, end] = tumblingWindow(ts, 10);
      const s = expected.get(`${key}@${start}`) ?? { key, start, end, count: 0, sum: 0 };
      s.count++;
      s.sum += v;
      expected.set(`${key}@${start}`, s);
    }
    expect(sortedByJson(out.values)).toEqual(sortedByJson([...expected.values()]));
  });
});

describe('preAggregate(): one partial per subtask, key and window', () => {
  // Three source subtasks, one script each; the elements of each script are in time order, each
  // followed by the watermark just below it, so nothing is late.
  const parts: [string, number, number][][] = [
    [
      ['a', 1, 0],
      ['a', 2, 1],
      ['b', 3, 2],
      ['a', 4, 3],
      ['a', 5, 11],
      ['a', 6, 12],
      ['c', 7, 13],
    ],
    [
      ['b', 1, 4],
      ['b', 2, 5],
      ['b', 3, 6],
      ['b', 4, 25],
    ],
    [
      ['a', 1, 7],
      ['c', 2, 8],
      ['a', 3, 9],
      ['a', 4, 14],
      ['a', 5, 15],
      ['a', 6, 16],
      ['a', 7, 17],
    ],
  ];
  // Script 0: a@[0,10), b@[0,10), a@[10,20), c@[10,20); script 1: b@[0,10), b@[20,30);
  // script 2: a@[0,10), c@[0,10), a@[10,20).
  const keyedPartials = 4 + 2 + 3;
  // Windows per script: [0,10) and [10,20); [0,10) and [20,30); [0,10) and [10,20).
  const allPartials = 2 + 2 + 2;
  const elements = parts.flat().length;

  async function run(
    build: (env: StreamExecutionEnvironment) => { values: unknown[] },
  ): Promise<{ result: JobResult; values: unknown[] }> {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const out = build(env);
    const result = await env.execute();
    return { result, values: out.values };
  }

  test('keyed: the global operator receives one record per subtask, key and window', async () => {
    const { result, values } = await run((env) =>
      fromTestStream(env, scripts(parts))
        .setParallelism(3)
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10))
        .preAggregate()
        .aggregate(countSum, toStat)
        .uid('counts')
        .collect(),
    );
    expect(values).toHaveLength(6);
    const local = metricsOf(result, 'counts-local');
    const global = metricsOf(result, 'counts');
    expect(local.numRecordsIn).toBe(elements);
    expect(local.numRecordsOut).toBe(keyedPartials);
    expect(local.numRecordsNotPreAggregated).toBe(0);
    expect(global.numRecordsIn).toBe(keyedPartials);
    const ops = result.metrics.operators;
    expect(ops.find((o) => o.operatorId === 'counts-local')?.parallelism).toBe(3);
    expect(ops.find((o) => o.operatorId === 'counts')?.parallelism).toBe(2);
  });

  test('windowAll: the single window subtask receives one record per source subtask and window', async () => {
    const { result, values } = await run((env) =>
      fromTestStream(env, scripts(parts))
        .setParallelism(3)
        .windowAll(TumblingEventTimeWindows.of(10))
        .preAggregate()
        .reduce((a, b) => ({ key: 'all', v: a.v + b.v }))
        .uid('total')
        .collect(),
    );
    const sums = new Map<number, number>();
    for (const [, v, ts] of parts.flat())
      sums.set(Math.floor(ts / 10), (sums.get(Math.floor(ts / 10)) ?? 0) + v);
    expect((values as Ev[]).map((e) => e.v).sort((x, y) => x - y)).toEqual(
      [...sums.values()].sort((x, y) => x - y),
    );
    expect(metricsOf(result, 'total-local').numRecordsIn).toBe(elements);
    expect(metricsOf(result, 'total').numRecordsIn).toBe(allPartials);
    const ops = result.metrics.operators;
    expect(ops.find((o) => o.operatorId === 'total-local')?.parallelism).toBe(3);
    expect(ops.find((o) => o.operatorId === 'total')?.parallelism).toBe(1);
  });

  test('without preAggregate() every element enters the window operator', async () => {
    const { result } = await run((env) =>
      fromTestStream(env, scripts(parts))
        .setParallelism(3)
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10))
        .aggregate(countSum, toStat)
        .uid('counts')
        .collect(),
    );
    expect(metricsOf(result, 'counts').numRecordsIn).toBe(elements);
  });

  test('without a uid the local operator takes the window operator id with -local', async () => {
    const { result } = await run((env) =>
      fromTestStream(env, scripts(parts))
        .setParallelism(3)
        .keyBy((e) => e.key)
        .window(SlidingEventTimeWindows.of(10, 5))
        .preAggregate()
        .aggregate(countSum)
        .collect(),
    );
    const window = result.metrics.operators.find((o) => o.operatorName.startsWith('Window('));
    const local = result.metrics.operators.find((o) => o.operatorName.startsWith('LocalPreAggregate('));
    expect(window?.operatorId).toMatch(/^\d+-window$/);
    expect(local?.operatorId).toBe(`${window?.operatorId}-local`);
  });
});

describe('preAggregate(): late data as without it', () => {
  // One source subtask, tumbling windows of 10 ms, allowed lateness 5 ms:
  //   a@1 (1), a@5 (2), WM 9      -> [0,10) fires: a 2 elements, sum 3
  //   a@3 (4)                     -> late but allowed: re-fires [0,10): a 3, sum 7
  //   b@12 (8), WM 14             -> [0,10) is cleaned up (9 + 5 <= 14)
  //   a@7 (16)                    -> late (7 + 5 <= 14): side output, or dropped and counted
  //   WM 19                       -> [10,20) fires: b 1, sum 8
  const script = () =>
    TestStream.create<Ev>()
      .addElement({ key: 'a', v: 1 }, 1)
      .addElement({ key: 'a', v: 2 }, 5)
      .advanceWatermarkTo(9)
      .addElement({ key: 'a', v: 4 }, 3)
      .addElement({ key: 'b', v: 8 }, 12)
      .advanceWatermarkTo(14)
      .addElement({ key: 'a', v: 16 }, 7)
      .advanceWatermarkTo(19);
  const firings: Stat[] = [
    { key: 'a', start: 0, end: 10, count: 2, sum: 3 },
    { key: 'a', start: 0, end: 10, count: 3, sum: 7 },
    { key: 'b', start: 10, end: 20, count: 1, sum: 8 },
  ];

  test.each([false, true])('a late element goes to the side output (preAggregate: %s)', async (pre) => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const late = new OutputTag<Ev>('late');
    let windowed = fromTestStream(env, script())
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .allowedLateness(5)
      .sideOutputLateData(late);
    if (pre) windowed = windowed.preAggregate();
    const results = windowed.aggregate(countSum, toStat).uid('w');
    const out = results.collect();
    const lateOut = results.getSideOutput(late).collect();
    const result = await env.execute();
    expect(sortedByJson(out.values)).toEqual(sortedByJson(firings));
    expect(lateOut.values).toEqual([{ key: 'a', v: 16 }]);
    expect(metricsOf(result, 'w').numLateRecordsDropped ?? 0).toBe(0);
    // Two elements were behind the local watermark: the global operator judged them.
    if (pre) expect(metricsOf(result, 'w-local').numRecordsNotPreAggregated).toBe(2);
  });

  test.each([false, true])('a late element is dropped and counted (preAggregate: %s)', async (pre) => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    let windowed = fromTestStream(env, script())
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .allowedLateness(5);
    if (pre) windowed = windowed.preAggregate();
    const out = windowed.aggregate(countSum, toStat).uid('w').collect();
    const result = await env.execute();
    expect(sortedByJson(out.values)).toEqual(sortedByJson(firings));
    expect(metricsOf(result, 'w').numLateRecordsDropped).toBe(1);
  });
});

describe('preAggregate(): an input that goes idle', () => {
  // Two source subtasks. Subtask 0 has a@1, then goes idle; subtask 1 then moves the watermark to
  // 20, which fires [0,10) without waiting for the idle one; then subtask 0 comes back with a@5,
  // late for [0,10). (Each `advanceProcessingTime(0)` waits until the job has processed everything
  // before it, so the steps of the two subtasks happen in this order.)
  const scriptsWithIdle = () => [
    TestStream.create<Ev>()
      .addElement({ key: 'a', v: 1 }, 1)
      .advanceWatermarkTo(0)
      .advanceProcessingTime(0)
      .markIdle()
      .advanceProcessingTime(0)
      .advanceProcessingTime(0)
      .markActive()
      .addElement({ key: 'a', v: 2 }, 5)
      .advanceWatermarkTo(30),
    TestStream.create<Ev>()
      .addElement({ key: 'b', v: 10 }, 2)
      .advanceWatermarkTo(1)
      .advanceProcessingTime(0)
      .advanceProcessingTime(0)
      .advanceWatermarkTo(20)
      .advanceProcessingTime(0),
  ];

  test.each([false, true])(
    'results and drops are those of the unsplit operator (preAggregate: %s)',
    async (pre) => {
      const env = new StreamExecutionEnvironment({ parallelism: 2 });
      let windowed = fromTestStream(env, scriptsWithIdle())
        .setParallelism(2)
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10));
      if (pre) windowed = windowed.preAggregate();
      const out = windowed.aggregate(countSum, toStat).uid('w').collect();
      const result = await env.execute({ clock: new ManualClock(0) });
      // a@1 is in [0,10) although its subtask went idle before the window fired; a@5 came after.
      expect(sortedByJson(out.values)).toEqual(
        sortedByJson([
          { key: 'a', start: 0, end: 10, count: 1, sum: 1 },
          { key: 'b', start: 0, end: 10, count: 1, sum: 10 },
        ]),
      );
      expect(metricsOf(result, 'w').numLateRecordsDropped).toBe(1);
      if (pre) expect(metricsOf(result, 'w-local').numRecordsNotPreAggregated).toBe(1);
    },
  );
});

describe('preAggregate(): where it cannot apply', () => {
  const noMerge: AggregateFunction<Ev, number, number> = {
    createAccumulator: () => 0,
    add: (_e, n) => n + 1,
    getResult: (n) => n,
  };
  const cases: [string, (env: StreamExecutionEnvironment) => unknown, string, RegExp][] = [
    [
      'session windows',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .keyBy((e) => e.key)
          .window(EventTimeSessionWindows.withGap(10))
          .preAggregate()
          .aggregate(countSum),
      'Window(EventTimeSessionWindows(10), EventTimeTrigger(), aggregate)',
      /windows merge/,
    ],
    [
      'processing-time windows',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .keyBy((e) => e.key)
          .window(TumblingProcessingTimeWindows.of(10))
          .preAggregate()
          .reduce((a) => a),
      'Window(TumblingProcessingTimeWindows(10), ProcessingTimeTrigger(), reduce)',
      /processing time.*would not agree on the time/,
    ],
    [
      'count windows',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .keyBy((e) => e.key)
          .countWindow(5)
          .preAggregate()
          .reduce((a) => a),
      'Window(GlobalWindows(), PurgingTrigger(CountTrigger(5)), reduce)',
      /global windows/,
    ],
    [
      'a count trigger',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .keyBy((e) => e.key)
          .window(TumblingEventTimeWindows.of(10))
          .trigger(CountTrigger.of(3))
          .preAggregate()
          .aggregate(countSum),
      'Window(TumblingEventTimeWindows(10), CountTrigger(3), aggregate)',
      /custom or count trigger/,
    ],
    [
      'an evictor',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .windowAll(TumblingEventTimeWindows.of(10))
          .evictor(CountEvictor.of(2))
          .preAggregate()
          .reduce((a) => a),
      'EvictingAllWindow(TumblingEventTimeWindows(10), EventTimeTrigger(), CountEvictor(2), reduce)',
      /evictor/,
    ],
    [
      'process()',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .keyBy((e) => e.key)
          .window(TumblingEventTimeWindows.of(10))
          .preAggregate()
          .process<number>({ process: (_k, _c, els, out) => out.collect([...els].length) }),
      'Window(TumblingEventTimeWindows(10), EventTimeTrigger(), process)',
      /process\(\) and apply\(\) see every element/,
    ],
    [
      'apply() on windowAll',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .windowAll(SlidingEventTimeWindows.of(10, 5))
          .preAggregate()
          .apply<number>((_w, els, out) => out.collect([...els].length)),
      'AllWindow(SlidingEventTimeWindows(10, 5), EventTimeTrigger(), apply)',
      /process\(\) and apply\(\) see every element/,
    ],
    [
      'an AggregateFunction without merge',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .keyBy((e) => e.key)
          .window(TumblingEventTimeWindows.of(10))
          .preAggregate()
          .aggregate(noMerge),
      'Window(TumblingEventTimeWindows(10), EventTimeTrigger(), aggregate)',
      /has no merge\(a, b\)/,
    ],
    [
      'global windows with an event-time trigger',
      (env) =>
        env
          .fromElements<Ev>({ key: 'a', v: 1 })
          .windowAll(GlobalWindows.create())
          .preAggregate()
          .reduce((a) => a),
      'AllWindow(GlobalWindows(), NeverTrigger(), reduce)',
      /global windows/,
    ],
  ];

  test.each(cases)('%s: a graph error naming the operator', (_what, build, name, reason) => {
    const env = new StreamExecutionEnvironment({ parallelism: 2, jobName: 'preagg-errors' });
    let error: unknown;
    try {
      build(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidGraphError);
    const message = (error as Error).message;
    expect(message).toContain(`job 'preagg-errors'`);
    expect(message).toContain(`'${name}'`);
    expect(message).toMatch(reason);
  });
});
