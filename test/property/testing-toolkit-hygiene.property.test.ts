// checkStateCleanup: once the watermark has passed the last event by the job's horizon, no keyed
// state and no timer is left, except state declared long-lived. Jobs with the leaks users write —
// a deduplication that never clears its flag, a processing-time timer never deleted when its
// window is done — are caught and shrink to one event; their correct versions, and the built-in
// session windows with allowed lateness, pass; a running total passes once declared long-lived.
import fc from 'fast-check';
import {
  type Collector,
  EventTimeSessionWindows,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type MapState,
  MapStateDescriptor,
  type OnTimerContext,
  type RuntimeContext,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { checkStateCleanup, eventStreams, StateNotCleanedError, type TimedEvent } from 'tidemark/testing';
import { afterAll, describe, expect, test } from 'vitest';

type Ev = TimedEvent<string, number>;
const timings: Record<string, number> = {};
afterAll(() => {
  console.log('state-cleanup timings (ms):', JSON.stringify(timings));
});

/** Runs a property that must fail; returns the shrunk counterexample and the error. */
async function counterexample(check: (events: Ev[]) => Promise<unknown>, name: string) {
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(eventStreams({ maxDisorderMs: 500 }), async (events) => {
      await check(events);
    }),
    { numRuns: 50, seed: 42 },
  );
  timings[name] = Math.round(performance.now() - started);
  expect(details.failed).toBe(true);
  return {
    events: details.counterexample![0],
    error: details.errorInstance,
    report: fc.defaultReportMessage(details) ?? '',
  };
}

async function passes(check: (events: Ev[]) => Promise<unknown>, name: string) {
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(eventStreams({ maxDisorderMs: 500 }), async (events) => {
      await check(events);
    }),
    { numRuns: 40 },
  );
  timings[name] = Math.round(performance.now() - started);
}

const TTL = 5_000;

/** Emits each key's first event of every TTL; `clears: false` is the bug (the flag stays). */
class Dedup extends KeyedProcessFunction<string, Ev, string> {
  private seen!: ValueState<boolean>;
  constructor(private readonly clears: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.seen = ctx.getState(new ValueStateDescriptor<boolean>('seen'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, out: Collector<string>) {
    if (this.seen.value() === true) return;
    this.seen.update(true);
    out.collect(`${e.key}@${e.timestamp}`);
    if (this.clears) ctx.timerService().registerEventTimeTimer(e.timestamp + TTL);
  }
  override onTimer() {
    this.seen.clear();
  }
}

const WINDOW = 1_000;

/**
 * Sums per key and tumbling window, with early results every 5 s of processing time while a
 * window is open (as Flink's ContinuousProcessingTimeTrigger); `deletes: false` is the bug: when
 * the last window closes, its state goes but the early-firing timer stays registered.
 */
class EarlySums extends KeyedProcessFunction<string, Ev, string> {
  private sums!: MapState<number, number>;
  private early!: ValueState<number>;
  constructor(private readonly deletes: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.sums = ctx.getMapState(new MapStateDescriptor<number, number>('sums'));
    this.early = ctx.getState(new ValueStateDescriptor<number>('early-timer'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, _out: Collector<string>) {
    const timers = ctx.timerService();
    const end = Math.floor(e.timestamp / WINDOW) * WINDOW + WINDOW - 1;
    if (end <= timers.currentWatermark()) return; // late
    this.sums.put(end, (this.sums.get(end) ?? 0) + e.value);
    timers.registerEventTimeTimer(end);
    if (this.early.value() === undefined) {
      const t = timers.currentProcessingTime() + 5_000;
      timers.registerProcessingTimeTimer(t);
      this.early.update(t);
    }
  }
  override onTimer(ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
    const timers = ctx.timerService();
    if (ctx.timeDomain() === 'EVENT_TIME') {
      out.collect(`${ctx.getCurrentKey()}[${ts}]=${this.sums.get(ts)}`);
      this.sums.remove(ts);
      if (this.sums.isEmpty()) {
        const t = this.early.value();
        if (t !== undefined && this.deletes) timers.deleteProcessingTimeTimer(t);
        this.early.clear();
      }
      return;
    }
    for (const [end, sum] of this.sums.entries()) out.collect(`early ${ctx.getCurrentKey()}[${end}]=${sum}`);
    const t = ts + 5_000;
    timers.registerProcessingTimeTimer(t);
    this.early.update(t);
  }
}

describe('checkStateCleanup', () => {
  test('a deduplication that never clears its flag: caught, one event, operator, state and key named', async () => {
    const { events, error, report } = await counterexample(
      (events) =>
        checkStateCleanup(
          (_env, input) =>
            input
              .keyBy((e) => e.key)
              .process(new Dedup(false))
              .name('dedup')
              .collect(),
          events,
          { horizonMs: TTL, maxOutOfOrdernessMs: 500 },
        ),
      'dedup flag caught',
    );
    expect(events).toHaveLength(1);
    expect(report).toMatch(/Counterexample: \[k\d:-?\d+@\d+\]/);
    expect(error).toBeInstanceOf(StateNotCleanedError);
    const e = error as StateNotCleanedError;
    expect(e.message).toMatch(
      /^state left after the watermark passed the last event \(at \d+\) by the horizon of 5000 ms \(watermark \d+; parallelism 2, seed 1\):\n {2}operator 'dedup', state 'seen': 1 key: "k\d"\n/,
    );
    expect(e.leftovers).toEqual([
      { operator: 'dedup', state: 'seen', kind: 'state', keys: [events[0]!.key] },
    ]);
  });

  test('a processing-time timer never deleted when its window closes: caught, one event', async () => {
    const { events, error } = await counterexample(
      (events) =>
        checkStateCleanup(
          (_env, input) =>
            input
              .keyBy((e) => e.key)
              .process(new EarlySums(false))
              .name('early-sums')
              .collect(),
          events,
          { horizonMs: WINDOW, maxOutOfOrdernessMs: 500 },
        ),
      'timer caught',
    );
    expect(events).toHaveLength(1);
    expect((error as Error).message).toMatch(
      /\n {2}operator 'early-sums', processing-time timers of '[^']+' \(the earliest at \d+\): 1 key: "k\d"\n/,
    );
    // The state itself was cleared: only the timer is left.
    expect((error as StateNotCleanedError).leftovers.map((l) => l.kind)).toEqual(['processing-time timers']);
  });

  test('the correct versions pass', async () => {
    await passes(
      (events) =>
        checkStateCleanup(
          (_env, input) =>
            input
              .keyBy((e) => e.key)
              .process(new Dedup(true))
              .collect(),
          events,
          { horizonMs: TTL, maxOutOfOrdernessMs: 500 },
        ),
      'dedup passes',
    );
    await passes(
      (events) =>
        checkStateCleanup(
          (_env, input) =>
            input
              .keyBy((e) => e.key)
              .process(new EarlySums(true))
              .collect(),
          events,
          { horizonMs: WINDOW, maxOutOfOrdernessMs: 500, parallelism: 3 },
        ),
      'early sums pass',
    );
  });

  test('built-in session windows with allowed lateness clean up by gap + lateness, not before', async () => {
    const sessions = (_env: unknown, input: import('tidemark').DataStream<Ev>) =>
      input
        .keyBy((e) => e.key)
        .window(EventTimeSessionWindows.withGap(2_000))
        .allowedLateness(1_000)
        .reduce((a, b) => ({ ...a, value: a.value + b.value }))
        .collect();
    await passes(
      (events) => checkStateCleanup(sessions, events, { horizonMs: 3_000, maxOutOfOrdernessMs: 500 }),
      'sessions pass',
    );
    // A horizon shorter than gap + lateness finds the windows still open.
    const events = [{ key: 'k0', value: 1, timestamp: 0 }];
    await expect(checkStateCleanup(sessions, events, { horizonMs: 2_000 })).rejects.toThrow(
      /operator '[^']+', state '[^']+': 1 key: "k0"/,
    );
  });

  test('a running total is long-lived: it passes once declared so', async () => {
    const totals = (_env: unknown, input: import('tidemark').DataStream<Ev>) =>
      input
        .keyBy((e) => e.key)
        .reduce((a, b) => ({ ...a, value: a.value + b.value }))
        .name('totals')
        .collect();
    const events = [
      { key: 'k0', value: 1, timestamp: 0 },
      { key: 'k1', value: 2, timestamp: 10 },
    ];
    const error = await checkStateCleanup(totals, events, { horizonMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StateNotCleanedError);
    const left = (error as StateNotCleanedError).leftovers;
    expect(left).toHaveLength(1);
    expect(left[0]).toMatchObject({ operator: 'totals', kind: 'state', keys: ['k0', 'k1'] });
    await checkStateCleanup(totals, events, { horizonMs: 0, longLived: [`totals/${left[0]!.state}`] });
    await checkStateCleanup(totals, events, { horizonMs: 0, longLived: [left[0]!.state] });
  });
});
