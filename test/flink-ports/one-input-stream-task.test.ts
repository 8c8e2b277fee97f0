// Flink's OneInputStreamTaskTest.testWatermarkAndStreamStatusForwarding
// (flink-streaming-java, org.apache.flink.streaming.runtime.tasks; Apache License 2.0), ported
// step for step to tidemark's operator harness: a map task with two input gates of two channels
// each, combined by the runtime's watermark valve. Flink's `processElement(x, gate, channel)` is
// `processWatermark(w, { channel: gate * 2 + channel })` or `processWatermarkStatus(s, { channel })`
// here (the valve of a one-input task sees the channels of all its gates as one list).
import type { DataStream } from 'tidemark';
import { type HarnessEvent, OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

/** Flink's IdentityMap of the test. */
const identityMap = (s: DataStream<string>) => s.map((value) => value);

/** Flink's (gate, channel) as the index of a channel of a one-input task with gates of 2 channels. */
const ch = (gate: number, channel: number) => ({ channel: gate * 2 + channel });

describe("Flink's OneInputStreamTaskTest, ported", () => {
  test('testWatermarkAndStreamStatusForwarding', async () => {
    const testHarness = OperatorHarness.forOneInput(identityMap, { inputChannels: 4 });
    const expectedOutput: HarnessEvent<string>[] = [];
    const initialTime = 0;

    testHarness.processWatermark(initialTime, ch(0, 0));
    testHarness.processWatermark(initialTime, ch(0, 1));
    testHarness.processWatermark(initialTime, ch(1, 0));

    // now the output should still be empty
    expect(testHarness.events()).toEqual(expectedOutput);

    testHarness.processWatermark(initialTime, ch(1, 1));

    // now the watermark should have propagated, Map simply forward Watermarks
    expectedOutput.push({ watermark: initialTime });
    expect(testHarness.events()).toEqual(expectedOutput);

    // contrary to checkpoint barriers these elements are not blocked by watermarks
    testHarness.processElement('Hello', initialTime);
    testHarness.processElement('Ciao', initialTime);
    expectedOutput.push({ record: 'Hello', timestamp: initialTime });
    expectedOutput.push({ record: 'Ciao', timestamp: initialTime });

    testHarness.processWatermark(initialTime + 4, ch(0, 0));
    testHarness.processWatermark(initialTime + 3, ch(0, 1));
    testHarness.processWatermark(initialTime + 3, ch(1, 0));
    testHarness.processWatermark(initialTime + 2, ch(1, 1));

    // check whether we get the minimum of all the watermarks, this must also only occur in
    // the output after the two StreamRecords
    expectedOutput.push({ watermark: initialTime + 2 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // advance watermark from one of the inputs, now we should get a new one since the
    // minimum increases
    testHarness.processWatermark(initialTime + 4, ch(1, 1));
    expectedOutput.push({ watermark: initialTime + 3 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // advance the other two inputs, now we should get a new one since the
    // minimum increases again
    testHarness.processWatermark(initialTime + 4, ch(0, 1));
    testHarness.processWatermark(initialTime + 4, ch(1, 0));
    expectedOutput.push({ watermark: initialTime + 4 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // test whether idle input channels are acknowledged correctly when forwarding watermarks
    testHarness.processWatermarkStatus('IDLE', ch(0, 1));
    testHarness.processWatermarkStatus('IDLE', ch(1, 0));
    testHarness.processWatermark(initialTime + 6, ch(0, 0));
    testHarness.processWatermark(initialTime + 5, ch(1, 1)); // this watermark should be advanced first
    testHarness.processWatermarkStatus('IDLE', ch(1, 1)); // once this is acknowledged,
    // watermark (initial + 6) should be forwarded
    expectedOutput.push({ watermark: initialTime + 5 });
    expectedOutput.push({ watermark: initialTime + 6 });
    expect(testHarness.events()).toEqual(expectedOutput);

    // make all input channels idle and check that the operator's idle status is forwarded
    testHarness.processWatermarkStatus('IDLE', ch(0, 0));
    expectedOutput.push({ watermarkStatus: 'IDLE' });
    expect(testHarness.events()).toEqual(expectedOutput);

    // make some input channels active again and check that the operator's active status is
    // forwarded only once
    testHarness.processWatermarkStatus('ACTIVE', ch(1, 0));
    testHarness.processWatermarkStatus('ACTIVE', ch(0, 1));
    expectedOutput.push({ watermarkStatus: 'ACTIVE' });
    expect(testHarness.events()).toEqual(expectedOutput);

    await testHarness.endInput();

    expect(testHarness.output()).toHaveLength(2);
  });
});
