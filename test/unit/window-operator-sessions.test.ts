// Session windows through the operator harness, on the scenarios of Flink's WindowOperatorTest
// (testSessionWindows, testReduceSessionWindows, testSessionWindowsWithCountTrigger,
// testPointSessions): elements out of order, a snapshot restored mid-stream, merges that bridge
// sessions, a count trigger whose counts merge, and "point" windows [t, t) inside a session. The
// expected records (value and timestamp) are Flink's.
import {
  type Collector,
  CountTrigger,
  type DataStream,
  EventTimeSessionWindows,
  EventTimeTrigger,
  MergingWindowAssigner,
  type ProcessWindowContext,
  PurgingTrigger,
  TimeWindow,
  type Trigger,
} from 'tidemark';
import { type EmittedRecord, OperatorHarness, type OperatorSubtaskState } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

type Pair = [key: string, n: number];
type Result = [label: string, start: number, end: number];
type Step = ['el', Pair, number] | ['wm', number] | ['restore'];

/** Flink's SessionWindowFunction: `key-sum` with the window's bounds. */
const sessionFunction = {
  process(
    key: string,
    ctx: ProcessWindowContext<TimeWindow>,
    elements: Iterable<Pair>,
    out: Collector<Result>,
  ) {
    let sum = 0;
    for (const [, n] of elements) sum += n;
    out.collect([`${key}-${sum}`, ctx.window.start, ctx.window.end]);
  },
};

/** Flink's ReducedSessionWindowFunction: the same for a reduced pair. */
const reducedSessionFunction = {
  process(key: string, ctx: ProcessWindowContext<TimeWindow>, sums: Iterable<Pair>, out: Collector<Result>) {
    for (const [, n] of sums) out.collect([`${key}-${n}`, ctx.window.start, ctx.window.end]);
  },
};

/** Flink's PointSessionWindows: an element with n = 33 gets the point window [t, t). */
class PointSessionWindows extends MergingWindowAssigner<Pair, TimeWindow> {
  constructor(private readonly gap: number) {
    super();
  }
  assignWindows(element: Pair, timestamp: number): readonly TimeWindow[] {
    return [new TimeWindow(timestamp, element[1] === 33 ? timestamp : timestamp + this.gap)];
  }
  mergeWindows(windows: readonly TimeWindow[], merge: (w: TimeWindow[], r: TimeWindow) => void): void {
    TimeWindow.mergeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<Pair, TimeWindow> {
    return EventTimeTrigger.create();
  }
  isEventTime(): boolean {
    return true;
  }
}

/** Runs the steps, restoring from a structured clone of a snapshot at each 'restore'. */
function run(build: (s: DataStream<Pair>) => DataStream<Result>, steps: readonly Step[]) {
  let h = OperatorHarness.forOneInput<Pair, Result>(build);
  const records: EmittedRecord<Result>[] = [];
  for (const step of steps) {
    if (step[0] === 'el') h.processElement(step[1], step[2]);
    else if (step[0] === 'wm') h.processWatermark(step[1]);
    else {
      const snap = structuredClone(h.snapshot()) as OperatorSubtaskState;
      records.push(...h.records());
      h = OperatorHarness.forOneInput<Pair, Result>(build, { restoreFrom: [snap] });
    }
  }
  records.push(...h.records());
  return { records, timers: h.numEventTimeTimers() };
}

/** Keyed by the pair's key, in sessions of 3 s (Flink's SESSION_SIZE). */
const sessionsOf = (s: DataStream<Pair>) =>
  s.keyBy((p) => p[0]).window(EventTimeSessionWindows.withGap(3000));

const sorted = (rs: readonly { value: Result; timestamp: number | null }[]) =>
  rs.map((r) => JSON.stringify([r.value, r.timestamp])).sort();

const outOfOrder: Step[] = [
  ['el', ['key2', 1], 0],
  ['el', ['key2', 2], 1000],
  ['el', ['key2', 3], 2500],
  ['el', ['key1', 1], 10],
  ['el', ['key1', 2], 1000],
  ['restore'],
  ['el', ['key1', 3], 2500],
  ['el', ['key2', 4], 5501],
  ['el', ['key2', 5], 6000],
  ['el', ['key2', 5], 6000],
  ['el', ['key2', 6], 6050],
  ['wm', 12000],
  ['el', ['key2', 10], 15000],
  ['el', ['key2', 20], 15000],
  ['wm', 17999],
];

const flinkSessions: { value: Result; timestamp: number }[] = [
  { value: ['key1-6', 10, 5500], timestamp: 5499 },
  { value: ['key2-6', 0, 5500], timestamp: 5499 },
  { value: ['key2-20', 5501, 9050], timestamp: 9049 },
  { value: ['key2-30', 15000, 18000], timestamp: 17999 },
];

describe("session windows on Flink's WindowOperatorTest scenarios", () => {
  test('testSessionWindows: list contents, process function, restored mid-stream', () => {
    const { records, timers } = run((s) => sessionsOf(s).process(sessionFunction), outOfOrder);
    expect(sorted(records)).toEqual(sorted(flinkSessions));
    expect(timers).toBe(0);
  });

  test('testReduceSessionWindows: reduced contents merge with the reduce function', () => {
    const { records } = run(
      (s) => sessionsOf(s).reduce((a: Pair, b: Pair): Pair => [a[0], a[1] + b[1]], reducedSessionFunction),
      outOfOrder,
    );
    expect(sorted(records)).toEqual(sorted(flinkSessions));
  });

  test('testSessionWindowsWithCountTrigger: counts of merged sessions add up and fire', () => {
    const build = (s: DataStream<Pair>) =>
      sessionsOf(s)
        .trigger(PurgingTrigger.of(CountTrigger.of(4)))
        .process(sessionFunction);
    const first: Step[] = [
      ['el', ['key2', 1], 0],
      ['el', ['key2', 2], 1000],
      ['el', ['key2', 3], 2500],
      ['el', ['key2', 4], 3500],
      ['el', ['key1', 1], 10],
      ['el', ['key1', 2], 1000],
      ['restore'],
      ['el', ['key1', 3], 2500],
      ['el', ['key1', 1], 6000],
      ['el', ['key1', 2], 6500],
      ['el', ['key1', 3], 7000],
    ];
    expect(sorted(run(build, first).records)).toEqual(
      sorted([{ value: ['key2-10', 0, 6500], timestamp: 6499 }]),
    );
    // An element that merges the two key1 sessions: their counts add up to 7 >= 4, so it fires.
    const { records } = run(build, [...first, ['el', ['key1', 10], 4500]]);
    expect(sorted(records)).toEqual(
      sorted([
        { value: ['key2-10', 0, 6500], timestamp: 6499 },
        { value: ['key1-22', 10, 10000], timestamp: 9999 },
      ]),
    );
  });

  test('testPointSessions: point windows [t, t) merge into the sessions around them', () => {
    const { records, timers } = run(
      (s) =>
        s
          .keyBy((p) => p[0])
          .window(new PointSessionWindows(3000))
          .process(sessionFunction),
      [
        ['el', ['key2', 1], 0],
        ['el', ['key2', 33], 1000],
        ['restore'],
        ['el', ['key2', 33], 2500],
        ['el', ['key1', 1], 10],
        ['el', ['key1', 2], 1000],
        ['el', ['key1', 33], 2500],
        ['wm', 12000],
      ],
    );
    expect(sorted(records)).toEqual(
      sorted([
        { value: ['key1-36', 10, 4000], timestamp: 3999 },
        { value: ['key2-67', 0, 3000], timestamp: 2999 },
      ]),
    );
    expect(timers).toBe(0);
  });
});
