// Tests of Flink's WindowOperatorTest (flink-streaming-java, org.apache.flink.streaming.runtime.
// operators.windowing; Apache License 2.0), ported step for step to tidemark's operator harness:
// the same elements, watermarks, snapshots and restores, and the same expected output, compared as
// Flink's TestHarnessUtil.assertOutputEqualsSorted does. Flink's windows are 3 s; tidemark's
// durations are milliseconds, so `Time.seconds(3)` is 3000.
//
// Where Flink closes, restores and reopens the same harness object (its output queue survives),
// a port restores into a new harness and carries the output so far over (as Flink's newer tests
// do with `outputBeforeClose`).
import {
  type Collector,
  type DataStream,
  EventTimeSessionWindows,
  OutputTag,
  type ReduceFunction,
  SlidingEventTimeWindows,
  type TimeWindow,
  TumblingEventTimeWindows,
} from 'tidemark';
import { assertOutputEqualsSorted, type HarnessEvent, OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

type Tuple2 = [string, number];
type Tuple3 = [string, number, number];

/** Flink's SumReducer. */
const sumReducer: ReduceFunction<Tuple2> = (a, b) => [b[0], a[1] + b[1]];

/** Flink's Tuple2ResultSortComparator: by field 0, then field 1 (then timestamp). */
const tuple2Comparator = (a: Tuple2, b: Tuple2) => a[0].localeCompare(b[0]) || a[1] - b[1];
/** Flink's Tuple3ResultSortComparator: by field 0, then 1, then 2. */
const tuple3Comparator = (a: Tuple3, b: Tuple3) => a[0].localeCompare(b[0]) || a[1] - b[1] || a[2] - b[2];

const key = (t: Tuple2) => t[0];
const record = <T>(value: T, timestamp: number): HarnessEvent<T> => ({ record: value, timestamp });
const watermark = (t: number): HarnessEvent<never> => ({ watermark: t });

/** Counts close() calls of RichSumReducer, as Flink's test does. */
let closeCalled = 0;

/** Flink's RichSumReducer: a window function summing field 1, and counting its close() calls. */
class RichSumReducer {
  private openCalled = false;
  open() {
    this.openCalled = true;
  }
  close() {
    closeCalled++;
  }
  apply(k: string, _w: TimeWindow, input: Iterable<Tuple2>, out: Collector<Tuple2>) {
    if (!this.openCalled) throw new Error('Open was not called');
    let sum = 0;
    for (const t of input) sum += t[1];
    out.collect([k, sum]);
  }
}

/** Flink's SessionWindowFunction: `(key-sum, window start, window end)`. */
const sessionWindowFunction = (k: string, w: TimeWindow, input: Iterable<Tuple2>, out: Collector<Tuple3>) => {
  let sum = 0;
  for (const t of input) sum += t[1];
  out.collect([`${k}-${sum}`, w.start, w.end]);
};

/** Flink's testSlidingEventTimeWindows, on a harness built by `build`. */
function testSlidingEventTimeWindows(build: (s: DataStream<Tuple2>) => DataStream<Tuple2>) {
  let testHarness = OperatorHarness.forOneInput(build);
  const expectedOutput: HarnessEvent<Tuple2>[] = [];

  // add elements out-of-order
  testHarness.processElement(['key2', 1], 3999);
  testHarness.processElement(['key2', 1], 3000);

  testHarness.processElement(['key1', 1], 20);
  testHarness.processElement(['key1', 1], 0);
  testHarness.processElement(['key1', 1], 999);

  testHarness.processElement(['key2', 1], 1998);
  testHarness.processElement(['key2', 1], 1999);
  testHarness.processElement(['key2', 1], 1000);

  testHarness.processWatermark(999);
  expectedOutput.push(record(['key1', 3], 999));
  expectedOutput.push(watermark(999));
  assertOutputEqualsSorted(expectedOutput, testHarness.events(), tuple2Comparator);

  testHarness.processWatermark(1999);
  expectedOutput.push(record(['key1', 3], 1999));
  expectedOutput.push(record(['key2', 3], 1999));
  expectedOutput.push(watermark(1999));
  assertOutputEqualsSorted(expectedOutput, testHarness.events(), tuple2Comparator);

  testHarness.processWatermark(2999);
  expectedOutput.push(record(['key1', 3], 2999));
  expectedOutput.push(record(['key2', 3], 2999));
  expectedOutput.push(watermark(2999));
  assertOutputEqualsSorted(expectedOutput, testHarness.events(), tuple2Comparator);

  // do a snapshot, close and restore again
  const snapshot = testHarness.snapshot(0);
  const outputBeforeClose = testHarness.events();
  testHarness.close();
  testHarness = OperatorHarness.forOneInput(build, { restoreFrom: [snapshot] });
  const output = () => [...outputBeforeClose, ...testHarness.events()];

  testHarness.processWatermark(3999);
  expectedOutput.push(record(['key2', 5], 3999));
  expectedOutput.push(watermark(3999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  testHarness.processWatermark(4999);
  expectedOutput.push(record(['key2', 2], 4999));
  expectedOutput.push(watermark(4999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  testHarness.processWatermark(5999);
  expectedOutput.push(record(['key2', 2], 5999));
  expectedOutput.push(watermark(5999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  // those don't have any effect...
  testHarness.processWatermark(6999);
  testHarness.processWatermark(7999);
  expectedOutput.push(watermark(6999));
  expectedOutput.push(watermark(7999));

  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);
  testHarness.close();
}

/** Flink's testTumblingEventTimeWindows. */
function testTumblingEventTimeWindows(build: (s: DataStream<Tuple2>) => DataStream<Tuple2>) {
  let testHarness = OperatorHarness.forOneInput(build);
  const expectedOutput: HarnessEvent<Tuple2>[] = [];

  // add elements out-of-order
  testHarness.processElement(['key2', 1], 3999);
  testHarness.processElement(['key2', 1], 3000);

  testHarness.processElement(['key1', 1], 20);
  testHarness.processElement(['key1', 1], 0);
  testHarness.processElement(['key1', 1], 999);

  testHarness.processElement(['key2', 1], 1998);
  testHarness.processElement(['key2', 1], 1999);
  testHarness.processElement(['key2', 1], 1000);

  testHarness.processWatermark(999);
  expectedOutput.push(watermark(999));
  assertOutputEqualsSorted(expectedOutput, testHarness.events(), tuple2Comparator);

  testHarness.processWatermark(1999);
  expectedOutput.push(watermark(1999));
  assertOutputEqualsSorted(expectedOutput, testHarness.events(), tuple2Comparator);

  // do a snapshot, close and restore again
  const snapshot = testHarness.snapshot(0);
  const outputBeforeClose = testHarness.events();
  testHarness.close();
  testHarness = OperatorHarness.forOneInput(build, { restoreFrom: [snapshot] });
  const output = () => [...outputBeforeClose, ...testHarness.events()];

  testHarness.processWatermark(2999);
  expectedOutput.push(record(['key1', 3], 2999));
  expectedOutput.push(record(['key2', 3], 2999));
  expectedOutput.push(watermark(2999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  testHarness.processWatermark(3999);
  expectedOutput.push(watermark(3999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  testHarness.processWatermark(4999);
  expectedOutput.push(watermark(4999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  testHarness.processWatermark(5999);
  expectedOutput.push(record(['key2', 2], 5999));
  expectedOutput.push(watermark(5999));
  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);

  // those don't have any effect...
  testHarness.processWatermark(6999);
  testHarness.processWatermark(7999);
  expectedOutput.push(watermark(6999));
  expectedOutput.push(watermark(7999));

  assertOutputEqualsSorted(expectedOutput, output(), tuple2Comparator);
  testHarness.close();
}

describe("Flink's WindowOperatorTest, ported", () => {
  test('testSlidingEventTimeWindowsReduce', () => {
    closeCalled = 0;
    const WINDOW_SIZE = 3000;
    const WINDOW_SLIDE = 1000;
    testSlidingEventTimeWindows((s) =>
      s.keyBy(key).window(SlidingEventTimeWindows.of(WINDOW_SIZE, WINDOW_SLIDE)).reduce(sumReducer),
    );
  });

  test('testSlidingEventTimeWindowsApply', () => {
    closeCalled = 0;
    const WINDOW_SIZE = 3000;
    const WINDOW_SLIDE = 1000;
    testSlidingEventTimeWindows((s) =>
      s.keyBy(key).window(SlidingEventTimeWindows.of(WINDOW_SIZE, WINDOW_SLIDE)).apply(new RichSumReducer()),
    );
    // we close once in the rest...
    expect(closeCalled).toBe(2);
  });

  test('testTumblingEventTimeWindowsReduce', () => {
    closeCalled = 0;
    const WINDOW_SIZE = 3000;
    testTumblingEventTimeWindows((s) =>
      s.keyBy(key).window(TumblingEventTimeWindows.of(WINDOW_SIZE)).reduce(sumReducer),
    );
  });

  test('testTumblingEventTimeWindowsApply', () => {
    closeCalled = 0;
    const WINDOW_SIZE = 3000;
    testTumblingEventTimeWindows((s) =>
      s.keyBy(key).window(TumblingEventTimeWindows.of(WINDOW_SIZE)).apply(new RichSumReducer()),
    );
    // we close once in the rest...
    expect(closeCalled).toBe(2);
  });

  test('testSessionWindows', () => {
    closeCalled = 0;
    const SESSION_SIZE = 3000;
    const build = (s: DataStream<Tuple2>) =>
      s.keyBy(key).window(EventTimeSessionWindows.withGap(SESSION_SIZE)).apply(sessionWindowFunction);
    let testHarness = OperatorHarness.forOneInput(build);
    const expectedOutput: HarnessEvent<Tuple3>[] = [];

    // add elements out-of-order
    testHarness.processElement(['key2', 1], 0);
    testHarness.processElement(['key2', 2], 1000);
    testHarness.processElement(['key2', 3], 2500);

    testHarness.processElement(['key1', 1], 10);
    testHarness.processElement(['key1', 2], 1000);

    // do a snapshot, close and restore again
    const snapshot = testHarness.snapshot(0);
    testHarness.close();
    testHarness = OperatorHarness.forOneInput(build, { restoreFrom: [snapshot] });

    testHarness.processElement(['key1', 3], 2500);

    testHarness.processElement(['key2', 4], 5501);
    testHarness.processElement(['key2', 5], 6000);
    testHarness.processElement(['key2', 5], 6000);
    testHarness.processElement(['key2', 6], 6050);

    testHarness.processWatermark(12000);

    expectedOutput.push(record(['key1-6', 10, 5500], 5499));
    expectedOutput.push(record(['key2-6', 0, 5500], 5499));

    expectedOutput.push(record(['key2-20', 5501, 9050], 9049));
    expectedOutput.push(watermark(12000));

    testHarness.processElement(['key2', 10], 15000);
    testHarness.processElement(['key2', 20], 15000);

    testHarness.processWatermark(17999);

    expectedOutput.push(record(['key2-30', 15000, 18000], 17999));
    expectedOutput.push(watermark(17999));

    assertOutputEqualsSorted(expectedOutput, testHarness.events(), tuple3Comparator);
    testHarness.close();
  });

  test('testSideOutputDueToLatenessSliding', () => {
    const lateOutputTag = new OutputTag<Tuple2>('late');
    const windowSize = 3000;
    const windowSlide = 1000;
    const lateness = 0;
    const testHarness = OperatorHarness.forOneInput((s: DataStream<Tuple2>) =>
      s
        .keyBy(key)
        .window(SlidingEventTimeWindows.of(windowSize, windowSlide))
        .allowedLateness(lateness)
        .sideOutputLateData(lateOutputTag)
        .reduce(sumReducer),
    );
    const expected: HarnessEvent<Tuple2>[] = [];
    const sideExpected: HarnessEvent<Tuple2>[] = [];

    testHarness.processElement(['key2', 1], 1000);
    testHarness.processWatermark(1999);

    expected.push(record(['key2', 1], 1999));
    expected.push(watermark(1999));

    testHarness.processElement(['key2', 1], 2000);
    testHarness.processWatermark(3000);

    expected.push(record(['key2', 2], 2999));
    expected.push(watermark(3000));

    testHarness.processElement(['key1', 1], 3001);

    // lateness is set to 0 and window size = 3 sec and slide 1, the following 2 elements (2400)
    // are assigned to windows ending at 2999, 3999, 4999.
    // The 2999 is dropped because it is already late (WM = 2999) but the rest are kept.

    testHarness.processElement(['key2', 1], 2400);
    testHarness.processElement(['key2', 1], 2400);
    testHarness.processElement(['key1', 1], 3001);
    testHarness.processElement(['key2', 1], 3900);
    testHarness.processWatermark(6000);

    expected.push(record(['key2', 5], 3999));
    expected.push(record(['key1', 2], 3999));

    expected.push(record(['key2', 4], 4999));
    expected.push(record(['key1', 2], 4999));

    expected.push(record(['key2', 1], 5999));
    expected.push(record(['key1', 2], 5999));

    expected.push(watermark(6000));

    // sideoutput element due to lateness
    testHarness.processElement(['key1', 1], 3001);
    sideExpected.push(record(['key1', 1], 3001));

    testHarness.processWatermark(25000);

    expected.push(watermark(25000));

    assertOutputEqualsSorted(expected, testHarness.events(), tuple2Comparator);
    assertOutputEqualsSorted(
      sideExpected,
      testHarness.sideOutputRecords(lateOutputTag).map((r) => record(r.value, r.timestamp!)),
      tuple2Comparator,
    );
    testHarness.close();
  });

  test('testSideOutputDueToLatenessSessionZeroLateness', () => {
    const lateOutputTag = new OutputTag<Tuple2>('late');
    const gapSize = 3000;
    const lateness = 0;
    /** Flink's ReducedSessionWindowFunction. */
    const reducedSessionWindowFunction = (
      k: string,
      w: TimeWindow,
      input: Iterable<Tuple2>,
      out: Collector<Tuple3>,
    ) => {
      for (const t of input) out.collect([`${k}-${t[1]}`, w.start, w.end]);
    };
    const testHarness = OperatorHarness.forOneInput((s: DataStream<Tuple2>) =>
      s
        .keyBy(key)
        .window(EventTimeSessionWindows.withGap(gapSize))
        .allowedLateness(lateness)
        .sideOutputLateData(lateOutputTag)
        .reduce(sumReducer, reducedSessionWindowFunction),
    );
    const expected: HarnessEvent<Tuple3>[] = [];
    const sideExpected: HarnessEvent<Tuple2>[] = [];

    testHarness.processElement(['key2', 1], 1000);
    testHarness.processWatermark(1999);

    expected.push(watermark(1999));

    testHarness.processElement(['key2', 1], 2000);
    testHarness.processWatermark(4998);

    expected.push(watermark(4998));

    // this will not be dropped because the session we're adding two has maxTimestamp
    // after the current watermark
    testHarness.processElement(['key2', 1], 4500);

    // new session
    testHarness.processElement(['key2', 1], 8500);
    testHarness.processWatermark(7400);

    expected.push(watermark(7400));

    // this will merge the two sessions into one
    testHarness.processElement(['key2', 1], 7000);
    testHarness.processWatermark(11501);

    expected.push(record(['key2-5', 1000, 11500], 11499));
    expected.push(watermark(11501));

    // new session
    testHarness.processElement(['key2', 1], 11600);
    testHarness.processWatermark(14600);

    expected.push(record(['key2-1', 11600, 14600], 14599));
    expected.push(watermark(14600));

    // this is sideoutput as late, reuse last timestamp
    testHarness.processElement(['key2', 1], 10000);
    sideExpected.push(record(['key2', 1], 10000));

    testHarness.processElement(['key2', 1], 14500);
    testHarness.processWatermark(20000);

    expected.push(record(['key2-1', 14500, 17500], 17499));
    expected.push(watermark(20000));

    testHarness.processWatermark(100000);
    expected.push(watermark(100000));

    assertOutputEqualsSorted(expected, testHarness.events(), tuple3Comparator);
    assertOutputEqualsSorted(
      sideExpected,
      testHarness.sideOutputRecords(lateOutputTag).map((r) => record(r.value, r.timestamp!)),
      tuple2Comparator,
    );
    testHarness.close();
  });
});
