// The window operator driven by the operator harness: its state and timers are cleaned up at
// cleanup time (no leak), and its state (contents, merging window set, trigger state, timers) is
// snapshotted and restored, also at another parallelism and through a structured clone (windows
// come back as plain data, as after a real serialization).
import {
  type AggregateFunction,
  type Collector,
  CountTrigger,
  type DataStream,
  EventTimeSessionWindows,
  type ProcessWindowContext,
  SlidingEventTimeWindows,
  type TimeWindow,
  TumblingEventTimeWindows,
} from 'tidemark';
import { OperatorHarness, type OperatorSubtaskState } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

interface Ev {
  key: string;
  v: number;
}
const ev = (key: string, v: number): Ev => ({ key, v });

const sum: AggregateFunction<Ev, number, number> = {
  createAccumulator: () => 0,
  add: (e, n) => n + e.v,
  getResult: (n) => n,
  merge: (a, b) => a + b,
};

type Step = ['el', Ev, number] | ['wm', number];

const sessionJob = (s: DataStream<Ev>) =>
  s
    .keyBy((e) => e.key)
    .window(EventTimeSessionWindows.withGap(10))
    .trigger(CountTrigger.of(3))
    .aggregate(sum, {
      process(
        key: string,
        ctx: ProcessWindowContext<TimeWindow>,
        elements: Iterable<number>,
        out: Collector<string>,
      ) {
        for (const n of elements) out.collect(`${key} [${ctx.window.start}, ${ctx.window.end}) ${n}`);
      },
    });

function drive(h: OperatorHarness<Ev, string>, steps: readonly Step[]): void {
  for (const s of steps) {
    if (s[0] === 'el') {
      if (h.ownsElement(s[1])) h.processElement(s[1], s[2]);
    } else h.processWatermark(s[1]);
  }
}

const steps: Step[] = [
  ['el', ev('a', 1), 0],
  ['el', ev('b', 1), 100],
  ['el', ev('a', 2), 30],
  ['el', ev('c', 7), 5],
  ['wm', 3],
  ['el', ev('b', 2), 104],
  // --- snapshot here ---
  ['el', ev('a', 4), 15], // [15, 25): touches neither [0, 10) nor [30, 40)
  ['el', ev('a', 8), 22], // [22, 32) bridges [15, 25) and [30, 40): counts merge, 1 + 1 + 1 = 3: fires 14
  ['el', ev('b', 4), 90], // [90, 100) touches [100, 114): 3 elements: fires 7
  ['wm', 200],
];
const cut = 6;

describe('window operator state', () => {
  test('after cleanup no window state, merging window set or timer is left (Flink clears all state)', () => {
    const slidingOn = (s: DataStream<Ev>, sliced: boolean) => {
      const w = s
        .keyBy((e) => e.key)
        .window(SlidingEventTimeWindows.of(20, 5))
        .allowedLateness(7);
      return (sliced ? w : w.disableSlicing()).aggregate(sum, {
        process(
          key: string,
          ctx: ProcessWindowContext<TimeWindow>,
          elements: Iterable<number>,
          out: Collector<string>,
        ) {
          for (const n of elements) out.collect(`${key} ${ctx.window.start} ${n}`);
        },
      });
    };
    const sliding = (s: DataStream<Ev>) => slidingOn(s, true);
    const slidingUnsliced = (s: DataStream<Ev>) => slidingOn(s, false);
    for (const build of [sessionJob, sliding, slidingUnsliced]) {
      const h = OperatorHarness.forOneInput<Ev, string>(build);
      drive(h, steps);
      expect(h.output().length).toBeGreaterThan(0);
      expect(h.numEventTimeTimers()).toBe(0);
      expect(h.keys('window-contents')).toEqual([]);
      expect(h.keys('slice-contents')).toEqual([]);
      expect(h.keys('merging-window-set')).toEqual([]);
      expect(h.keys('count')).toEqual([]);
    }
  });

  test('a snapshot taken mid-stream restores contents, merged windows, trigger state and timers', () => {
    const whole = OperatorHarness.forOneInput<Ev, string>(sessionJob);
    drive(whole, steps);
    const expected = whole.output();
    expect(expected.sort()).toEqual(['a [15, 40) 14', 'b [90, 114) 7']);

    for (const parallelism of [1, 2, 3]) {
      // Before the cut: one subtask at parallelism 1; after: `parallelism` subtasks from a clone.
      const first = OperatorHarness.forOneInput<Ev, string>(sessionJob);
      drive(first, steps.slice(0, cut));
      const outputBefore = first.output();
      // A structured clone: windows lose their class, as after serialization.
      const snap = structuredClone(first.snapshot()) as OperatorSubtaskState;
      const outputAfter: string[] = [];
      for (let i = 0; i < parallelism; i++) {
        const h = OperatorHarness.forOneInput<Ev, string>(sessionJob, {
          restoreFrom: [snap],
          parallelism,
          subtaskIndex: i,
        });
        drive(h, steps.slice(cut));
        outputAfter.push(...h.output());
      }
      expect([...outputBefore, ...outputAfter].sort()).toEqual([...expected].sort());
    }
  });

  test('tumbling windows: timers of a restored snapshot fire the restored contents', () => {
    const build = (s: DataStream<Ev>) =>
      s
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10))
        .aggregate(sum);
    const h = OperatorHarness.forOneInput<Ev, number>(build);
    h.processElement(ev('a', 5), 3).processElement(ev('a', 6), 7).processElement(ev('b', 1), 12);
    const snap = structuredClone(h.snapshot()) as OperatorSubtaskState;
    const r = OperatorHarness.forOneInput<Ev, number>(build, { restoreFrom: [snap] });
    expect(r.numEventTimeTimers()).toBe(2);
    r.processElement(ev('a', 100), 9).processWatermark(9);
    expect(r.records()).toEqual([{ value: 111, timestamp: 9 }]);
    r.processWatermark(19);
    expect(r.output()).toEqual([111, 1]);
  });

  test('a snapshot of list contents (process window function) is not changed by later elements', () => {
    const build = (s: DataStream<Ev>) =>
      s
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10))
        .process({
          process(_k: string, _c: unknown, elements: Iterable<Ev>, out: Collector<number[]>) {
            out.collect([...elements].map((e) => e.v));
          },
        });
    const h = OperatorHarness.forOneInput<Ev, number[]>(build);
    h.processElement(ev('a', 1), 1).processElement(ev('a', 2), 2);
    const snap = h.snapshot();
    h.processElement(ev('a', 3), 3).processWatermark(9);
    expect(h.output()).toEqual([[1, 2, 3]]);
    const r = OperatorHarness.forOneInput<Ev, number[]>(build, { restoreFrom: [snap] });
    r.processWatermark(9);
    expect(r.output()).toEqual([[1, 2]]);
  });
});
