// Flink's KeyedProcessOperatorTest (flink-streaming-java, org.apache.flink.streaming.api.operators;
// Apache License 2.0), ported test for test to tidemark's operator harness. Flink's
// `new KeyedOneInputStreamOperatorTestHarness(new KeyedProcessOperator(f), keySelector, type)` is
// `OperatorHarness.forOneInput((s) => s.keyBy(keySelector).process(f))`; `getOutput()` is
// `events()`: records as `{ record, timestamp }` (a timestamp of `null` where Flink's record has
// none), watermarks as `{ watermark }`.
import {
  type Collector,
  type DataStream,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  OutputTag,
  type RuntimeContext,
  type TimeDomain,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { type HarnessEvent, OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

const EVENT_TIME: TimeDomain = 'EVENT_TIME';
const PROCESSING_TIME: TimeDomain = 'PROCESSING_TIME';

/** Flink's KeyedOneInputStreamOperatorTestHarness with an IdentityKeySelector. */
function keyedHarness<O>(f: KeyedProcessFunction<number, number, O>, options = {}) {
  return OperatorHarness.forOneInput((s: DataStream<number>) => s.keyBy((x) => x).process(f), options);
}

class QueryingFlatMapFunction extends KeyedProcessFunction<number, number, string> {
  constructor(private readonly expectedTimeDomain: TimeDomain) {
    super();
  }
  processElement(value: number, ctx: KeyedProcessContext<number>, out: Collector<string>): void {
    if (this.expectedTimeDomain === EVENT_TIME) {
      out.collect(`${value}TIME:${ctx.timerService().currentWatermark()} TS:${ctx.timestamp()}`);
    } else {
      out.collect(`${value}TIME:${ctx.timerService().currentProcessingTime()} TS:${ctx.timestamp()}`);
    }
  }
  override onTimer(): void {
    // Do nothing
  }
}

class TriggeringFlatMapFunction extends KeyedProcessFunction<number, number, number> {
  constructor(
    private readonly expectedTimeDomain: TimeDomain,
    private readonly expectedKey: number,
  ) {
    super();
  }
  processElement(value: number, ctx: KeyedProcessContext<number>, out: Collector<number>): void {
    out.collect(value);
    if (this.expectedTimeDomain === EVENT_TIME) {
      ctx.timerService().registerEventTimeTimer(ctx.timerService().currentWatermark() + 5);
    } else {
      ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + 5);
    }
  }
  override onTimer(_timestamp: number, ctx: OnTimerContext<number>, out: Collector<number>): void {
    expect(ctx.getCurrentKey()).toBe(this.expectedKey);
    expect(ctx.timeDomain()).toBe(this.expectedTimeDomain);
    out.collect(1777);
  }
}

class TriggeringStatefulFlatMapFunction extends KeyedProcessFunction<number, number, string> {
  static readonly state = new ValueStateDescriptor<number>('seen-element');
  private state!: ValueState<number>;
  constructor(private readonly expectedTimeDomain: TimeDomain) {
    super();
  }
  override open(ctx: RuntimeContext): void {
    this.state = ctx.getState(TriggeringStatefulFlatMapFunction.state);
  }
  processElement(value: number, ctx: KeyedProcessContext<number>, out: Collector<string>): void {
    const timerService = ctx.timerService();
    if (this.state.value() === undefined) {
      out.collect(`INPUT:${value}`);
      this.state.update(value);
      if (this.expectedTimeDomain === EVENT_TIME) {
        timerService.registerEventTimeTimer(timerService.currentWatermark() + 5);
      } else {
        timerService.registerProcessingTimeTimer(timerService.currentProcessingTime() + 5);
      }
    } else {
      this.state.clear();
      if (this.expectedTimeDomain === EVENT_TIME) {
        timerService.deleteEventTimeTimer(timerService.currentWatermark() + 4);
      } else {
        timerService.deleteProcessingTimeTimer(timerService.currentProcessingTime() + 4);
      }
    }
  }
  override onTimer(_timestamp: number, ctx: OnTimerContext<number>, out: Collector<string>): void {
    expect(ctx.timeDomain()).toBe(this.expectedTimeDomain);
    out.collect(`STATE:${this.state.value()}`);
  }
}

class BothTriggeringFlatMapFunction extends KeyedProcessFunction<number, number, string> {
  constructor(private readonly expectedKey: number) {
    super();
  }
  processElement(_value: number, ctx: KeyedProcessContext<number>): void {
    const timerService = ctx.timerService();
    timerService.registerProcessingTimeTimer(3);
    timerService.registerEventTimeTimer(4);
    timerService.registerProcessingTimeTimer(5);
    timerService.registerEventTimeTimer(6);
    timerService.deleteProcessingTimeTimer(3);
    timerService.deleteEventTimeTimer(4);
  }
  override onTimer(_timestamp: number, ctx: OnTimerContext<number>, out: Collector<string>): void {
    expect(ctx.getCurrentKey()).toBe(this.expectedKey);
    if (ctx.timeDomain() === EVENT_TIME) out.collect('EVENT:1777');
    else out.collect('PROC:1777');
  }
}

const INTEGER_OUTPUT_TAG = new OutputTag<number>('int-out');
const LONG_OUTPUT_TAG = new OutputTag<bigint>('long-out');

class SideOutputProcessFunction extends KeyedProcessFunction<number, number, string> {
  processElement(value: number, ctx: KeyedProcessContext<number>, out: Collector<string>): void {
    out.collect(`IN:${value}`);
    ctx.output(INTEGER_OUTPUT_TAG, value);
    ctx.output(LONG_OUTPUT_TAG, BigInt(value));
  }
}

describe("Flink's KeyedProcessOperatorTest, ported", () => {
  test('testKeyQuerying', () => {
    class KeyQueryingProcessFunction extends KeyedProcessFunction<number, [number, string], string> {
      processElement(value: [number, string], ctx: KeyedProcessContext<number>, out: Collector<string>) {
        expect(ctx.getCurrentKey()).toBe(value[0]);
        // we check that we receive this output, to ensure that the assert was actually checked
        out.collect(value[1]);
      }
    }
    const testHarness = OperatorHarness.forOneInput((s: DataStream<[number, string]>) =>
      s.keyBy((input) => input[0]).process(new KeyQueryingProcessFunction()),
    );

    testHarness.processElement([5, '5'], 12);
    testHarness.processElement([42, '42'], 13);

    const expectedOutput: HarnessEvent<string>[] = [];
    expectedOutput.push({ record: '5', timestamp: 12 });
    expectedOutput.push({ record: '42', timestamp: 13 });

    expect(testHarness.events()).toEqual(expectedOutput);
  });

  test('testTimestampAndWatermarkQuerying', () => {
    const testHarness = keyedHarness(new QueryingFlatMapFunction(EVENT_TIME));

    testHarness.processWatermark(17);
    testHarness.processElement(5, 12);

    testHarness.processWatermark(42);
    testHarness.processElement(6, 13);

    const expectedOutput: HarnessEvent<string>[] = [];
    expectedOutput.push({ watermark: 17 });
    expectedOutput.push({ record: '5TIME:17 TS:12', timestamp: 12 });
    expectedOutput.push({ watermark: 42 });
    expectedOutput.push({ record: '6TIME:42 TS:13', timestamp: 13 });

    expect(testHarness.events()).toEqual(expectedOutput);
    testHarness.close();
  });

  test('testTimestampAndProcessingTimeQuerying', () => {
    const testHarness = keyedHarness(new QueryingFlatMapFunction(PROCESSING_TIME));

    testHarness.setProcessingTime(17);
    testHarness.processElement(5);

    testHarness.setProcessingTime(42);
    testHarness.processElement(6);

    const expectedOutput: HarnessEvent<string>[] = [];
    expectedOutput.push({ record: '5TIME:17 TS:null', timestamp: null });
    expectedOutput.push({ record: '6TIME:42 TS:null', timestamp: null });

    expect(testHarness.events()).toEqual(expectedOutput);
    testHarness.close();
  });

  test('testEventTimeTimers', () => {
    const expectedKey = 17;
    const testHarness = keyedHarness(new TriggeringFlatMapFunction(EVENT_TIME, expectedKey));

    testHarness.processWatermark(0);

    testHarness.processElement(expectedKey, 42);

    testHarness.processWatermark(5);

    const expectedOutput: HarnessEvent<number>[] = [];
    expectedOutput.push({ watermark: 0 });
    expectedOutput.push({ record: expectedKey, timestamp: 42 });
    expectedOutput.push({ record: 1777, timestamp: 5 });
    expectedOutput.push({ watermark: 5 });

    expect(testHarness.events()).toEqual(expectedOutput);
    testHarness.close();
  });

  test('testProcessingTimeTimers', () => {
    const expectedKey = 17;
    const testHarness = keyedHarness(new TriggeringFlatMapFunction(PROCESSING_TIME, expectedKey));

    testHarness.processElement(expectedKey);

    testHarness.setProcessingTime(5);

    const expectedOutput: HarnessEvent<number>[] = [];
    expectedOutput.push({ record: expectedKey, timestamp: null });
    expectedOutput.push({ record: 1777, timestamp: null });

    expect(testHarness.events()).toEqual(expectedOutput);
    testHarness.close();
  });

  /** Verifies that we don't have leakage between different keys. */
  test('testEventTimeTimerWithState', () => {
    const testHarness = keyedHarness(new TriggeringStatefulFlatMapFunction(EVENT_TIME));

    testHarness.processWatermark(1);
    testHarness.processElement(17, 0); // should set timer for 6
    testHarness.processElement(13, 0); // should set timer for 6

    testHarness.processWatermark(2);
    testHarness.processElement(42, 1); // should set timer for 7
    testHarness.processElement(13, 1); // should delete timer

    testHarness.processWatermark(6);
    testHarness.processWatermark(7);

    const expectedOutput: HarnessEvent<string>[] = [];
    expectedOutput.push({ watermark: 1 });
    expectedOutput.push({ record: 'INPUT:17', timestamp: 0 });
    expectedOutput.push({ record: 'INPUT:13', timestamp: 0 });
    expectedOutput.push({ watermark: 2 });
    expectedOutput.push({ record: 'INPUT:42', timestamp: 1 });
    expectedOutput.push({ record: 'STATE:17', timestamp: 6 });
    expectedOutput.push({ watermark: 6 });
    expectedOutput.push({ record: 'STATE:42', timestamp: 7 });
    expectedOutput.push({ watermark: 7 });

    expect(testHarness.events()).toEqual(expectedOutput);
    // Not in Flink's test: the state, read by its descriptor.
    expect(testHarness.state(TriggeringStatefulFlatMapFunction.state, 17)).toBe(17);
    expect(testHarness.state(TriggeringStatefulFlatMapFunction.state, 13)).toBeUndefined();
    testHarness.close();
  });

  /** Verifies that we don't have leakage between different keys. */
  test('testProcessingTimeTimerWithState', () => {
    const testHarness = keyedHarness(new TriggeringStatefulFlatMapFunction(PROCESSING_TIME));

    testHarness.setProcessingTime(1);
    testHarness.processElement(17); // should set timer for 6
    testHarness.processElement(13); // should set timer for 6

    testHarness.setProcessingTime(2);
    testHarness.processElement(13); // should delete timer
    testHarness.processElement(42); // should set timer for 7

    testHarness.setProcessingTime(6);
    testHarness.setProcessingTime(7);

    const expectedOutput: HarnessEvent<string>[] = [];
    expectedOutput.push({ record: 'INPUT:17', timestamp: null });
    expectedOutput.push({ record: 'INPUT:13', timestamp: null });
    expectedOutput.push({ record: 'INPUT:42', timestamp: null });
    expectedOutput.push({ record: 'STATE:17', timestamp: null });
    expectedOutput.push({ record: 'STATE:42', timestamp: null });

    expect(testHarness.events()).toEqual(expectedOutput);
    testHarness.close();
  });

  test('testSnapshotAndRestore', () => {
    const expectedKey = 5;
    let testHarness = keyedHarness(new BothTriggeringFlatMapFunction(expectedKey));

    testHarness.processElement(expectedKey, 12);

    // snapshot and restore from scratch
    const snapshot = testHarness.snapshot(0);

    testHarness.close();

    testHarness = keyedHarness(new BothTriggeringFlatMapFunction(expectedKey), { restoreFrom: [snapshot] });

    testHarness.setProcessingTime(5);
    testHarness.processWatermark(6);

    const expectedOutput: HarnessEvent<string>[] = [];
    expectedOutput.push({ record: 'PROC:1777', timestamp: null });
    expectedOutput.push({ record: 'EVENT:1777', timestamp: 6 });
    expectedOutput.push({ watermark: 6 });

    expect(testHarness.events()).toEqual(expectedOutput);
    testHarness.close();
  });

  /** This also verifies that the timestamps of side-emitted records is correct. */
  test('testSideOutput', () => {
    const testHarness = keyedHarness(new SideOutputProcessFunction());

    testHarness.processElement(42, 17 /* timestamp */);

    expect(testHarness.events()).toEqual([{ record: 'IN:42', timestamp: 17 /* timestamp */ }]);

    expect(testHarness.sideOutputRecords(INTEGER_OUTPUT_TAG)).toEqual([{ value: 42, timestamp: 17 }]);

    expect(testHarness.sideOutputRecords(LONG_OUTPUT_TAG)).toEqual([{ value: 42n, timestamp: 17 }]);

    testHarness.close();
  });
});
