// An operator test in the style of Flink's operator tests: the session window operator of the
// sessionization job, driven record by record and watermark by watermark on two input channels
// (as after a keyBy from two upstream subtasks), its ordered output compared as Flink's
// TestHarnessUtil.assertOutputEqualsSorted does, its window contents read by key and window.
// Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import { type DataStream, TimeWindow } from 'tidemark';
import { assertOutputEqualsSorted, type HarnessEvent, OperatorHarness } from 'tidemark/testing';
import { expect, test } from 'vitest';
import { type Click, lateClicks, type Session, sessionize } from '../sessionization.js';

const click = (user: string, page: string, time: number): Click => ({ user, page, time });

test('sessions close when the slower channel lets the watermark pass their end; late clicks go aside', () => {
  const h = OperatorHarness.forOneInput((clicks: DataStream<Click>) => sessionize(clicks).sessions, {
    inputChannels: 2,
  });
  const expected: HarnessEvent<Session>[] = [];

  h.processElement(click('ana', '/', 1_000), 1_000);
  h.processElement(click('ben', '/a', 2_000), 2_000);
  h.processElement(click('ana', '/b', 20_000), 20_000);
  // ana's session so far: [1000, 50000) with two clicks on two pages.
  expect(h.windows('ana').map(String)).toEqual([String(new TimeWindow(1_000, 50_000))]);
  expect(h.windowContents('ana', new TimeWindow(1_000, 50_000))).toMatchObject({ clicks: 2 });

  h.processWatermark(60_000, { channel: 0 });
  assertOutputEqualsSorted(expected, h.events()); // channel 1 holds the watermark back
  h.processWatermark(40_000, { channel: 1 });
  expected.push({
    record: { user: 'ben', start: 2_000, end: 32_000, clicks: 1, pages: 1 },
    timestamp: 31_999,
  });
  expected.push({ watermark: 40_000 });
  assertOutputEqualsSorted(expected, h.events());

  h.processWatermarkStatus('IDLE', { channel: 1 }); // the slow channel goes idle: channel 0 alone counts
  expected.push({
    record: { user: 'ana', start: 1_000, end: 50_000, clicks: 2, pages: 2 },
    timestamp: 49_999,
  });
  expected.push({ watermark: 60_000 });
  assertOutputEqualsSorted(expected, h.events());

  h.processElement(click('ben', '/c', 5_000), 5_000); // ben's session was emitted: late
  expect(h.sideOutput(lateClicks)).toEqual([click('ben', '/c', 5_000)]);
  expect(h.windows('ana')).toEqual([]);
});
