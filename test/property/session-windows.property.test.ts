// Session windows with the built-in assigners and EventTimeTrigger take shortcuts (event time:
// the session fast path of session-windows.ts; processing time: the merging window set merges a
// key's one in-flight window without sorting). A session assigner and a trigger of the
// user's own, equal in behaviour but unknown to the operator, take the general path. Over random
// elements of a few keys, watermarks, allowed lateness and a snapshot restored mid-stream, both
// give the same output (values and timestamps), the same late side output and, after every
// step, the same number of event-time timers and the same windows with the same contents. Processing-time
// sessions (the same merging shortcut, no trigger shortcut) are checked the same way.
import fc from 'fast-check';
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  EventTimeSessionWindows,
  MergingWindowAssigner,
  OutputTag,
  ProcessingTimeSessionWindows,
  ProcessingTimeTrigger,
  type ProcessWindowContext,
  TimeWindow,
  Trigger,
  type TriggerContext,
  TriggerResult,
  type Window,
  type WindowAssignerContext,
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

/** Processing-time sessions the operator does not know. */
class UserProcessingSessions extends MergingWindowAssigner<Ev, TimeWindow> {
  constructor(private readonly gap: number) {
    super();
  }
  assignWindows(_e: Ev, _t: number, ctx: WindowAssignerContext): readonly TimeWindow[] {
    const now = ctx.getCurrentProcessingTime();
    return [new TimeWindow(now, now + this.gap)];
  }
  mergeWindows(windows: readonly TimeWindow[], merge: (w: TimeWindow[], r: TimeWindow) => void): void {
    TimeWindow.mergeWindows(windows, merge);
  }
  getDefaultTrigger(): Trigger<Ev, TimeWindow> {
    return ProcessingTimeTrigger.create() as Trigger<Ev, TimeWindow>;
  }
  isEventTime(): boolean {
    return false;
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

/** Emits `key [start, end) sum` for each fired session. */
const describeSession = {
  process(
    key: string,
    ctx: ProcessWindowContext<TimeWindow>,
    sums: Iterable<number>,
    out: Collector<string>,
  ) {
    for (const n of sums) out.collect(`${key} [${ctx.window.start}, ${ctx.window.end}) ${n}`);
  },
};

/** An element of one of a few keys; `gap` is its dynamic session gap. */
const evArb = (gap: fc.Arbitrary<number>): fc.Arbitrary<Ev> =>
  fc.record({ key: fc.constantFrom('a', 'b', 'c'), v: fc.integer({ min: 1, max: 9 }), gap });

/**
 * The operator's state after a step: its timers, and each key's windows with their contents (read
 * through the harness, which sees the same whichever way the operator keeps them: the built-in
 * assigners keep sessions in a state of their own, see session-windows.ts).
 */
function stateOf(h: OperatorHarness<Ev, string>, timers: number): unknown {
  const windows: Record<string, string[]> = {};
  for (const key of ['a', 'b', 'c'])
    windows[key] = h.windows(key).map((w) => `${String(w)} ${JSON.stringify(h.windowContents(key, w))}`);
  return { timers, windows };
}

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
    return windowed.allowedLateness(lateness).sideOutputLateData(late).aggregate(sum, describeSession);
  };
}

type Step = { el: Ev; ts: number } | { wm: number } | { snapshot: true };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ el: evArb(fc.integer({ min: 1, max: 12 })), ts: fc.nat({ max: 80 }) }),
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
    seen.push(stateOf(h, h.numEventTimeTimers()));
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

type TimeStep = { el: Ev } | { advance: number } | { snapshot: true };

const timeStepArb: fc.Arbitrary<TimeStep> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ el: evArb(fc.constant(0)) }),
  },
  { weight: 4, arbitrary: fc.record({ advance: fc.integer({ min: 0, max: 8 }) }) },
  { weight: 1, arbitrary: fc.constant({ snapshot: true as const }) },
);

function processingJob(general: boolean, gap: number) {
  return (s: DataStream<Ev>) =>
    s
      .keyBy((e) => e.key)
      .window(general ? new UserProcessingSessions(gap) : ProcessingTimeSessionWindows.withGap(gap))
      .aggregate(sum, describeSession);
}

/** Runs the steps on the processing-time clock; returns what was observed after each. */
function observeProcessing(
  build: (s: DataStream<Ev>) => DataStream<string>,
  steps: readonly TimeStep[],
): unknown[] {
  let h = OperatorHarness.forOneInput<Ev, string>(build);
  let now = 0;
  const seen: unknown[] = [];
  for (const step of steps) {
    if ('el' in step) h.processElement(step.el);
    else if ('advance' in step) {
      now += step.advance;
      h.setProcessingTime(now);
    } else {
      const snap = structuredClone(h.snapshot()) as OperatorSubtaskState;
      seen.push({ output: h.records() });
      h = OperatorHarness.forOneInput<Ev, string>(build, { restoreFrom: [snap] });
      h.setProcessingTime(now);
    }
    seen.push(stateOf(h, h.numProcessingTimeTimers()));
  }
  h.setProcessingTime(now + 1000);
  seen.push({ output: h.records(), timers: h.numProcessingTimeTimers() });
  return seen;
}

describe('processing-time session windows', () => {
  test('the built-in assigner merges exactly as the general merging path', () => {
    fc.assert(
      fc.property(fc.array(timeStepArb, { maxLength: 40 }), fc.integer({ min: 1, max: 12 }), (steps, gap) => {
        expect(observeProcessing(processingJob(false, gap), steps)).toEqual(
          observeProcessing(processingJob(true, gap), steps),
        );
      }),
      { numRuns: 300 },
    );
  });
});
