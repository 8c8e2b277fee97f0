// Event-time windows through the public API, each test naming the Flink behaviour it checks:
// window bounds, negative timestamps and offsets, sliding and session windows, firing on the
// watermark, allowed lateness, late data (dropped and counted, or side output), result timestamps.
import {
  type AggregateFunction,
  EventTimeSessionWindows,
  InvalidArgumentError,
  OutputTag,
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { fromTestStream, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import {
  sessions,
  slidingWindows,
  sortedByJson,
  tumblingWindow,
  withTimestamps,
} from '../helpers/windows.js';

interface Ev {
  key: string;
  v: number;
}
const ev = (key: string, v: number): Ev => ({ key, v });

interface Stat {
  key: string;
  start: number;
  end: number;
  count: number;
  sum: number;
}

/** Counts and sums `v` incrementally (with merge, for session windows). */
const countSum: AggregateFunction<Ev, { count: number; sum: number }, { count: number; sum: number }> = {
  createAccumulator: () => ({ count: 0, sum: 0 }),
  add: (e, a) => ({ count: a.count + 1, sum: a.sum + e.v }),
  getResult: (a) => a,
  merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum }),
};

/** Emits `{key, start, end, count, sum}` of each fired window. */
const describeWindow = {
  process(
    key: string,
    ctx: { window: TimeWindow },
    elements: Iterable<{ count: number; sum: number }>,
    out: { collect(s: Stat): void },
  ) {
    for (const e of elements) out.collect({ key, start: ctx.window.start, end: ctx.window.end, ...e });
  },
};

/** Reference per-window stats of timestamped events. */
function expectedStats(events: [Ev, number][], windowsOf: (ts: number) => [number, number][]): Stat[] {
  const m = new Map<string, Stat>();
  for (const [e, ts] of events)
    for (const [start, end] of windowsOf(ts)) {
      const id = `${e.key}|${start}|${end}`;
      const s = m.get(id) ?? { key: e.key, start, end, count: 0, sum: 0 };
      s.count++;
      s.sum += e.v;
      m.set(id, s);
    }
  return sortedByJson([...m.values()]);
}

function script(events: [Ev, number][]): TestStream<Ev> {
  const s = TestStream.create<Ev>();
  for (const [e, ts] of events) s.addElement(e, ts);
  return s;
}

describe('tumbling event-time windows', () => {
  test('[start, end): an element at end - 1 is in the window, one at end in the next; results carry maxTimestamp', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const events: [Ev, number][] = [
      [ev('a', 1), 0],
      [ev('a', 2), 9],
      [ev('a', 4), 10],
      [ev('b', 8), 19],
      [ev('b', 16), 20],
    ];
    const out = withTimestamps(
      fromTestStream(env, script(events))
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10))
        .aggregate(countSum, describeWindow),
    ).collect();
    await env.execute();
    const expected = expectedStats(events, (ts) => [tumblingWindow(ts, 10)]);
    expect(sortedByJson(out.values.map(([s]) => s))).toEqual(expected);
    // Flink: a window result has the timestamp window.maxTimestamp() = end - 1.
    for (const [s, ts] of out.values) expect(ts).toBe(s.end - 1);
  });

  test('negative timestamps: start = ts - ((ts - offset) % size + size) % size', async () => {
    const env = new StreamExecutionEnvironment();
    const events: [Ev, number][] = [-1, -10, -11, -25, 0, 3].map((ts, i) => [ev('k', i + 1), ts]);
    const out = fromTestStream(env, script(events))
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .aggregate(countSum, describeWindow)
      .collect();
    await env.execute();
    expect(sortedByJson(out.values)).toEqual(expectedStats(events, (ts) => [tumblingWindow(ts, 10)]));
    expect(out.values.some((s) => s.start === -10 && s.end === 0 && s.count === 2)).toBe(true);
  });

  test('positive and negative offsets shift the windows', async () => {
    for (const offset of [3, -3, 7]) {
      const env = new StreamExecutionEnvironment();
      const events: [Ev, number][] = [-8, -3, -1, 0, 2, 3, 6, 7, 12, 13].map((ts, i) => [ev('k', i), ts]);
      const out = fromTestStream(env, script(events))
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10, offset))
        .aggregate(countSum, describeWindow)
        .collect();
      await env.execute();
      expect(sortedByJson(out.values)).toEqual(
        expectedStats(events, (ts) => [tumblingWindow(ts, 10, offset)]),
      );
    }
  });

  test('a window fires when the watermark reaches maxTimestamp (end - 1), not before', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 3)
      .advanceWatermarkTo(8) // < maxTimestamp 9: no fire
      .addElement(ev('a', 2), 9) // still on time
      .advanceWatermarkTo(9) // = maxTimestamp: fires
      .advanceWatermarkTo(30);
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .process<[number, number]>({
        process(_k, ctx, elements, o) {
          o.collect([[...elements].reduce((n, e) => n + e.v, 0), ctx.currentWatermark()]);
        },
      })
      .collect();
    await env.execute();
    expect(out.values).toEqual([[3, 9]]);
  });

  test('windows of different keys are independent (per-key state and timers)', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 3 });
    const events: [Ev, number][] = [];
    for (let i = 0; i < 60; i++) events.push([ev(`k${i % 7}`, i), (i * 37) % 53]);
    const out = fromTestStream(env, script(events))
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(15))
      .aggregate(countSum, describeWindow)
      .collect();
    await env.execute();
    expect(sortedByJson(out.values)).toEqual(expectedStats(events, (ts) => [tumblingWindow(ts, 15)]));
  });
});

describe('sliding event-time windows', () => {
  test('windows overlap: an element is in every window [start, start + size) that holds it', async () => {
    for (const [size, slide, offset] of [
      [10, 5, 0],
      [10, 4, 0],
      [9, 3, -2],
      [5, 5, 1],
    ] as const) {
      const env = new StreamExecutionEnvironment({ parallelism: 2 });
      const events: [Ev, number][] = [];
      for (let i = 0; i < 40; i++) events.push([ev(`k${i % 3}`, i), ((i * 7) % 31) - 10]);
      const out = fromTestStream(env, script(events))
        .keyBy((e) => e.key)
        .window(SlidingEventTimeWindows.of(size, slide, offset))
        .aggregate(countSum, describeWindow)
        .collect();
      await env.execute();
      expect(sortedByJson(out.values)).toEqual(
        expectedStats(events, (ts) => slidingWindows(ts, size, slide, offset)),
      );
    }
  });
});

describe('event-time session windows', () => {
  async function runSessions(events: [Ev, number][], gap: number, parallelism = 1) {
    const env = new StreamExecutionEnvironment({ parallelism });
    const out = withTimestamps(
      fromTestStream(env, script(events))
        .keyBy((e) => e.key)
        .window(EventTimeSessionWindows.withGap(gap))
        .aggregate(countSum, describeWindow),
    ).collect();
    await env.execute();
    return out.values;
  }

  function expectedSessions(events: [Ev, number][], gap: number): Stat[] {
    const out: Stat[] = [];
    const keys = [...new Set(events.map(([e]) => e.key))];
    for (const key of keys) {
      const mine = events.filter(([e]) => e.key === key);
      for (const s of sessions(
        mine.map(([, ts]) => ts),
        gap,
      )) {
        const members = mine.filter(([, ts]) => ts >= s.start && ts < s.end);
        out.push({
          key,
          start: s.start,
          end: s.end,
          count: members.length,
          sum: members.reduce((n, [e]) => n + e.v, 0),
        });
      }
    }
    return sortedByJson(out);
  }

  test('touching sessions merge (Flink: start <= other.end && end >= other.start); a gap of 1 ms does not', async () => {
    const events: [Ev, number][] = [
      [ev('a', 1), 0],
      [ev('a', 2), 5], // [5, 10) touches [0, 5): one session [0, 10)
      [ev('b', 1), 0],
      [ev('b', 2), 6], // [6, 11) does not touch [0, 5)
    ];
    const values = await runSessions(events, 5);
    expect(sortedByJson(values.map(([s]) => s))).toEqual(expectedSessions(events, 5));
    expect(values.find(([s]) => s.key === 'a')![0]).toMatchObject({ start: 0, end: 10, count: 2 });
    expect(values.filter(([s]) => s.key === 'b').length).toBe(2);
    for (const [s, ts] of values) expect(ts).toBe(s.end - 1);
  });

  test('an element that bridges two sessions merges all three windows and their state', async () => {
    const events: [Ev, number][] = [
      [ev('a', 1), 0],
      [ev('a', 10), 10],
      [ev('a', 100), 5], // [5, 10) touches [0, 5) and [10, 15)
    ];
    const values = await runSessions(events, 5);
    expect(values.map(([s]) => s)).toEqual([{ key: 'a', start: 0, end: 15, count: 3, sum: 111 }]);
  });

  test('out-of-order elements and several keys give the batch sessions, at parallelism 1 and 3', async () => {
    const events: [Ev, number][] = [];
    for (let i = 0; i < 80; i++) events.push([ev(`k${i % 4}`, i), (i * 41) % 97]);
    for (const p of [1, 3]) {
      const values = await runSessions(events, 4, p);
      expect(sortedByJson(values.map(([s]) => s))).toEqual(expectedSessions(events, 4));
    }
  });

  test('dynamic gap: each element brings its own gap', async () => {
    const env = new StreamExecutionEnvironment();
    const events: [Ev, number][] = [
      [ev('a', 20), 0], // [0, 20)
      [ev('a', 2), 15], // [15, 17) inside: merges without growing
      [ev('a', 5), 30], // [30, 35): separate
      [ev('a', 10), 36], // [36, 46): separate (35 < 36)
      [ev('a', 1), 34], // [34, 35): touches [30, 35) -> [30, 35)
    ];
    const out = fromTestStream(env, script(events))
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withDynamicGap<Ev>((e) => e.v))
      .aggregate(countSum, describeWindow)
      .collect();
    await env.execute();
    // Reference: connected components of the element covers [ts, ts + gap).
    const covers = events
      .map(([e, ts]) => ({ start: ts, end: ts + e.v, v: e.v }))
      .sort((x, y) => x.start - y.start);
    const expected: Stat[] = [];
    for (const c of covers) {
      const last = expected[expected.length - 1];
      if (last !== undefined && c.start <= last.end) {
        last.end = Math.max(last.end, c.end);
        last.count++;
        last.sum += c.v;
      } else expected.push({ key: 'a', start: c.start, end: c.end, count: 1, sum: c.v });
    }
    expect(sortedByJson(out.values)).toEqual(sortedByJson(expected));
  });

  test('reduce on sessions merges the reduced values of merged windows (with the reduce function)', async () => {
    const env = new StreamExecutionEnvironment();
    const events: [Ev, number][] = [
      [ev('a', 1), 0],
      [ev('a', 2), 20],
      [ev('a', 4), 10], // bridges [0, 10) and [20, 30)
    ];
    const out = fromTestStream(env, script(events))
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10))
      .reduce((x, y) => ({ key: x.key, v: x.v + y.v }))
      .collect();
    await env.execute();
    expect(out.values).toEqual([{ key: 'a', v: 7 }]);
  });

  test('aggregate() on session windows needs AggregateFunction.merge (clear error when building)', () => {
    const env = new StreamExecutionEnvironment();
    const { merge: _merge, ...noMerge } = countSum;
    expect(() =>
      env
        .fromElements(ev('a', 1))
        .keyBy((e) => e.key)
        .window(EventTimeSessionWindows.withGap(10))
        .aggregate(noMerge),
    ).toThrow(/needs an AggregateFunction with merge/);
  });
});

describe('lateness (Flink WindowOperator)', () => {
  test('an element whose windows are all past cleanup is dropped and counted in numLateRecordsDropped', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 1)
      .advanceWatermarkTo(9) // fires and cleans up [0, 10)
      .addElement(ev('a', 2), 5) // late: [0, 10) has maxTimestamp 9 <= watermark 9
      .addElement(ev('a', 4), 10); // on time: [10, 20)
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .reduce((x, y) => ({ key: x.key, v: x.v + y.v }))
      .name('sum')
      .collect();
    const result = await env.execute();
    expect(out.values).toEqual([ev('a', 1), ev('a', 4)]);
    const window = result.metrics.operators.find((o) => o.operatorName === 'sum')!;
    expect(window.metrics.numLateRecordsDropped).toBe(1);
  });

  test('with sideOutputLateData, late elements go to the side output with their own timestamp and are not counted', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const late = new OutputTag<Ev>('late');
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 1)
      .addElement(ev('b', 1), 2)
      .advanceWatermarkTo(15)
      .addElement(ev('a', 2), 5)
      .addElement(ev('b', 3), 9)
      .addElement(ev('b', 5), 16);
    const windowed = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .sideOutputLateData(late)
      .reduce((x, y) => ({ key: x.key, v: x.v + y.v }))
      .name('sum');
    const main = windowed.collect();
    const side = withTimestamps(windowed.getSideOutput(late)).collect();
    const result = await env.execute();
    expect(sortedByJson(main.values)).toEqual(sortedByJson([ev('a', 1), ev('b', 1), ev('b', 5)]));
    expect(sortedByJson(side.values)).toEqual(
      sortedByJson([
        [ev('a', 2), 5],
        [ev('b', 3), 9],
      ]),
    );
    // Flink increments numLateRecordsDropped only when it does not side-output.
    const window = result.metrics.operators.find((o) => o.operatorName === 'sum')!;
    expect(window.metrics.numLateRecordsDropped).toBe(0);
  });

  test('allowed lateness: a late-but-allowed element is added and re-fires the window at once; after cleanup it is dropped', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 1)
      .advanceWatermarkTo(9) // on-time fire: 1
      .addElement(ev('a', 2), 3) // cleanup time 9 + 5 = 14 > 9: added, EventTimeTrigger fires at once: 3
      .advanceWatermarkTo(13)
      .addElement(ev('a', 4), 0) // still allowed: 7
      .advanceWatermarkTo(14) // cleanup: state of [0, 10) is dropped
      .addElement(ev('a', 8), 2); // late: dropped and counted
    const out = withTimestamps(
      fromTestStream(env, s)
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10))
        .allowedLateness(5)
        .reduce((x, y) => ({ key: x.key, v: x.v + y.v }))
        .name('sum'),
    ).collect();
    const result = await env.execute();
    expect(out.values).toEqual([
      [ev('a', 1), 9],
      [ev('a', 3), 9],
      [ev('a', 7), 9],
    ]);
    const window = result.metrics.operators.find((o) => o.operatorName === 'sum')!;
    expect(window.metrics.numLateRecordsDropped).toBe(1);
  });

  test('a sliding-window element whose windows are only partly late is added to the others and is not late', async () => {
    const env = new StreamExecutionEnvironment();
    const late = new OutputTag<Ev>('late');
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 1) // windows [0, 10) and [-5, 5)
      .advanceWatermarkTo(9) // [-5, 5) and [0, 10) fire and are cleaned up
      .addElement(ev('a', 2), 7); // [0, 10) is late, [5, 15) is not
    const windowed = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(SlidingEventTimeWindows.of(10, 5))
      .sideOutputLateData(late)
      .aggregate(countSum, describeWindow);
    const main = windowed.collect();
    const side = windowed.getSideOutput(late).collect();
    await env.execute();
    expect(sortedByJson(main.values)).toEqual(
      sortedByJson([
        { key: 'a', start: -5, end: 5, count: 1, sum: 1 },
        { key: 'a', start: 0, end: 10, count: 1, sum: 1 }, // without the late-for-it element 7
        { key: 'a', start: 5, end: 15, count: 1, sum: 2 },
      ]),
    );
    expect(side.values).toEqual([]);
  });

  test('sessions: lateness is judged after merging; an element merging into a live session is not late', async () => {
    const env = new StreamExecutionEnvironment();
    const late = new OutputTag<Ev>('late');
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 20) // session [20, 30)
      .advanceWatermarkTo(25)
      .addElement(ev('a', 2), 12) // [12, 22) alone would be late (21 <= 25) but merges: [12, 30)
      .addElement(ev('a', 4), 1); // [1, 11) is late and merges with nothing: side output
    const windowed = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10))
      .sideOutputLateData(late)
      .aggregate(countSum, describeWindow);
    const main = windowed.collect();
    const side = windowed.getSideOutput(late).collect();
    await env.execute();
    expect(main.values).toEqual([{ key: 'a', start: 12, end: 30, count: 2, sum: 3 }]);
    expect(side.values).toEqual([ev('a', 4)]);
  });

  test('sessions with allowed lateness: a late element merging into a fired session re-fires the merged session', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 0) // [0, 10)
      .advanceWatermarkTo(9) // fires [0, 10); cleanup at 9 + 20 = 29
      .addElement(ev('a', 2), 10) // [10, 20) touches: merged [0, 20), maxTimestamp 19 > 9: fires at 19
      .advanceWatermarkTo(25) // fires [0, 20)
      .addElement(ev('a', 4), 3); // merges into [0, 20) (cleanup 39 > 25): fires at once
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10))
      .allowedLateness(20)
      .aggregate(countSum, describeWindow)
      .collect();
    await env.execute();
    expect(out.values).toEqual([
      { key: 'a', start: 0, end: 10, count: 1, sum: 1 },
      { key: 'a', start: 0, end: 20, count: 2, sum: 3 },
      { key: 'a', start: 0, end: 20, count: 3, sum: 7 },
    ]);
  });

  test('allowedLateness and sideOutputLateData validate their arguments', () => {
    const env = new StreamExecutionEnvironment();
    const w = env
      .fromElements(ev('a', 1))
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10));
    expect(() => w.allowedLateness(-1)).toThrow(/allowed lateness cannot be negative/);
    expect(() => w.allowedLateness(1.5)).toThrow(InvalidArgumentError);
  });
});

describe('records without timestamps', () => {
  test('an event-time window on records without timestamps fails with a clear error naming the operator', async () => {
    const env = new StreamExecutionEnvironment();
    env
      .fromElements(ev('a', 1))
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .reduce((x, y) => ({ key: x.key, v: x.v + y.v }))
      .name('my window')
      .collect();
    await expect(env.execute()).rejects.toThrow(
      /'my window'.*window assigner threw.*Record has no timestamp.*assignTimestampsAndWatermarks/s,
    );
  });

  test('timestamps from a WatermarkStrategy make the same job work', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const items = Array.from({ length: 50 }, (_x, i) => ({ key: `k${i % 3}`, v: i }));
    const out = env
      .fromArray(items, {
        parallel: true,
        watermarks: WatermarkStrategy.forMonotonousTimestamps<Ev>().withTimestampAssigner((e) => e.v),
      })
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .aggregate(countSum, describeWindow)
      .collect();
    await env.execute();
    expect(sortedByJson(out.values)).toEqual(
      expectedStats(
        items.map((e) => [e, e.v]),
        (ts) => [tumblingWindow(ts, 10)],
      ),
    );
  });
});
