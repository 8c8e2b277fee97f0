// Session windows with the built-in assigners and EventTimeTrigger take shortcuts (the merging
// window set merges a key's one in-flight window without sorting, and the operator skips trigger
// and cleanup registrations it can prove are no-ops). A session assigner and a trigger of the
// user's own, equal in behaviour but unknown to the operator, take the general path. Over random
// elements of a few keys, watermarks, allowed lateness and a snapshot restored mid-stream, both
// give the same output (values and timestamps), the same late side output and, after every
// step, the same number of event-time timers and the same keys with window state.
import fc from 'fast-check';
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  EventTimeSessionWindows,
  MergingWindowAssigner,
  OutputTag,
  type ProcessWindowContext,
  TimeWindow,
  Trigger,
  type TriggerContext,
  TriggerResult,
  type Window,
} from 'tidemark';
import { OperatorHarness, type OperatorSubtaskState } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

interface Ev {
  key: string;
  v: number;
  gap: number;
}

const sum: AggregateFunction<Ev, number, number> = {
  createAccumulator: () => 0,
  add: (e, n) => n + e.v,
  getResult: (n) => n,
  merge: (a, b) => a + b,
};

/** A session assigner the operator does not know (merging by TimeWindow.mergeWindows all the same). */
class UserSessions extends MergingWindowAssigner<Ev, TimeWindow> {
  constructor(private readonly gap: number | undefined) {
    super();
  }
  assignWindows(e: Ev, timestamp: number): readonly TimeWindow[] {
    return [new TimeWindow(timestamp, timestamp + (this.gap ?? e.gap))];
  }
  mergeWindows(windows: readonly TimeWindow[], merge: (w: TimeWindow[], r: TimeWindow) => void): void {
    TimeWindow.mergeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<Ev, TimeWindow> {
    return new UserEventTimeTrigger();
  }
  isEventTime(): boolean {
    return true;
  }
}

/** EventTimeTrigger's behaviour, in a class of the user's. */
class UserEventTimeTrigger extends Trigger<Ev, TimeWindow> {
  onElement(_e: Ev, _t: number, w: Window, ctx: TriggerContext): TriggerResult {
    if (w.maxTimestamp() <= ctx.getCurrentWatermark()) return TriggerResult.FIRE;
    ctx.registerEventTimeTimer(w.maxTimestamp());
    return TriggerResult.CONTINUE;
  }
  onEventTime(time: number, w: Window): TriggerResult {
    return time === w.maxTimestamp() ? TriggerResult.FIRE : TriggerResult.CONTINUE;
  }
  onProcessingTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  override canMerge(): boolean {
    return true;
  }
  override onMerge(w: Window, ctx: TriggerContext): void {
    if (w.maxTimestamp() > ctx.getCurrentWatermark()) ctx.registerEventTimeTimer(w.maxTimestamp());
  }
  clear(w: Window, ctx: TriggerContext): void {
    ctx.deleteEventTimeTimer(w.maxTimestamp());
  }
}

const late = new OutputTag<Ev>('late');

function sessionJob(general: boolean, gap: number | undefined, lateness: number) {
  return (s: DataStream<Ev>) => {
    const keyed = s.keyBy((e) => e.key);
    const windowed = general
      ? keyed.window(new UserSessions(gap))
      : keyed.window(
          gap === undefined
            ? EventTimeSessionWindows.withDynamicGap((e: Ev) => e.gap)
            : EventTimeSessionWindows.withGap(gap),
        );
    return windowed
      .allowedLateness(lateness)
      .sideOutputLateData(late)
      .aggregate(sum, {
        process(
          key: string,
          ctx: ProcessWindowContext<TimeWindow>,
          sums: Iterable<number>,
          out: Collector<string>,
        ) {
          for (const n of sums) out.collect(`${key} [${ctx.window.start}, ${ctx.window.end}) ${n}`);
        },
      });
  };
}

type Step = { el: Ev; ts: number } | { wm: number } | { snapshot: true };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      el: fc.record({
        key: fc.constantFrom('a', 'b', 'c'),
        v: fc.integer({ min: 1, max: 9 }),
        gap: fc.integer({ min: 1, max: 12 }),
      }),
      ts: fc.nat({ max: 80 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ wm: fc.integer({ min: -1, max: 90 }) }) },
  { weight: 1, arbitrary: fc.constant({ snapshot: true as const }) },
);

/** Runs the steps; returns what was observed after each. */
function observe(build: (s: DataStream<Ev>) => DataStream<string>, steps: readonly Step[]): unknown[] {
  let h = OperatorHarness.forOneInput<Ev, string>(build);
  const seen: unknown[] = [];
  let watermark = Number.NEGATIVE_INFINITY;
  for (const step of steps) {
    if ('el' in step) h.processElement(step.el, step.ts);
    else if ('wm' in step) {
      // Watermarks only advance.
      if (step.wm <= watermark) continue;
      watermark = step.wm;
      h.processWatermark(step.wm);
    } else {
      // Restored from a structured clone, as after serialization (windows come back as data).
      const snap = structuredClone(h.snapshot()) as OperatorSubtaskState;
      seen.push({ output: h.records(), late: h.sideOutputRecords(late) });
      h = OperatorHarness.forOneInput<Ev, string>(build, { restoreFrom: [snap] });
      if (watermark > Number.NEGATIVE_INFINITY) h.processWatermark(watermark);
    }
    seen.push({
      timers: h.numEventTimeTimers(),
      contents: h.keys('window-contents'),
      windows: h.keys('merging-window-set'),
    });
  }
  h.processWatermark(Number.POSITIVE_INFINITY);
  seen.push({ output: h.records(), late: h.sideOutputRecords(late), timers: h.numEventTimeTimers() });
  return seen;
}

describe('session windows', () => {
  test('the built-in assigners and trigger behave exactly as the general merging path', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb, { maxLength: 40 }),
        fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }),
        fc.constantFrom(0, 0, 5),
        (steps, gap, lateness) => {
          const fast = observe(sessionJob(false, gap, lateness), steps);
          const general = observe(sessionJob(true, gap, lateness), steps);
          expect(fast).toEqual(general);
        },
      ),
      { numRuns: 500 },
    );
  });
});
