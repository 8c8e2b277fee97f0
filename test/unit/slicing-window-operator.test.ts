// The sliced window aggregation on the operator harness: its state is one accumulator per key and
// slice and its timers one per key and window end, it clears both after cleanup, the harness reads
// its windows, a snapshot restores at another parallelism, and a checkpoint of the window
// operator (an earlier version's layout) is refused with an error that names the way out.
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  SlidingEventTimeWindows,
  TimeWindow,
  TumblingEventTimeWindows,
} from 'tidemark';
import { OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

interface Ev {
  key: string;
  v: number;
}

const sum: AggregateFunction<Ev, number, number> = {
  createAccumulator: () => 0,
  add: (e, n) => n + e.v,
  getResult: (n) => n,
  merge: (a, b) => a + b,
};

const sliding =
  (sliced: boolean, lateness = 0) =>
  (s: DataStream<Ev>): DataStream<string> => {
    const w = s
      .keyBy((e) => e.key)
      .window(SlidingEventTimeWindows.of(10, 2))
      .allowedLateness(lateness);
    return (sliced ? w : w.disableSlicing()).aggregate(
      sum,
      (key: string, win: TimeWindow, xs: Iterable<number>, out: Collector<string>) => {
        for (const x of xs) out.collect(`${key} [${win.start}, ${win.end}) ${x}`);
      },
    );
  };

describe('sliced window aggregation', () => {
  test('one accumulator per key and slice, a timer per key and new slice; nothing left after cleanup', () => {
    const h = OperatorHarness.forOneInput<Ev, string>(sliding(true));
    h.processElement({ key: 'a', v: 1 }, 1);
    h.processElement({ key: 'a', v: 2 }, 1);
    h.processElement({ key: 'a', v: 4 }, 5);
    h.processElement({ key: 'b', v: 8 }, 3);
    // a: slices [0, 2) and [4, 6); b: [2, 4). Windows ending 2..14 (a) and 4..12 (b).
    expect(h.keys('slice-contents').sort()).toEqual(['a', 'b']);
    // One timer per new slice of a key, at its first window's end (the window operator: 7 + 5).
    expect(h.timers().map((t) => [t.key, t.timestamp])).toEqual([
      ['a', 1],
      ['b', 3],
      ['a', 5],
    ]);
    expect(h.windows('a')).toEqual([2, 4, 6, 8, 10, 12, 14].map((e) => new TimeWindow(e - 10, e)));
    expect(h.windowContents('a', new TimeWindow(-4, 6))).toBe(7);
    expect(h.windowContents('a', new TimeWindow(0, 10))).toBe(7);
    expect(h.windowContents('a', new TimeWindow(2, 12))).toBe(4);
    expect(h.windowContents('a', new TimeWindow(1, 11))).toBeUndefined();
    h.processWatermark(5);
    // Key by key (the window operator: window by window), each key's in order.
    expect(h.output()).toEqual(['a [-8, 2) 3', 'a [-6, 4) 3', 'a [-4, 6) 7', 'b [-6, 4) 8', 'b [-4, 6) 8']);
    // One timer per key for its next window end.
    expect(h.timers().map((t) => [t.key, t.timestamp])).toEqual([
      ['a', 7],
      ['b', 7],
    ]);
    h.processWatermark(100);
    expect(h.numEventTimeTimers()).toBe(0);
    expect(h.keys('slice-contents')).toEqual([]);
  });

  test('a snapshot restores at another parallelism and gives what an uninterrupted run gives', () => {
    const steps = (h: OperatorHarness<Ev, string>, from: number, to: number) => {
      const all: [string, number, number][] = [
        ['a', 1, 1],
        ['b', 2, 3],
        ['a', 3, 7],
        ['c', 4, 9],
        ['a', 5, 12],
        ['b', 6, 4],
        ['c', 7, 15],
        ['a', 8, 2],
      ];
      for (let i = from; i < to; i++) {
        const [key, v, ts] = all[i]!;
        h.processElement({ key, v }, ts);
        if (i === 3) h.processWatermark(6);
      }
    };
    const whole = OperatorHarness.forOneInput<Ev, string>(sliding(true, 3));
    steps(whole, 0, 8);
    whole.processWatermark(100);
    const expected = whole.output().sort();
    for (const parallelism of [1, 2, 3]) {
      const first = OperatorHarness.forOneInput<Ev, string>(sliding(true, 3));
      steps(first, 0, 5);
      const snap = first.snapshot();
      const out = first.output();
      for (let i = 0; i < parallelism; i++) {
        const h = OperatorHarness.forOneInput<Ev, string>(sliding(true, 3), {
          restoreFrom: [snap],
          parallelism,
          subtaskIndex: i,
        });
        h.processWatermark(6);
        // Only the keys this subtask owns.
        for (const [key, v, ts] of [
          ['b', 6, 4],
          ['c', 7, 15],
          ['a', 8, 2],
        ] as const)
          if (h.ownsKey(key)) h.processElement({ key, v }, ts);
        h.processWatermark(100);
        out.push(...h.output());
      }
      expect(out.sort()).toEqual(expected);
    }
  });

  test("a checkpoint of the window operator's layout is refused, and restores with disableSlicing()", () => {
    const old = OperatorHarness.forOneInput<Ev, string>(sliding(false));
    old.processElement({ key: 'a', v: 1 }, 1);
    const snap = old.snapshot();
    expect(() => OperatorHarness.forOneInput<Ev, string>(sliding(true), { restoreFrom: [snap] })).toThrow(
      /window-contents.*disableSlicing\(\)/,
    );
    const h = OperatorHarness.forOneInput<Ev, string>(sliding(false), { restoreFrom: [snap] });
    h.processWatermark(1);
    expect(h.output()).toEqual(['a [-8, 2) 1']);
  });

  test('and the other way: a checkpoint of sliced windows is refused by the window operator', () => {
    const sliced = OperatorHarness.forOneInput<Ev, string>(sliding(true));
    sliced.processElement({ key: 'a', v: 1 }, 1);
    const snap = sliced.snapshot();
    expect(() => OperatorHarness.forOneInput<Ev, string>(sliding(false), { restoreFrom: [snap] })).toThrow(
      /slice-contents.*without disableSlicing\(\) or preAggregate\(\)/,
    );
    const h = OperatorHarness.forOneInput<Ev, string>(sliding(true), { restoreFrom: [snap] });
    h.processWatermark(1);
    expect(h.output()).toEqual(['a [-8, 2) 1']);
  });

  test("reading a key's windows in the harness leaves the next key's late firing alone", () => {
    const h = OperatorHarness.forOneInput<Ev, string>(sliding(true, 5));
    h.processElement({ key: 'a', v: 1 }, 1);
    h.processElement({ key: 'b', v: 10 }, 1);
    h.processWatermark(2);
    h.clearOutput();
    expect(h.windows('a').length).toBeGreaterThan(0);
    // Late but allowed: re-fires b's window [-8, 2), with b's contents.
    h.processElement({ key: 'b', v: 100 }, 0);
    expect(h.output()).toEqual(['b [-8, 2) 110']);
  });

  test('tumbling windows: the slice is the window', () => {
    const h = OperatorHarness.forOneInput<Ev, number>((s) =>
      s
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(10, 3))
        .aggregate(sum),
    );
    h.processElement({ key: 'a', v: 1 }, -7);
    h.processElement({ key: 'a', v: 2 }, 2);
    h.processElement({ key: 'a', v: 4 }, 3);
    expect(h.numEventTimeTimers()).toBe(2);
    h.processWatermark(Number.POSITIVE_INFINITY);
    expect(h.events()).toEqual([
      { record: 3, timestamp: 2 },
      { record: 4, timestamp: 12 },
      { watermark: Number.POSITIVE_INFINITY },
    ]);
  });
});
