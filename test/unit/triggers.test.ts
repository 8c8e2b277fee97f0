// Every built-in trigger at a window's end and after it, on tumbling, sliding and merging
// windows, driven through the operator harness (Flink's trigger tests and
// ContinuousProcessingTimeTriggerTest, and FLINK-35069: a continuous processing-time trigger on an
// event-time window fired forever once processing time passed the window's end). Also the timer
// loop's own guard: a timer that a firing registers again for a passed time fires once per advance.
import {
  type AggregateFunction,
  ContinuousEventTimeTrigger,
  ContinuousProcessingTimeTrigger,
  CountTrigger,
  type DataStream,
  EventTimeSessionWindows,
  EventTimeTrigger,
  type OnTimerContext,
  ProcessingTimeSessionWindows,
  ProcessingTimeTrigger,
  type ProcessWindowContext,
  PurgingTrigger,
  SlidingEventTimeWindows,
  type TimeWindow,
  Trigger,
  type TriggerContext,
  TriggerResult,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
  type Window,
  type WindowAssigner,
} from 'tidemark';
import { OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

const sum: AggregateFunction<number, number, number> = {
  createAccumulator: () => 0,
  add: (v, acc) => acc + v,
  getResult: (acc) => acc,
  merge: (a, b) => a + b,
};

/** Fails a run that fires more than `limit` times (a loop), instead of hanging the test. */
function guard(limit: number): () => void {
  let fires = 0;
  return () => {
    if (++fires > limit) throw new Error(`more than ${limit} fires: the window fires in a loop`);
  };
}

/** One key; the sum of each fire as `"sum@[start,end)"`; at most 100 fires. */
function windowed(
  assigner: WindowAssigner<number, TimeWindow>,
  trigger: Trigger<unknown, Window> | undefined,
  allowedLatenessMs = 0,
) {
  const check = guard(100);
  return OperatorHarness.forOneInput((s: DataStream<number>) => {
    let w = s.keyBy(() => 'k').window(assigner);
    if (trigger !== undefined) w = w.trigger(trigger);
    if (allowedLatenessMs > 0) w = w.allowedLateness(allowedLatenessMs);
    return w.aggregate(sum, {
      process(_k: string, ctx: ProcessWindowContext<TimeWindow>, sums: Iterable<number>, out) {
        check();
        for (const n of sums) out.collect(`${n}@[${ctx.window.start},${ctx.window.end})`);
      },
    });
  });
}

describe('EventTimeTrigger', () => {
  test('fires once at the window end; a late element within the lateness fires at once; no timers left', () => {
    const h = windowed(TumblingEventTimeWindows.of(10), EventTimeTrigger.create(), 5);
    h.processElement(1, 2).processElement(2, 9).processWatermark(8);
    expect(h.output()).toEqual([]);
    h.processWatermark(9);
    expect(h.output()).toEqual(['3@[0,10)']);
    h.processWatermark(12).processElement(4, 5); // late but within the lateness: fires at once
    expect(h.output()).toEqual(['3@[0,10)', '7@[0,10)']);
    h.processWatermark(13); // nothing new
    h.processWatermark(14); // cleanup time 9 + 5
    expect(h.output()).toEqual(['3@[0,10)', '7@[0,10)']);
    expect(h.numEventTimeTimers()).toBe(0);
    h.processElement(8, 1); // after cleanup: dropped as late
    expect(h.output().length).toBe(2);
  });

  test('sliding windows fire each at its own end, once', () => {
    const h = windowed(SlidingEventTimeWindows.of(10, 5), EventTimeTrigger.create());
    h.processElement(1, 7).processWatermark(9).processWatermark(14).processWatermark(100);
    expect(h.output()).toEqual(['1@[0,10)', '1@[5,15)']);
    expect(h.numEventTimeTimers()).toBe(0);
  });

  test('merged sessions fire once at the merged end; a late merge fires at once', () => {
    const h = windowed(EventTimeSessionWindows.withGap(10), EventTimeTrigger.create(), 20);
    h.processElement(1, 0).processElement(2, 5); // [0, 15)
    h.processWatermark(13);
    expect(h.output()).toEqual([]);
    expect(
      h
        .timers()
        .filter((t) => t.domain === 'EVENT_TIME')
        .map((t) => t.timestamp),
    ).toEqual([14, 34]);
    h.processWatermark(14);
    expect(h.output()).toEqual(['3@[0,15)']);
    h.processElement(4, 12); // merges into [0, 22): its end 21 is not passed: a timer, no fire
    expect(h.output()).toEqual(['3@[0,15)']);
    h.processWatermark(25).processElement(8, 1); // [0, 22) past its end: merged and fired at once
    expect(h.output()).toEqual(['3@[0,15)', '7@[0,22)', '15@[0,22)']);
    h.processWatermark(41);
    expect(h.numEventTimeTimers()).toBe(0);
  });
});

describe('ProcessingTimeTrigger', () => {
  test('on processing-time windows: fires once at the end, then the window is gone', () => {
    const h = windowed(TumblingProcessingTimeWindows.of(10), ProcessingTimeTrigger.create());
    h.setProcessingTime(1).processElement(1).processElement(2).setProcessingTime(8);
    expect(h.output()).toEqual([]);
    h.setProcessingTime(9).setProcessingTime(30);
    expect(h.output()).toEqual(['3@[0,10)']);
    expect(h.numProcessingTimeTimers()).toBe(0);
  });

  test('on an event-time window whose end processing time already passed: fires once per element, never in a loop', () => {
    const h = windowed(TumblingEventTimeWindows.of(10), ProcessingTimeTrigger.create());
    h.setProcessingTime(100).processElement(1, 3); // its end (9) has passed on the clock
    h.setProcessingTime(101).setProcessingTime(102);
    expect(h.output()).toEqual(['1@[0,10)']);
    h.processElement(2, 4).setProcessingTime(103).setProcessingTime(104);
    expect(h.output()).toEqual(['1@[0,10)', '3@[0,10)']);
    h.processWatermark(9); // cleanup of the event-time window
    expect(h.numProcessingTimeTimers()).toBe(0);
    expect(h.numEventTimeTimers()).toBe(0);
  });

  test('merged processing-time sessions fire once at the merged end', () => {
    const h = windowed(ProcessingTimeSessionWindows.withGap(10), ProcessingTimeTrigger.create());
    h.setProcessingTime(0).processElement(1).setProcessingTime(5).processElement(2); // [0, 15)
    h.setProcessingTime(13);
    expect(h.output()).toEqual([]);
    h.setProcessingTime(50);
    expect(h.output()).toEqual(['3@[0,15)']);
    expect(h.numProcessingTimeTimers()).toBe(0);
  });
});

describe('CountTrigger', () => {
  test('fires every n elements; the window end only cleans up (no fire)', () => {
    const h = windowed(TumblingEventTimeWindows.of(10), CountTrigger.of(2));
    h.processElement(1, 1).processElement(2, 2).processElement(4, 3);
    expect(h.output()).toEqual(['3@[0,10)']);
    h.processWatermark(9).processWatermark(20);
    expect(h.output()).toEqual(['3@[0,10)']);
    expect(h.numEventTimeTimers()).toBe(0);
  });

  test('merged sessions add their counts', () => {
    const h = windowed(EventTimeSessionWindows.withGap(15), CountTrigger.of(3));
    h.processElement(1, 0).processElement(2, 30); // two sessions, one element each
    h.processElement(4, 15); // [0, 15) + [15, 30) + [30, 45) merge (touching): count 3 -> fires
    expect(h.output()).toEqual(['7@[0,45)']);
  });
});

describe('ContinuousEventTimeTrigger', () => {
  test('fires every interval and once at the end; a late element fires at once; no timers left', () => {
    const h = windowed(TumblingEventTimeWindows.of(20), ContinuousEventTimeTrigger.of(5), 10);
    h.processElement(1, 2).processWatermark(4); // first fire time 5
    expect(h.output()).toEqual([]);
    h.processWatermark(5).processWatermark(12); // 5, 10
    expect(h.output()).toEqual(['1@[0,20)', '1@[0,20)']);
    h.processWatermark(19); // 15 and the end 19
    expect(h.output().length).toBe(4);
    h.processWatermark(25).processElement(2, 3); // late, within the lateness: fires at once
    expect(h.output()).toEqual(['1@[0,20)', '1@[0,20)', '1@[0,20)', '1@[0,20)', '3@[0,20)']);
    h.processWatermark(29);
    expect(h.output().length).toBe(5);
    expect(h.numEventTimeTimers()).toBe(0);
  });

  test('merged sessions keep the earliest fire time', () => {
    const h = windowed(EventTimeSessionWindows.withGap(10), ContinuousEventTimeTrigger.of(4));
    h.processElement(1, 1).processElement(2, 6); // [1, 16); fire times 4 (from 1) and 8 -> 4
    h.processWatermark(4);
    expect(h.output()).toEqual(['3@[1,16)']);
    h.processWatermark(15);
    expect(h.output()).toEqual(['3@[1,16)', '3@[1,16)', '3@[1,16)', '3@[1,16)']); // 8, 12, 15
    expect(h.numEventTimeTimers()).toBe(0);
  });
});

describe('ContinuousProcessingTimeTrigger', () => {
  test("Flink's testWindowFiring: processing-time tumbling windows of 10, interval 5", () => {
    const h = windowed(TumblingProcessingTimeWindows.of(10), ContinuousProcessingTimeTrigger.of(5));
    h.setProcessingTime(0).processElement(1).setProcessingTime(2).processElement(2);
    h.setProcessingTime(5);
    expect(h.records()).toEqual([{ value: '3@[0,10)', timestamp: 9 }]);
    h.setProcessingTime(7).processElement(3).setProcessingTime(9);
    expect(h.output()).toEqual(['3@[0,10)', '6@[0,10)']);
    h.setProcessingTime(10).processElement(3).setProcessingTime(15);
    expect(h.output()).toEqual(['3@[0,10)', '6@[0,10)', '3@[10,20)']);
    h.setProcessingTime(18).processElement(3).setProcessingTime(20);
    expect(h.output()).toEqual(['3@[0,10)', '6@[0,10)', '3@[10,20)', '6@[10,20)']);
  });

  test("Flink's testMergingWindows: processing-time sessions of gap 10, interval 5", () => {
    const h = windowed(ProcessingTimeSessionWindows.withGap(10), ContinuousProcessingTimeTrigger.of(5));
    h.setProcessingTime(0).processElement(1).setProcessingTime(2).processElement(2); // [0, 12)
    h.setProcessingTime(5);
    expect(h.output()).toEqual(['3@[0,12)']);
    h.setProcessingTime(9);
    expect(h.output()).toEqual(['3@[0,12)']);
    h.setProcessingTime(10);
    expect(h.output()).toEqual(['3@[0,12)', '3@[0,12)']);
    h.setProcessingTime(15); // the fire at the end, 11
    expect(h.output()).toEqual(['3@[0,12)', '3@[0,12)', '3@[0,12)']);
    h.setProcessingTime(100); // the window is gone
    expect(h.output().length).toBe(3);
    expect(h.numProcessingTimeTimers()).toBe(0);
  });

  test('FLINK-35069: on an event-time window, the fire at the window end is the last; a later element fires once', () => {
    const h = windowed(TumblingEventTimeWindows.of(10), ContinuousProcessingTimeTrigger.of(5));
    h.setProcessingTime(0).processElement(1, 1); // fire times: 5, then the end 9
    h.setProcessingTime(5);
    expect(h.output()).toEqual(['1@[0,10)']);
    h.setProcessingTime(9); // the end: fires, and does not register the end again
    h.setProcessingTime(20).setProcessingTime(30);
    expect(h.output()).toEqual(['1@[0,10)', '1@[0,10)']);
    expect(h.numProcessingTimeTimers()).toBe(0);
    // The event-time window is still open (the watermark is not at 9): an element starts a new
    // cycle, whose first fire time is already the (passed) end: one fire, then nothing.
    h.processElement(2, 3).setProcessingTime(31).setProcessingTime(40);
    expect(h.output()).toEqual(['1@[0,10)', '1@[0,10)', '3@[0,10)']);
    h.processWatermark(9); // cleanup: no fire (the trigger ignores event time), nothing left
    expect(h.output().length).toBe(3);
    expect(h.numProcessingTimeTimers()).toBe(0);
    expect(h.numEventTimeTimers()).toBe(0);
  });
});

describe('PurgingTrigger', () => {
  test('every fire of the nested trigger purges: each result holds only what came since', () => {
    const h = windowed(TumblingEventTimeWindows.of(20), PurgingTrigger.of(ContinuousEventTimeTrigger.of(5)));
    h.processElement(1, 1).processWatermark(5);
    h.processElement(2, 6).processElement(4, 7).processWatermark(10);
    h.processWatermark(19);
    // 5: [1]; 10: [2, 4]; 15 and 19: empty windows do not fire
    expect(h.output()).toEqual(['1@[0,20)', '6@[0,20)']);
    expect(h.numEventTimeTimers()).toBe(0);
  });

  test('purging count windows on sessions', () => {
    const h = windowed(EventTimeSessionWindows.withGap(10), PurgingTrigger.of(CountTrigger.of(2)));
    h.processElement(1, 0).processElement(2, 3).processElement(4, 5).processElement(8, 6);
    // [0, 10) and [3, 13) merge: 2 elements, fire and purge; then [0, 15), [0, 16): 2 more
    expect(h.output()).toEqual(['3@[0,13)', '12@[0,16)']);
  });
});

describe('the timer loop guard', () => {
  /** A trigger that asks for the window's end again every time it fires (the FLINK-35069 bug). */
  class AlwaysAgain extends Trigger<unknown, Window> {
    onElement(_e: unknown, _t: number, w: Window, ctx: TriggerContext): TriggerResult {
      ctx.registerProcessingTimeTimer(w.maxTimestamp());
      return TriggerResult.CONTINUE;
    }
    onProcessingTime(_time: number, w: Window, ctx: TriggerContext): TriggerResult {
      ctx.registerProcessingTimeTimer(w.maxTimestamp());
      return TriggerResult.FIRE;
    }
    onEventTime(): TriggerResult {
      return TriggerResult.CONTINUE;
    }
    clear(w: Window, ctx: TriggerContext): void {
      ctx.deleteProcessingTimeTimer(w.maxTimestamp());
    }
  }

  test('a trigger that re-registers a passed time fires once per advance of processing time', () => {
    const h = windowed(TumblingEventTimeWindows.of(10), new AlwaysAgain());
    h.setProcessingTime(50).processElement(1, 1);
    h.setProcessingTime(50);
    expect(h.output()).toEqual(['1@[0,10)']);
    h.setProcessingTime(50); // time did not move: nothing
    expect(h.output().length).toBe(1);
    h.setProcessingTime(51).setProcessingTime(52);
    expect(h.output().length).toBe(3);
    h.processWatermark(9); // the window is cleaned up, and its timer with it
    h.setProcessingTime(60);
    expect(h.output().length).toBe(3);
    expect(h.numProcessingTimeTimers()).toBe(0);
  });

  function timerJob(domain: 'event' | 'processing', again: (ts: number) => number | undefined) {
    const check = guard(100);
    return OperatorHarness.forOneInput((s: DataStream<string>) =>
      s
        .keyBy((k) => k)
        .process<string>({
          processElement(_v, ctx) {
            if (domain === 'event') ctx.timerService().registerEventTimeTimer(5);
            else ctx.timerService().registerProcessingTimeTimer(5);
          },
          onTimer(ts: number, ctx: OnTimerContext<string>, out) {
            check();
            out.collect(`${ctx.getCurrentKey()}@${ts}`);
            const next = again(ts);
            if (next === undefined) return;
            if (domain === 'event') ctx.timerService().registerEventTimeTimer(next);
            else ctx.timerService().registerProcessingTimeTimer(next);
          },
        }),
    );
  }

  test('an event-time timer that registers itself again fires once per watermark', () => {
    const h = timerJob('event', (ts) => ts);
    h.processElement('a').processElement('b').processWatermark(7);
    expect(h.output()).toEqual(['a@5', 'b@5']);
    h.processWatermark(8);
    expect(h.output()).toEqual(['a@5', 'b@5', 'a@5', 'b@5']);
    expect(h.numEventTimeTimers()).toBe(2); // still registered, and snapshotted
  });

  test("a timer registered again at a time that fired earlier in the advance, behind the key's later one, waits", () => {
    // Key 'a' fires at 5 and at 6 in one advance; at 6 it asks for 5 again: that one already
    // fired in this advance (it is not the key's latest fired timer), so it waits for the next.
    const check = guard(100);
    const h = OperatorHarness.forOneInput((s: DataStream<string>) =>
      s
        .keyBy((k) => k)
        .process<string>({
          processElement(_v, ctx) {
            ctx.timerService().registerEventTimeTimer(5);
            ctx.timerService().registerEventTimeTimer(6);
          },
          onTimer(ts: number, ctx: OnTimerContext<string>, out) {
            check();
            out.collect(`${ctx.getCurrentKey()}@${ts}`);
            if (ts === 6) ctx.timerService().registerEventTimeTimer(5);
          },
        }),
    );
    h.processElement('a').processWatermark(7);
    expect(h.output()).toEqual(['a@5', 'a@6']);
    h.processWatermark(8);
    expect(h.output()).toEqual(['a@5', 'a@6', 'a@5']);
  });

  test('a processing-time timer that registers itself again fires once per advance', () => {
    const h = timerJob('processing', (ts) => ts);
    h.processElement('a').setProcessingTime(6);
    expect(h.output()).toEqual(['a@5']);
    h.setProcessingTime(6).setProcessingTime(7);
    expect(h.output()).toEqual(['a@5', 'a@5']);
  });

  test('a new timer for a passed time still fires in the same advance (as in Flink)', () => {
    const h = timerJob('event', (ts) => (ts > 1 ? ts - 2 : undefined));
    h.processElement('a').processWatermark(10);
    expect(h.output()).toEqual(['a@5', 'a@3', 'a@1']);
    const p = timerJob('processing', (ts) => (ts > 1 ? ts - 2 : undefined));
    p.processElement('a').setProcessingTime(10);
    expect(p.output()).toEqual(['a@5', 'a@3', 'a@1']);
  });

  test('the final watermark (+Infinity, after which time never advances) ends a timer loop', () => {
    const h = timerJob('event', (ts) => ts);
    h.processElement('a').processWatermark(Number.POSITIVE_INFINITY);
    expect(h.output()).toEqual(['a@5']);
  });
});
