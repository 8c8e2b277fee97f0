// Flink's TwoInputStreamTaskTest.testWatermarkAndWatermarkStatusForwarding
// (flink-streaming-java, org.apache.flink.streaming.runtime.tasks; Apache License 2.0), ported
// step for step to tidemark's operator harness: two inputs with two channels each, combined by
// the runtime's watermark valve. Flink's `processElement(x, input, channel)` (0-based input) is
// `processElement1/2`, `processWatermark1/2(w, { channel })` or `processWatermarkStatus1/2`.
//
// Then the same script runs as a real job — one TestStream split per channel, and a
// processing-time step after each step on every split as a sync point, so that the task takes the
// steps in the script's order whatever the schedule — and the operator's output in the job is
// exactly the harness's.
import type { CoMapFunction, StreamExecutionEnvironment } from 'tidemark';
import {
  fromTestStream,
  type HarnessEvent,
  OperatorHarness,
  simulate,
  TestStream,
  type WatermarkStatus,
} from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import type { DataStream } from '../../operators/data-stream.js';
import { OneInputStreamOperator } from '../../operators/operator.js';

/** Flink's IdentityMap of the test: strings as they are, integers as strings. */
const identityMap = (): CoMapFunction<string, number, string> => ({
  map1: (value) => value,
  map2: (value) => String(value),
});

const buildCoMap = (a: DataStream<string>, b: DataStream<number>) => a.connect(b).map(identityMap());

describe("Flink's TwoInputStreamTaskTest, ported", () => {
  test('testWatermarkAndWatermarkStatusForwarding', async () => {
    const testHarness = OperatorHarness.forTwoInputs(buildCoMap, { inputChannels: [2, 2] });
    const expectedOutput: HarnessEvent<string>[] = [];
    const initialTime = 0;

    testHarness.processWatermark1(initialTime, { channel: 0 });
    testHarness.processWatermark1(initialTime, { channel: 1 });

    testHarness.processWatermark2(initialTime, { channel: 0 });

    // now the output should still be empty
    expect(testHarness.events()).toEqual(expectedOutput);

    testHarness.processWatermark2(initialTime, { channel: 1 });

    // now the watermark should have propagated, Map simply forward Watermarks
    expectedOutput.push({ watermark: initialTime });
    expect(testHarness.events()).toEqual(expectedOutput);

    // contrary to checkpoint barriers these elements are not blocked by watermarks
    testHarness.processElement1('Hello', initialTime);
    testHarness.processElement2(42, initialTime);
    expectedOutput.push({ record: 'Hello', timestamp: initialTime });
    expectedOutput.push({ record: '42', timestamp: initialTime });
    expect(testHarness.events()).toEqual(expectedOutput);

    testHarness.processWatermark1(initialTime + 4, { channel: 0 });
    testHarness.processWatermark1(initialTime + 3, { channel: 1 });
    testHarness.processWatermark2(initialTime + 3, { channel: 0 });
    testHarness.processWatermark2(initialTime + 2, { channel: 1 });

    // check whether we get the minimum of all the watermarks, this must also only occur in
    // the output after the two StreamRecords
    expectedOutput.push({ watermark: initialTime + 2 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // advance watermark from one of the inputs, now we should get a new one since the
    // minimum increases
    testHarness.processWatermark2(initialTime + 4, { channel: 1 });
    expectedOutput.push({ watermark: initialTime + 3 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // advance the other two inputs, now we should get a new one since the
    // minimum increases again
    testHarness.processWatermark1(initialTime + 4, { channel: 1 });
    testHarness.processWatermark2(initialTime + 4, { channel: 0 });
    expectedOutput.push({ watermark: initialTime + 4 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // test whether idle input channels are acknowledged correctly when forwarding watermarks
    testHarness.processWatermarkStatus1('IDLE', { channel: 1 });
    testHarness.processWatermarkStatus2('IDLE', { channel: 0 });
    testHarness.processWatermark1(initialTime + 6, { channel: 0 });
    testHarness.processWatermark2(initialTime + 5, { channel: 1 }); // this watermark should be advanced first
    testHarness.processWatermarkStatus2('IDLE', { channel: 1 }); // once this is acknowledged,

    expectedOutput.push({ watermark: initialTime + 5 });
    expectedOutput.push({ watermark: initialTime + 6 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // make all input channels idle and check that the operator's idle status is forwarded
    testHarness.processWatermarkStatus1('IDLE', { channel: 0 });
    expectedOutput.push({ watermarkStatus: 'IDLE' });
    expect(testHarness.events()).toEqual(expectedOutput);

    // make some input channels active again and check that the operator's active status is
    // forwarded only once
    testHarness.processWatermarkStatus2('ACTIVE', { channel: 0 });
    testHarness.processWatermarkStatus1('ACTIVE', { channel: 1 });
    expectedOutput.push({ watermarkStatus: 'ACTIVE' });
    expect(testHarness.events()).toEqual(expectedOutput);

    await testHarness.endInput();

    expect(testHarness.output()).toHaveLength(2);
  });
});

// ---- the same script, in the harness and in a real job ----

/** One step of a script: what comes on which channel of which input. */
type Step = { input: 1 | 2; channel: number } & (
  | { element: string | number; timestamp: number }
  | { watermark: number }
  | { status: WatermarkStatus }
);

/** The script of testWatermarkAndWatermarkStatusForwarding above. */
const script: Step[] = [
  { input: 1, channel: 0, watermark: 0 },
  { input: 1, channel: 1, watermark: 0 },
  { input: 2, channel: 0, watermark: 0 },
  { input: 2, channel: 1, watermark: 0 },
  { input: 1, channel: 0, element: 'Hello', timestamp: 0 },
  { input: 2, channel: 1, element: 42, timestamp: 0 },
  { input: 1, channel: 0, watermark: 4 },
  { input: 1, channel: 1, watermark: 3 },
  { input: 2, channel: 0, watermark: 3 },
  { input: 2, channel: 1, watermark: 2 },
  { input: 2, channel: 1, watermark: 4 },
  { input: 1, channel: 1, watermark: 4 },
  { input: 2, channel: 0, watermark: 4 },
  { input: 1, channel: 1, status: 'IDLE' },
  { input: 2, channel: 0, status: 'IDLE' },
  { input: 1, channel: 0, watermark: 6 },
  { input: 2, channel: 1, watermark: 5 },
  { input: 2, channel: 1, status: 'IDLE' },
  { input: 1, channel: 0, status: 'IDLE' },
  { input: 2, channel: 0, status: 'ACTIVE' },
  { input: 1, channel: 1, status: 'ACTIVE' },
  // a watermark that does not advance on its channel, one behind the combined watermark (its
  // channel is not aligned yet, so 9 of the other channel is the minimum of the aligned ones),
  // and a record after them: what the valve drops, the job drops too
  { input: 2, channel: 0, watermark: 4 },
  { input: 1, channel: 1, watermark: 5 },
  { input: 2, channel: 0, watermark: 9 },
  { input: 1, channel: 1, watermark: 8 },
  { input: 1, channel: 1, element: 'late', timestamp: 1 },
];

function runInHarness(steps: readonly Step[]): HarnessEvent<string>[] {
  const h = OperatorHarness.forTwoInputs(buildCoMap, { inputChannels: [2, 2] });
  for (const s of steps) {
    const channel = { channel: s.channel };
    if ('element' in s) {
      if (s.input === 1) h.processElement1(s.element as string, s.timestamp);
      else h.processElement2(s.element as number, s.timestamp);
    } else if ('watermark' in s) {
      if (s.input === 1) h.processWatermark1(s.watermark, channel);
      else h.processWatermark2(s.watermark, channel);
    } else if (s.input === 1) h.processWatermarkStatus1(s.status, channel);
    else h.processWatermarkStatus2(s.status, channel);
  }
  return h.events();
}

/** Records what reaches it — records, watermarks, statuses — in order, then forwards it. */
class Recorder extends OneInputStreamOperator<unknown, unknown> {
  constructor(private readonly seen: HarnessEvent<unknown>[]) {
    super();
  }
  processElement(value: unknown, timestamp: number): void {
    this.seen.push({ record: value, timestamp });
  }
  override processWatermark(watermark: number): void {
    this.seen.push({ watermark });
    super.processWatermark(watermark);
  }
  override processIdle(idle: boolean): void {
    this.seen.push({ watermarkStatus: idle ? 'IDLE' : 'ACTIVE' });
    super.processIdle(idle);
  }
}

/** The script as a job: a TestStream split per channel, a sync point after each step. */
function scriptedJob(steps: readonly Step[], seen: HarnessEvent<unknown>[]) {
  return (env: StreamExecutionEnvironment) => {
    const scripts1 = [TestStream.create<string>(), TestStream.create<string>()];
    const scripts2 = [TestStream.create<number>(), TestStream.create<number>()];
    for (const s of steps) {
      const script = (s.input === 1 ? scripts1[s.channel] : scripts2[s.channel]) as TestStream<
        string | number
      >;
      if ('element' in s) script.addElement(s.element, s.timestamp);
      else if ('watermark' in s) script.advanceWatermarkTo(s.watermark);
      else if (s.status === 'IDLE') script.markIdle();
      else script.markActive();
      // NOTE: a processing-time step waits until nothing else in the job can run: with one on
      // every split after each step, the step is processed before any split goes on.
      for (const t of [...scripts1, ...scripts2]) t.advanceProcessingTime(0);
    }
    const coMapped = buildCoMap(fromTestStream(env, scripts1), fromTestStream(env, scripts2)).setParallelism(
      1,
    );
    const recorded = (
      coMapped as unknown as {
        derive(kind: string, factory: () => Recorder, options: { parallelism: number }): DataStream<unknown>;
      }
    ).derive('record', () => new Recorder(seen), { parallelism: 1 });
    return recorded.collect();
  };
}

describe('a harness test and a real job agree', () => {
  test('the same script gives the same ordered output, under every schedule', async () => {
    const expected = runInHarness(script);
    // Sanity: the script exercises what it should.
    expect(expected).toContainEqual({ watermarkStatus: 'IDLE' });
    expect(expected).toContainEqual({ record: 'late', timestamp: 1 });
    expect(
      expected.filter((e) => 'watermark' in e).map((e) => (e as { watermark: number }).watermark),
    ).toEqual([0, 2, 3, 4, 5, 6, 9]);
    for (const seed of [1, 2, 3, 4, 5]) {
      const seen: HarnessEvent<unknown>[] = [];
      await simulate(scriptedJob(script, seen), { seed, parallelism: 2 });
      // The job then ends its inputs: each split goes active and sends the final watermark.
      expect(seen.slice(0, expected.length)).toEqual(expected);
      for (const e of seen.slice(expected.length))
        expect(e).toSatisfy((x: HarnessEvent<unknown>) =>
          'watermark' in x
            ? x.watermark === Number.POSITIVE_INFINITY
            : 'watermarkStatus' in x && x.watermarkStatus === 'ACTIVE',
        );
    }
  });
});
