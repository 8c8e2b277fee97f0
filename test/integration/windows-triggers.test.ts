// Triggers, evictors, processing-time and global windows, windowAll and window functions, through
// the public API; each test names the Flink behaviour it checks.
import {
  type Collector,
  ContinuousEventTimeTrigger,
  ContinuousProcessingTimeTrigger,
  CountEvictor,
  CountTrigger,
  DeltaEvictor,
  EventTimeSessionWindows,
  EventTimeTrigger,
  type GlobalWindow,
  GlobalWindows,
  type OnMergeContext,
  OutputTag,
  type ProcessAllWindowContext,
  ProcessAllWindowFunction,
  ProcessingTimeSessionWindows,
  ProcessingTimeTrigger,
  type ProcessWindowContext,
  ProcessWindowFunction,
  PurgingTrigger,
  ReducingStateDescriptor,
  type RuntimeContext,
  SlidingProcessingTimeWindows,
  StreamExecutionEnvironment,
  TimeEvictor,
  type TimeWindow,
  Trigger,
  type TriggerContext,
  TriggerResult,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
  ValueStateDescriptor,
  WatermarkStrategy,
  type Window,
} from 'tidemark';
import { fromTestStream, ManualClock, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { sortedByJson, withTimestamps } from '../helpers/windows.js';

interface Ev {
  key: string;
  v: number;
}
const ev = (key: string, v: number): Ev => ({ key, v });
const sumEv = (x: Ev, y: Ev): Ev => ({ key: x.key, v: x.v + y.v });

/** Emits the values of a window's elements. */
const values = {
  process(_k: string, _ctx: unknown, elements: Iterable<Ev>, out: Collector<number[]>) {
    out.collect([...elements].map((e) => e.v));
  },
};

/** Emits `[values, watermark when it fired]`. */
const valuesAtWatermark = {
  process(
    _k: string,
    ctx: ProcessWindowContext<Window>,
    elements: Iterable<Ev>,
    out: Collector<[number[], number]>,
  ) {
    out.collect([[...elements].map((e) => e.v), ctx.currentWatermark()]);
  },
};

/** A script of elements of key 'a' with values 1..n and timestamps `ts(i)`. */
function counting(n: number, ts: (i: number) => number = (i) => i): TestStream<Ev> {
  const s = TestStream.create<Ev>();
  for (let i = 1; i <= n; i++) s.addElement(ev('a', i), ts(i));
  return s;
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_x, i) => from + i);

describe('count trigger and purging trigger', () => {
  test('GlobalWindows + CountTrigger fires every n elements and keeps the contents (FIRE does not purge)', async () => {
    const env = new StreamExecutionEnvironment();
    const out = withTimestamps(
      fromTestStream(env, counting(7))
        .keyBy((e) => e.key)
        .window(GlobalWindows.create())
        .trigger(CountTrigger.of(3))
        .process(values),
    ).collect();
    await env.execute();
    // The seventh element never fires: the global window never ends (Flink).
    // A global window's results carry maxTimestamp = +Infinity (Long.MAX_VALUE).
    expect(out.values).toEqual([
      [range(1, 3), Number.POSITIVE_INFINITY],
      [range(1, 6), Number.POSITIVE_INFINITY],
    ]);
  });

  test('PurgingTrigger turns FIRE into FIRE_AND_PURGE (Flink countWindow)', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(env, counting(7))
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .trigger(PurgingTrigger.of(CountTrigger.of(3)))
      .reduce(sumEv)
      .collect();
    await env.execute();
    expect(out.values.map((e) => e.v)).toEqual([1 + 2 + 3, 4 + 5 + 6]);
  });

  test('GlobalWindows without a trigger never fire (NeverTrigger)', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(env, counting(5))
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .reduce(sumEv)
      .collect();
    await env.execute();
    expect(out.values).toEqual([]);
  });

  test('a CountTrigger replaces the EventTimeTrigger of tumbling windows: no fire at the watermark', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(
      env,
      counting(5, (i) => i * 3),
    )
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .trigger(CountTrigger.of(2))
      .process(values)
      .collect();
    await env.execute();
    // Windows [0,10) holds 1,2,3 (ts 3,6,9), [10,20) holds 4,5 (ts 12,15): fires at every 2nd element.
    expect(out.values).toEqual([
      [1, 2],
      [4, 5],
    ]);
  });

  test('CountTrigger on sessions merges the counts of merged windows (onMerge mergePartitionedState)', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 0) // [0, 10): count 1
      .addElement(ev('a', 2), 20) // [20, 30): count 1
      .addElement(ev('a', 3), 10); // bridges: merged count 2, + 1 = 3: fires
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10))
      .trigger(CountTrigger.of(3))
      .process({
        process(_k: string, ctx: ProcessWindowContext<TimeWindow>, els: Iterable<Ev>, o: Collector<string>) {
          o.collect(`${ctx.window.start}-${ctx.window.end}: ${[...els].map((e) => e.v).sort()}`);
        },
      })
      .collect();
    await env.execute();
    expect(out.values).toEqual(['0-30: 1,2,3']);
  });

  test('a trigger that cannot merge is rejected for session windows', () => {
    class NoMerge extends Trigger<unknown, Window> {
      onElement() {
        return TriggerResult.FIRE;
      }
      onEventTime() {
        return TriggerResult.CONTINUE;
      }
      onProcessingTime() {
        return TriggerResult.CONTINUE;
      }
      clear() {}
    }
    const env = new StreamExecutionEnvironment();
    const w = env
      .fromElements(ev('a', 1))
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10));
    expect(() => w.trigger(new NoMerge())).toThrow(
      /cannot be used with a trigger that does not support merging/,
    );
    expect(() => w.trigger(EventTimeTrigger.create())).not.toThrow();
  });
});

describe('continuous triggers', () => {
  test('ContinuousEventTimeTrigger fires every interval of event time and at the window end', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 5) // first fire time: 5 - 5 % 10 + 10 = 10
      .advanceWatermarkTo(10) // fires [1]; next 20
      .addElement(ev('a', 2), 15)
      .advanceWatermarkTo(20) // fires [1,2]; next 30
      .addElement(ev('a', 3), 37)
      .advanceWatermarkTo(40) // 30 and 40 fire: [1,2,3] twice; next 50
      .advanceWatermarkTo(100); // 50..90 fire, then the window end 99
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(100))
      .trigger(ContinuousEventTimeTrigger.of(10))
      .process(valuesAtWatermark)
      .collect();
    await env.execute();
    const expected: [number[], number][] = [
      [[1], 10],
      [[1, 2], 20],
      [[1, 2, 3], 40],
      [[1, 2, 3], 40],
    ];
    for (let i = 0; i < 6; i++) expected.push([[1, 2, 3], 100]); // fire times 50, 60, 70, 80, 90, 99
    expect(out.values).toEqual(expected);
  });

  test('ContinuousProcessingTimeTrigger fires every interval of processing time', async () => {
    const clock = new ManualClock(1000);
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1)) // at 1000: first fire at 1000 - 0 + 100 = 1100
      .advanceProcessingTime(50)
      .addElement(ev('a', 2))
      .advanceProcessingTime(60) // 1110: fires [1, 2]; next 1200
      .addElement(ev('a', 3))
      .advanceProcessingTime(100); // 1210: fires [1, 2, 3]
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .trigger(ContinuousProcessingTimeTrigger.of(100))
      .process({
        process(
          _k: string,
          ctx: ProcessWindowContext<GlobalWindow>,
          els: Iterable<Ev>,
          o: Collector<[number[], number]>,
        ) {
          o.collect([[...els].map((e) => e.v), ctx.currentProcessingTime()]);
        },
      })
      .collect();
    await env.execute({ clock });
    expect(out.values).toEqual([
      [[1, 2], 1110],
      [[1, 2, 3], 1210],
    ]);
  });
});

describe('continuous processing-time trigger on event-time windows (FLINK-35069)', () => {
  test('processing time past the window end: the window fires once more, at its end, and the job ends', async () => {
    const clock = new ManualClock(0);
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 10) // event-time window [0, 1000); fire times 100, 200, ...
      .advanceProcessingTime(150) // fires at 100
      .addElement(ev('a', 2), 20)
      .advanceProcessingTime(5000) // fires at 200, ..., 900 and the end 999, then no more
      .addElement(ev('a', 3), 30) // still open in event time: fires once, at once (the end is due)
      .advanceProcessingTime(100); // nothing more
    let fires = 0;
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(1000))
      .trigger(ContinuousProcessingTimeTrigger.of(100))
      .process({
        process(_k: string, ctx: ProcessWindowContext<TimeWindow>, els: Iterable<Ev>, o: Collector<string>) {
          if (++fires > 1000) throw new Error('the window fires in a loop');
          o.collect(`${[...els].map((e) => e.v).join('+')} at ${ctx.currentProcessingTime()}`);
        },
      })
      .collect();
    await env.execute({ clock });
    const expected = ['1 at 150'];
    // One advance of the clock (to 5150) fires every due fire time once: 200, ..., 900, 999.
    for (let t = 200; t <= 900; t += 100) expected.push('1+2 at 5150');
    expected.push('1+2 at 5150', '1+2+3 at 5150');
    expect(out.values).toEqual(expected);
  });
});

describe('custom triggers', () => {
  /** Fires (and purges) when the sum of a window reaches a threshold; state per key and window. */
  class SumTrigger extends Trigger<Ev, Window> {
    private readonly sum = new ReducingStateDescriptor<number>('sum', (a, b) => a + b);
    constructor(private readonly threshold: number) {
      super();
    }
    onElement(e: Ev, _ts: number, _w: Window, ctx: TriggerContext): TriggerResult {
      const s = ctx.getPartitionedState(this.sum);
      s.add(e.v);
      if (s.get()! < this.threshold) return TriggerResult.CONTINUE;
      s.clear();
      return TriggerResult.FIRE_AND_PURGE;
    }
    onEventTime(): TriggerResult {
      return TriggerResult.CONTINUE;
    }
    onProcessingTime(): TriggerResult {
      return TriggerResult.CONTINUE;
    }
    override canMerge(): boolean {
      return true;
    }
    override onMerge(_w: Window, ctx: OnMergeContext): void {
      ctx.mergePartitionedState(this.sum);
    }
    clear(_w: Window, ctx: TriggerContext): void {
      ctx.getPartitionedState(this.sum).clear();
    }
  }

  test('a subclass of Trigger with partitioned state decides when to fire and purge', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const s = TestStream.create<Ev>();
    const input = [3, 4, 1, 9, 2, 2, 2, 5];
    input.forEach((v, i) => {
      s.addElement(ev('a', v), i);
      s.addElement(ev('b', v * 2), i);
    });
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .trigger(new SumTrigger(7))
      .process({
        process(k: string, _c: unknown, els: Iterable<Ev>, o: Collector<[string, number[]]>) {
          o.collect([k, [...els].map((e) => e.v)]);
        },
      })
      .collect();
    await env.execute();
    // Reference: cut each key's values whenever the running sum reaches 7.
    const expected: [string, number[]][] = [];
    for (const [key, mult] of [
      ['a', 1],
      ['b', 2],
    ] as const) {
      let cur: number[] = [];
      for (const v of input.map((x) => x * mult)) {
        cur.push(v);
        if (cur.reduce((a, b) => a + b, 0) >= 7) {
          expected.push([key, cur]);
          cur = [];
        }
      }
    }
    expect(sortedByJson(out.values)).toEqual(sortedByJson(expected));
  });
});

describe('evictors (Flink EvictingWindowOperator)', () => {
  test('CountEvictor before the function: it sees the last n elements, the rest are removed from the window', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(env, counting(6))
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .trigger(CountTrigger.of(3))
      .evictor(CountEvictor.of(2))
      .process(values)
      .collect();
    await env.execute();
    // Fire 1 (3 elements) sees [2, 3]; the window keeps [2, 3]; fire 2 at 6 elements sees [5, 6].
    expect(out.values).toEqual([
      [2, 3],
      [5, 6],
    ]);
  });

  test('CountEvictor after the function: it sees everything, then the window keeps the last n', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(env, counting(6))
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .trigger(CountTrigger.of(3))
      .evictor(CountEvictor.of(2, true))
      .process(values)
      .collect();
    await env.execute();
    expect(out.values).toEqual([
      [1, 2, 3],
      [2, 3, 4, 5, 6],
    ]);
  });

  test('TimeEvictor keeps the elements within windowMs of the largest timestamp (removes ts <= max - windowMs)', async () => {
    const env = new StreamExecutionEnvironment();
    const ts = [1, 5, 9, 6, 8];
    const out = fromTestStream(
      env,
      counting(ts.length, (i) => ts[i - 1]!),
    )
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .evictor(TimeEvictor.of(3))
      .process(values)
      .collect();
    await env.execute();
    const max = Math.max(...ts);
    expect(out.values).toEqual([range(1, ts.length).filter((i) => ts[i - 1]! > max - 3)]);
  });

  test('DeltaEvictor removes elements whose delta to the last element is >= threshold', async () => {
    const env = new StreamExecutionEnvironment();
    const vs = [10, 1, 4, 7, 5];
    const s = TestStream.create<Ev>();
    for (const [i, v] of vs.entries()) s.addElement(ev('a', v), i);
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .evictor(DeltaEvictor.of<Ev>(3, (a, b) => Math.abs(a.v - b.v)))
      .process(values)
      .collect();
    await env.execute();
    const last = vs[vs.length - 1]!;
    expect(out.values).toEqual([vs.filter((v) => Math.abs(v - last) < 3)]);
  });

  test('reduce and aggregate with an evictor are applied to the remaining elements when the window fires', async () => {
    const env = new StreamExecutionEnvironment();
    const keyed = () =>
      fromTestStream(env, counting(5))
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(100))
        .evictor(CountEvictor.of(3));
    const reduced = keyed().reduce(sumEv).collect();
    const aggregated = keyed()
      .aggregate({
        createAccumulator: () => [] as number[],
        add: (e: Ev, acc: number[]) => [...acc, e.v],
        getResult: (acc: number[]) => acc,
      })
      .collect();
    await env.execute();
    expect(reduced.values).toEqual([ev('a', 3 + 4 + 5)]);
    expect(aggregated.values).toEqual([[3, 4, 5]]);
  });

  test('evictor with session windows: merged windows concatenate their element lists', async () => {
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 0)
      .addElement(ev('a', 2), 20)
      .addElement(ev('a', 3), 10);
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10))
      .evictor(CountEvictor.of(2))
      .process(values)
      .collect();
    await env.execute();
    // Merged [0, 30): the lists of [0, 10) and [20, 30), in window order, then the new element; the
    // evictor keeps the last two.
    expect(out.values).toEqual([[2, 3]]);
  });
});

describe('processing-time windows (ManualClock + TestStream.advanceProcessingTime)', () => {
  test('tumbling processing-time windows group by the time the operator sees the element', async () => {
    const clock = new ManualClock(1000);
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 5_000) // event timestamps are ignored
      .addElement(ev('b', 1))
      .advanceProcessingTime(50)
      .addElement(ev('a', 2))
      .advanceProcessingTime(60) // 1110: [1000, 1100) fired at 1099
      .addElement(ev('a', 4))
      .advanceProcessingTime(100); // 1210: [1100, 1200) fired
    const out = withTimestamps(
      fromTestStream(env, s)
        .keyBy((e) => e.key)
        .window(TumblingProcessingTimeWindows.of(100))
        .reduce(sumEv),
    ).collect();
    await env.execute({ clock });
    expect(sortedByJson(out.values)).toEqual(
      sortedByJson([
        [ev('a', 3), 1099],
        [ev('b', 1), 1099],
        [ev('a', 4), 1199],
      ]),
    );
  });

  test('sliding processing-time windows', async () => {
    const clock = new ManualClock(0);
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1)) // 0: [-50, 50), [0, 100)
      .advanceProcessingTime(60)
      .addElement(ev('a', 2)) // 60: [0, 100), [50, 150)
      .advanceProcessingTime(100); // 160: everything up to [50, 150) fired
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(SlidingProcessingTimeWindows.of(100, 50))
      .process({
        process(
          _k: string,
          ctx: ProcessWindowContext<TimeWindow>,
          els: Iterable<Ev>,
          o: Collector<[number, number[]]>,
        ) {
          o.collect([ctx.window.start, [...els].map((e) => e.v)]);
        },
      })
      .collect();
    await env.execute({ clock });
    expect(out.values).toEqual([
      [-50, [1]],
      [0, [1, 2]],
      [50, [2]],
    ]);
  });

  test('processing-time sessions merge by arrival time; dynamic gaps too', async () => {
    for (const dynamic of [false, true]) {
      const clock = new ManualClock(0);
      const env = new StreamExecutionEnvironment();
      const s = TestStream.create<Ev>()
        .addElement(ev('a', 1)) // [0, 30)
        .advanceProcessingTime(20)
        .addElement(ev('a', 2)) // [20, 50): merged [0, 50)
        .advanceProcessingTime(40) // 60: fired at 49
        .addElement(ev('a', 4)) // [60, 90)
        .advanceProcessingTime(100);
      const w = fromTestStream(env, s).keyBy((e) => e.key);
      const windowed = dynamic
        ? w.window(ProcessingTimeSessionWindows.withDynamicGap<Ev>(() => 30))
        : w.window(ProcessingTimeSessionWindows.withGap(30));
      const out = withTimestamps(windowed.reduce(sumEv)).collect();
      await env.execute({ clock });
      expect(out.values).toEqual([
        [ev('a', 3), 49],
        [ev('a', 4), 89],
      ]);
    }
  });

  test('ProcessingTimeTrigger on event-time windows fires on the clock, not the watermark', async () => {
    const clock = new ManualClock(0);
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 5)
      .advanceProcessingTime(10) // clock 10 >= maxTimestamp 9: fires, though the watermark is -Infinity
      .addElement(ev('a', 2), 7) // same window; its timer at 9 is due at once: fires again
      .advanceProcessingTime(1)
      .advanceWatermarkTo(1000) // cleanup of an event-time window follows the watermark
      .addElement(ev('a', 4), 8); // late (maxTimestamp 9 <= 1000): dropped
    const out = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .trigger(ProcessingTimeTrigger.create())
      .reduce(sumEv)
      .collect();
    await env.execute({ clock });
    expect(out.values).toEqual([ev('a', 1), ev('a', 3)]);
  });
});

describe('window functions', () => {
  test('reduce(fn, processFn) and aggregate(fn, processFn): the process function gets the one pre-aggregated value', async () => {
    const env = new StreamExecutionEnvironment();
    const windowed = () =>
      fromTestStream(
        env,
        counting(12, (i) => i * 2),
      )
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10));
    const seen = {
      process(
        k: string,
        ctx: ProcessWindowContext<TimeWindow>,
        els: Iterable<number | Ev>,
        o: Collector<string>,
      ) {
        const all = [...els];
        o.collect(`${k} ${ctx.window.start} n=${all.length} ${JSON.stringify(all[0])}`);
      },
    };
    const reduced = windowed().reduce(sumEv, seen).collect();
    const aggregated = windowed()
      .aggregate(
        { createAccumulator: () => 0, add: (e: Ev, n: number) => n + e.v, getResult: (n: number) => n },
        seen,
      )
      .collect();
    await env.execute();
    // Elements i = 1..12 at ts 2i: windows [0,10): 1..4, [10,20): 5..9, [20,30): 10..12.
    const sums = [
      [0, range(1, 4)],
      [10, range(5, 9)],
      [20, range(10, 12)],
    ] as const;
    expect(reduced.values).toEqual(
      sums.map(
        ([start, vs]) =>
          `a ${start} n=1 ${JSON.stringify(
            ev(
              'a',
              vs.reduce((x, y) => x + y, 0),
            ),
          )}`,
      ),
    );
    expect(aggregated.values).toEqual(
      sums.map(([start, vs]) => `a ${start} n=1 ${vs.reduce((x, y) => x + y, 0)}`),
    );
  });

  test('apply() with a legacy WindowFunction (function and object forms)', async () => {
    const env = new StreamExecutionEnvironment();
    const w = () =>
      fromTestStream(env, counting(4))
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10));
    const fnForm = w()
      .apply<string>((key, window, input, out) =>
        out.collect(`${key}@${window.maxTimestamp()}:${[...input].length}`),
      )
      .collect();
    const objForm = w()
      .apply<string>({
        apply(key, window, input, out) {
          out.collect(`${key}@${window.start}:${[...input].map((e) => e.v).join('')}`);
        },
      })
      .collect();
    await env.execute();
    expect(fnForm.values).toEqual(['a@9:4']);
    expect(objForm.values).toEqual(['a@0:1234']);
  });

  test('ProcessWindowFunction: windowState is per key and window, globalState per key, clear() runs at cleanup', async () => {
    const cleared = new OutputTag<string>('cleared');
    class FireCounter extends ProcessWindowFunction<Ev, string, string, TimeWindow> {
      private readonly perWindow = new ValueStateDescriptor<number>('fires-in-window', { defaultValue: 0 });
      private readonly perKey = new ValueStateDescriptor<number>('fires-of-key', { defaultValue: 0 });
      override open(_ctx: RuntimeContext): void {}
      process(
        key: string,
        ctx: ProcessWindowContext<TimeWindow>,
        els: Iterable<Ev>,
        out: Collector<string>,
      ): void {
        const w = ctx.windowState().getState(this.perWindow);
        const g = ctx.globalState().getState(this.perKey);
        w.update(w.value()! + 1);
        g.update(g.value()! + 1);
        out.collect(`${key} [${ctx.window.start}] n=${[...els].length} window#${w.value()} key#${g.value()}`);
      }
      override clear(ctx: ProcessWindowContext<TimeWindow>): void {
        const w = ctx.windowState().getState(this.perWindow);
        ctx.output(cleared, `${ctx.window.start} after ${w.value()} fires`);
        w.clear();
      }
    }
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<Ev>()
      .addElement(ev('a', 1), 1)
      .advanceWatermarkTo(10) // fires [0, 10)
      .addElement(ev('a', 2), 2) // allowed lateness: fires [0, 10) again
      .addElement(ev('a', 3), 12)
      .advanceWatermarkTo(15) // cleanup of [0, 10) at 9 + 5 = 14
      .advanceWatermarkTo(19); // fires [10, 20)
    const windowed = fromTestStream(env, s)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .allowedLateness(5)
      .process(new FireCounter());
    const out = windowed.collect();
    const side = withTimestamps(windowed.getSideOutput(cleared)).collect();
    await env.execute();
    expect(out.values).toEqual([
      'a [0] n=1 window#1 key#1',
      'a [0] n=2 window#2 key#2',
      'a [10] n=1 window#1 key#3',
    ]);
    // clear() runs at each window's cleanup; side outputs carry the window's maxTimestamp.
    expect(side.values).toEqual([
      ['0 after 2 fires', 9],
      ['10 after 1 fires', 19],
    ]);
  });

  test('windowState() is not allowed with merging windows (Flink)', async () => {
    const env = new StreamExecutionEnvironment();
    fromTestStream(env, counting(2))
      .keyBy((e) => e.key)
      .window(EventTimeSessionWindows.withGap(10))
      .process({
        process(_k: string, ctx: ProcessWindowContext<TimeWindow>, _e: Iterable<Ev>, _o: Collector<number>) {
          ctx.windowState().getState(new ValueStateDescriptor<number>('x'));
        },
      })
      .collect();
    await expect(env.execute()).rejects.toThrow(/Per-window state is not allowed when using merging windows/);
  });

  test('sum, min, max, minBy, maxBy by field', async () => {
    interface R {
      k: string;
      a: number;
      b: number;
    }
    const rows: R[] = [
      { k: 'x', a: 3, b: 1 },
      { k: 'x', a: 1, b: 2 },
      { k: 'x', a: 5, b: 3 },
      { k: 'x', a: 1, b: 4 },
    ];
    const env = new StreamExecutionEnvironment();
    const s = TestStream.create<R>();
    for (const [i, r] of rows.entries()) s.addElement(r, i);
    const w = () =>
      fromTestStream(env, s)
        .keyBy((r) => r.k)
        .window(TumblingEventTimeWindows.of(10));
    const sum = w().sum('a').collect();
    const min = w().min('a').collect();
    const max = w().max('a').collect();
    const minBy = w().minBy('a').collect();
    const maxBy = w().maxBy('a').collect();
    await env.execute();
    const as = rows.map((r) => r.a);
    // sum/min/max: the first element with the field replaced; minBy/maxBy: the (first) extreme element.
    expect(sum.values).toEqual([{ ...rows[0], a: as.reduce((x, y) => x + y, 0) }]);
    expect(min.values).toEqual([{ ...rows[0], a: Math.min(...as) }]);
    expect(max.values).toEqual([{ ...rows[0], a: Math.max(...as) }]);
    expect(minBy.values).toEqual([rows[as.indexOf(Math.min(...as))]]);
    expect(maxBy.values).toEqual([rows[as.indexOf(Math.max(...as))]]);
  });

  test('a window function that throws fails the job naming the operator and the stage', async () => {
    const env = new StreamExecutionEnvironment();
    fromTestStream(env, counting(2))
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(10))
      .reduce(() => {
        throw new Error('boom');
      })
      .name('exploding')
      .collect();
    await expect(env.execute()).rejects.toThrow(/'exploding'.*reduce function threw.*boom/s);
  });
});

describe('windowAll', () => {
  test('a non-keyed window runs at parallelism 1 over all records (Flink: constant key, forceNonParallel)', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 4 });
    const items = Array.from({ length: 200 }, (_x, i) => i);
    const out = withTimestamps(
      env
        .fromArray(items, {
          parallel: true,
          watermarks: WatermarkStrategy.forBoundedOutOfOrderness<number>(0).withTimestampAssigner((v) => v),
        })
        .windowAll(TumblingEventTimeWindows.of(50))
        .process({
          process(
            ctx: ProcessWindowContext<TimeWindow>,
            els: Iterable<number>,
            o: Collector<[number, number]>,
          ) {
            o.collect([ctx.window.start, [...els].reduce((a, b) => a + b, 0)]);
          },
        })
        .name('all'),
    ).collect();
    const result = await env.execute();
    const expected = [0, 50, 100, 150].map((start) => [
      [start, items.filter((i) => i >= start && i < start + 50).reduce((a, b) => a + b, 0)],
      start + 49,
    ]);
    expect(sortedByJson(out.values)).toEqual(sortedByJson(expected));
    expect(result.metrics.operators.find((o) => o.operatorName === 'all')!.parallelism).toBe(1);
  });

  test('ProcessAllWindowFunction as a class: open() with the runtime context, process and clear', async () => {
    class Span extends ProcessAllWindowFunction<number, string, TimeWindow> {
      private subtasks = -1;
      override open(ctx: RuntimeContext): void {
        this.subtasks = ctx.taskInfo.parallelism;
      }
      process(
        ctx: ProcessAllWindowContext<TimeWindow>,
        elements: Iterable<number>,
        out: Collector<string>,
      ): void {
        const all = [...elements];
        out.collect(
          `[${ctx.window.start}, ${ctx.window.end}) ${Math.min(...all)}..${Math.max(...all)} p=${this.subtasks}`,
        );
      }
      override clear(ctx: ProcessAllWindowContext<TimeWindow>): void {
        ctx.output(cleaned, ctx.window.start);
      }
    }
    const cleaned = new OutputTag<number>('cleaned');
    const env = new StreamExecutionEnvironment({ parallelism: 3 });
    const windowed = env
      .fromArray(range(0, 29), {
        parallel: true,
        watermarks: WatermarkStrategy.forMonotonousTimestamps<number>().withTimestampAssigner((v) => v),
      })
      .windowAll(TumblingEventTimeWindows.of(10))
      .process(new Span());
    const out = windowed.collect();
    const side = windowed.getSideOutput(cleaned).collect();
    await env.execute();
    expect([...out.values].sort()).toEqual([
      '[0, 10) 0..9 p=1',
      '[10, 20) 10..19 p=1',
      '[20, 30) 20..29 p=1',
    ]);
    expect([...side.values].sort((a, b) => a - b)).toEqual([0, 10, 20]);
  });

  test('TimeEvictor after the function: the function sees everything, later fires only the recent part', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(
      env,
      counting(6, (i) => i * 10),
    )
      .keyBy((e) => e.key)
      .window(GlobalWindows.create())
      .trigger(CountTrigger.of(3))
      .evictor(TimeEvictor.of(15, true))
      .process(values)
      .collect();
    await env.execute();
    // Fire 1 sees ts 10, 20, 30, then keeps ts > 30 - 15 (20, 30); fire 2 sees 20..60.
    expect(out.values).toEqual([
      [1, 2, 3],
      [2, 3, 4, 5, 6],
    ]);
  });

  test('windowAll with GlobalWindows, a count trigger and reduce/aggregate/apply', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const all = () =>
      env
        .fromArray(range(1, 9))
        .windowAll(GlobalWindows.create())
        .trigger(PurgingTrigger.of(CountTrigger.of(3)));
    const reduced = all()
      .reduce((a, b) => a + b)
      .collect();
    const counted = all()
      .aggregate({
        createAccumulator: () => 0,
        add: (_v: number, n: number) => n + 1,
        getResult: (n: number) => n,
      })
      .collect();
    const applied = all()
      .apply<number>((_w, input, out) => out.collect(Math.max(...input)))
      .collect();
    await env.execute();
    // The window runs at parallelism 1; the collecting sinks (parallelism 2) may interleave.
    const asc = (xs: number[]) => [...xs].sort((a, b) => a - b);
    expect(asc(reduced.values)).toEqual([6, 15, 24]);
    expect(counted.values).toEqual([3, 3, 3]);
    expect(asc(applied.values)).toEqual([3, 6, 9]);
  });
});
