// Reference checks: hand-written sessions against the built-in session windows (an off-by-one
// gap is caught and shrinks to two events of one key, exactly a gap apart; the correct version
// passes), and the completeness of late data (a window job that drops late records silently is
// caught and shrinks to a short stream with one late record; with sideOutputLateData it passes).
import fc from 'fast-check';
import {
  type Collector,
  type DataStream,
  EventTimeSessionWindows,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  OutputTag,
  type ProcessWindowContext,
  ProcessWindowFunction,
  type RuntimeContext,
  type StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  type ValueState,
  ValueStateDescriptor,
  WatermarkStrategy,
} from 'tidemark';
import {
  checkEquivalent,
  checkLateDataAccounted,
  eventStreams,
  formatEvents,
  LateDataLostError,
  lateStreams,
  type TimedEvent,
} from 'tidemark/testing';
import { afterAll, describe, expect, test } from 'vitest';

type Ev = TimedEvent<string, number>;
const timings: Record<string, number> = {};
afterAll(() => {
  console.log('reference-check timings (ms):', JSON.stringify(timings));
});

const GAP = 500;

interface Session {
  key: string;
  start: number;
  end: number;
  count: number;
}

/**
 * Sessions by hand, for in-order input. The built-in session windows merge windows that touch, so
 * an event exactly a gap after a session's last one joins it; `offByOne` starts a new session then.
 */
class HandSessions extends KeyedProcessFunction<string, Ev, Session> {
  private session!: ValueState<Session>;
  constructor(private readonly offByOne: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.session = ctx.getState(new ValueStateDescriptor<Session>('session'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, out: Collector<Session>) {
    const timers = ctx.timerService();
    const s = this.session.value();
    const joins = s !== undefined && (this.offByOne ? e.timestamp < s.end : e.timestamp <= s.end);
    if (s !== undefined && joins) {
      const end = Math.max(s.end, e.timestamp + GAP);
      timers.deleteEventTimeTimer(s.end - 1);
      timers.registerEventTimeTimer(end - 1);
      this.session.update({ ...s, end, count: s.count + 1 });
      return;
    }
    if (s !== undefined) {
      out.collect(s);
      timers.deleteEventTimeTimer(s.end - 1);
    }
    this.session.update({ key: e.key, start: e.timestamp, end: e.timestamp + GAP, count: 1 });
    timers.registerEventTimeTimer(e.timestamp + GAP - 1);
  }
  override onTimer(_ts: number, _ctx: OnTimerContext<string>, out: Collector<Session>) {
    const s = this.session.value();
    if (s !== undefined) out.collect(s);
    this.session.clear();
  }
}

class ToSession extends ProcessWindowFunction<Ev, Session, string, TimeWindow> {
  process(key: string, ctx: ProcessWindowContext<TimeWindow>, events: Iterable<Ev>, out: Collector<Session>) {
    out.collect({ key, start: ctx.window.start, end: ctx.window.end, count: [...events].length });
  }
}

const inOrder = WatermarkStrategy.forMonotonousTimestamps<Ev>().withTimestampAssigner((e) => e.timestamp);

const handWritten = (offByOne: boolean) => (env: StreamExecutionEnvironment, events: Ev[]) =>
  env
    .fromArray(events, { watermarks: inOrder })
    .keyBy((e) => e.key)
    .process(new HandSessions(offByOne))
    .collect();

const builtIn = (env: StreamExecutionEnvironment, events: Ev[]) =>
  env
    .fromArray(events, { watermarks: inOrder })
    .keyBy((e) => e.key)
    .window(EventTimeSessionWindows.withGap(GAP))
    .process(new ToSession())
    .collect();

/** In-order events, a few keys, gaps up to twice the session gap. */
/** In-order events of a few keys, gaps of 0 to twice the session gap in steps of a tenth of it. */
const sessionInputs = eventStreams({ keys: fc.constantFrom('a', 'b', 'c'), maxGapMs: 20, maxLength: 30 }).map(
  (events) => {
    const scaled = events.map((e) => ({ ...e, timestamp: (e.timestamp * GAP) / 10 }));
    return Object.defineProperty(scaled, fc.toStringMethod, { value: () => formatEvents(scaled) });
  },
);

describe('checkEquivalent', () => {
  test('hand-written sessions with an off-by-one gap: caught, a few events, two of one key a gap apart', async () => {
    const started = performance.now();
    const error = await checkEquivalent(handWritten(true), builtIn, sessionInputs, {
      parameters: { numRuns: 100, seed: 42 },
    }).catch((e: unknown) => e as Error);
    timings['off-by-one caught'] = Math.round(performance.now() - started);
    expect(error).toBeInstanceOf(Error);
    const message = error!.message;
    const [, shown] = /\nCounterexample: (.*)\n/.exec(message) ?? [];
    const events = shown!.split(' ').map((s) => /^(\w+):-?\d+@(\d+)$/.exec(s)!);
    // Small, with two events of one key exactly a gap apart (the bug's boundary).
    expect(events.length).toBeLessThanOrEqual(4);
    expect(events.some((a) => events.some((b) => a[1] === b[1] && Number(b[2]) - Number(a[2]) === GAP))).toBe(
      true,
    );
    expect(message).toMatch(/the job's output differs from the reference's \(expected: the reference's;/);
    expect(message).toMatch(/missing \(expected, not produced\) 1:\n {4}\{"count":2,/);
    expect(message).toMatch(/unexpected \(produced, not expected\) 2:\n {4}\{"count":1,/);
  });

  test('the correct hand-written sessions equal the built-in ones', async () => {
    const started = performance.now();
    await checkEquivalent(handWritten(false), builtIn, sessionInputs, { parameters: { numRuns: 60 } });
    timings['sessions equivalent'] = Math.round(performance.now() - started);
  });
});

// ---- late data ----

const late = new OutputTag<Ev>('late');

const windowCounts = (sidesLate: boolean) => (_env: StreamExecutionEnvironment, input: DataStream<Ev>) => {
  const windowed = input.keyBy((e) => e.key).window(TumblingEventTimeWindows.of(1_000));
  const results = (sidesLate ? windowed.sideOutputLateData(late) : windowed).aggregate({
    createAccumulator: () => 0,
    add: (_e: Ev, n: number) => n + 1,
    getResult: (n: number) => n,
    merge: (a: number, b: number) => a + b,
  });
  // NOTE: the key is not in the count: the check accounts for all keys together.
  return { results, late: results.getSideOutput(late) };
};

describe('checkLateDataAccounted', () => {
  test('a window job that drops late records silently: caught, shrunk to one late record', async () => {
    const started = performance.now();
    const details = await fc.check(
      fc.asyncProperty(lateStreams({ lateProbability: 0.3, maxLength: 30 }), async (s) => {
        await checkLateDataAccounted(windowCounts(false), s, { count: (n) => n });
      }),
      { numRuns: 100, seed: 42 },
    );
    timings['dropped late caught'] = Math.round(performance.now() - started);
    expect(details.failed).toBe(true);
    const s = details.counterexample![0];
    const events = s.steps.filter((x) => 'event' in x);
    expect(events.length).toBeLessThanOrEqual(3);
    expect(s.late).toHaveLength(1);
    console.log(`dropped late records, shrunk to: ${fc.stringify(s)}`);
    expect(details.errorInstance).toBeInstanceOf(LateDataLostError);
    expect((details.errorInstance as Error).message).toMatch(
      /^input records neither counted in a result nor in the late output \(parallelism 2, seed 1\):\n {2}all keys: \d+ in the input, \d+ counted in results, 0 in the late output: 1 lost\n {2}late by the input's watermarks and not in the late output \(counted in a window still open, or lost\): k\d:-?\d+@-?\d+\n/,
    );
  });

  test('with sideOutputLateData every record is accounted for', async () => {
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(lateStreams({ lateProbability: 0.3, maxLength: 40 }), async (s) => {
        await checkLateDataAccounted(windowCounts(true), s, { count: (n) => n });
      }),
      { numRuns: 60 },
    );
    timings['late accounted'] = Math.round(performance.now() - started);
  });

  test('per key, when results carry their key; plain events with a watermark bound', async () => {
    const keyed = (_env: StreamExecutionEnvironment, input: DataStream<Ev>) => {
      const results = input
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(1_000))
        .sideOutputLateData(late)
        .process(new KeyedCount());
      return { results, late: results.getSideOutput(late) };
    };
    // k1's record at 100 arrives after the watermark passed 999: late.
    const events: Ev[] = [
      { key: 'k0', value: 1, timestamp: 0 },
      { key: 'k0', value: 1, timestamp: 2_500 },
      { key: 'k1', value: 1, timestamp: 100 },
    ];
    await checkLateDataAccounted(keyed, events, { count: (r) => r.count });
    // Dropping k1's: named by key.
    const dropping = (_env: StreamExecutionEnvironment, input: DataStream<Ev>) => {
      const results = input
        .keyBy((e) => e.key)
        .window(TumblingEventTimeWindows.of(1_000))
        .process(new KeyedCount());
      return { results, late: results.getSideOutput(late) };
    };
    await expect(checkLateDataAccounted(dropping, events, { count: (r) => r.count })).rejects.toThrow(
      /\n {2}key "k1": 1 in the input, 0 counted in results, 0 in the late output: 1 lost\n/,
    );
  });
});

class KeyedCount extends ProcessWindowFunction<Ev, { key: string; count: number }, string, TimeWindow> {
  process(
    key: string,
    _ctx: ProcessWindowContext<TimeWindow>,
    events: Iterable<Ev>,
    out: Collector<{ key: string; count: number }>,
  ) {
    out.collect({ key, count: [...events].length });
  }
}
