// The session fast path (operators/windows/session-windows.ts) against the general merging path it
// replaces, on the same jobs: the fast path switched off (`sessionWindowSettings.fastPath`) runs
// every session on the general path (Flink's WindowOperator with its MergingWindowSet). Over
// random elements of several keys (out of order, late, within and beyond the allowed lateness),
// fixed and dynamic gaps, watermarks, and a snapshot restored midway at another parallelism, both
// give the same records (values, timestamps, order per subtask), the same late side output, the
// same late-record counts and, after every step, the same number of timers and the same windows
// with the same contents. Contents are reduced or aggregated with functions that do not commute,
// so the order in which merged sessions' contents combine is checked too. Then whole jobs: a fast
// path checkpoint restores at another parallelism and after failures (checkJobRescaling,
// checkExactlyOnce), and a restore keeps the path the state was written by.
import fc from 'fast-check';
import {
  type AggregateFunction,
  type Collector,
  CountTrigger,
  type DataStream,
  EventTimeSessionWindows,
  MemoryCheckpointStorage,
  OutputTag,
  type ProcessWindowContext,
  type TimeWindow,
  WatermarkStrategy,
} from 'tidemark';
import {
  checkExactlyOnce,
  checkJobRescaling,
  OperatorHarness,
  type OperatorSubtaskState,
} from 'tidemark/testing';
import { afterEach, describe, expect, test } from 'vitest';
import { sessionWindowSettings } from '../../operators/windows/session-windows.js';

interface Ev {
  key: string;
  v: number;
  gap: number;
}

const KEYS = ['a', 'b', 'c', 'd', 'e'];

/** Concatenates values: the order in which partial results combine shows in the result. */
const concat: AggregateFunction<Ev, string, string> = {
  createAccumulator: () => '',
  add: (e, acc) => `${acc}${e.v}`,
  getResult: (acc) => `<${acc}>`,
  merge: (a, b) => `${a}|${b}`,
};

const late = new OutputTag<Ev>('late');

/** Emits `key [start, end) result @watermark`; its clear() is seen in the output too. */
function describeSession() {
  return {
    process(
      key: string,
      ctx: ProcessWindowContext<TimeWindow>,
      results: Iterable<unknown>,
      out: Collector<string>,
    ) {
      for (const r of results)
        out.collect(
          `${key} [${ctx.window.start}, ${ctx.window.end}) ${JSON.stringify(r)} @${ctx.currentWatermark()}`,
        );
    },
    clear(ctx: ProcessWindowContext<TimeWindow>) {
      cleared.push(`${ctx.window.start}-${ctx.window.end}`);
    },
  };
}
/** What the window functions' clear() saw (reset per run). */
let cleared: string[] = [];

interface Config {
  gap: number | undefined;
  lateness: number;
  contents: 'aggregate' | 'aggregate+fn' | 'reduce' | 'reduce+fn';
  sideOutput: boolean;
}

function sessionJob(c: Config) {
  return (s: DataStream<Ev>): DataStream<string> => {
    let w = s
      .keyBy((e) => e.key)
      .window(
        c.gap === undefined
          ? EventTimeSessionWindows.withDynamicGap((e: Ev) => e.gap)
          : EventTimeSessionWindows.withGap(c.gap),
      )
      .allowedLateness(c.lateness);
    if (c.sideOutput) w = w.sideOutputLateData(late);
    const reduce = (a: Ev, b: Ev): Ev => ({ key: a.key, v: a.v * 10 + b.v, gap: a.gap });
    switch (c.contents) {
      case 'aggregate':
        return w.aggregate(concat);
      case 'aggregate+fn':
        return w.aggregate(concat, describeSession());
      case 'reduce':
        return w.reduce(reduce) as unknown as DataStream<string>;
      case 'reduce+fn':
        return w.reduce(reduce, describeSession());
    }
  };
}

type Step = { el: Ev; ts: number } | { wm: number } | { restore: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      el: fc.record({
        key: fc.constantFrom(...KEYS),
        v: fc.integer({ min: 1, max: 9 }),
        gap: fc.integer({ min: 1, max: 15 }),
      }),
      ts: fc.integer({ min: -5, max: 120 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ wm: fc.integer({ min: -10, max: 140 }) }) },
  { weight: 1, arbitrary: fc.record({ restore: fc.integer({ min: 1, max: 3 }) }) },
);

const configArb: fc.Arbitrary<Config> = fc.record({
  gap: fc.option(fc.integer({ min: 1, max: 15 }), { nil: undefined }),
  lateness: fc.constantFrom(0, 0, 4, 30),
  contents: fc.constantFrom(
    'aggregate' as const,
    'aggregate+fn' as const,
    'reduce' as const,
    'reduce+fn' as const,
  ),
  sideOutput: fc.boolean(),
});

/** Runs `f` with the session fast path on or off. */
function withPath<R>(fast: boolean, f: () => R): R {
  const saved = sessionWindowSettings.fastPath;
  sessionWindowSettings.fastPath = fast;
  try {
    return f();
  } finally {
    sessionWindowSettings.fastPath = saved;
  }
}

/**
 * Runs the steps (at parallelism 1 until the first restore, then at the restore's parallelism,
 * each element to the subtask that owns its key); returns what was observed after each step.
 */
function observe(c: Config, steps: readonly Step[], fast: boolean): unknown[] {
  return withPath(fast, () => {
    cleared = [];
    const build = sessionJob(c);
    let subtasks = [OperatorHarness.forOneInput<Ev, string>(build)];
    const seen: unknown[] = [];
    let watermark = Number.NEGATIVE_INFINITY;
    const results = () =>
      subtasks.map((h) => ({
        records: h.records(),
        late: h.sideOutputRecords(late),
        metrics: [h.metrics().numLateRecordsDropped, h.metrics().numLateRecordsToSideOutput],
      }));
    let restored = false;
    for (const step of steps) {
      if ('el' in step) {
        for (const h of subtasks) if (h.ownsElement(step.el)) h.processElement(step.el, step.ts);
      } else if ('wm' in step) {
        if (step.wm <= watermark) continue;
        watermark = step.wm;
        for (const h of subtasks) h.processWatermark(step.wm);
      } else {
        if (restored) continue;
        restored = true;
        // As after serialization: a structured clone of the snapshot.
        const snap = structuredClone(subtasks[0]!.snapshot()) as OperatorSubtaskState;
        seen.push(results());
        const parallelism = step.restore;
        subtasks = [];
        for (let i = 0; i < parallelism; i++)
          subtasks.push(
            OperatorHarness.forOneInput<Ev, string>(build, {
              restoreFrom: [snap],
              parallelism,
              subtaskIndex: i,
            }),
          );
        if (watermark > Number.NEGATIVE_INFINITY) for (const h of subtasks) h.processWatermark(watermark);
      }
      seen.push(
        subtasks.map((h) => {
          const windows: string[] = [];
          for (const key of KEYS)
            if (h.ownsKey(key))
              for (const w of h.windows(key))
                windows.push(`${key} ${String(w)} ${JSON.stringify(h.windowContents(key, w))}`);
          return { timers: h.timers().map((t) => [t.key, t.timestamp]), windows };
        }),
      );
    }
    for (const h of subtasks) h.processWatermark(Number.POSITIVE_INFINITY);
    seen.push(
      results(),
      subtasks.map((h) => h.numEventTimeTimers()),
      [...cleared].sort(),
    );
    return seen;
  });
}

afterEach(() => {
  sessionWindowSettings.fastPath = true;
});

describe('the session fast path', () => {
  test('gives what the general merging path gives: records, late output and counts, timers, windows', () => {
    fc.assert(
      fc.property(configArb, fc.array(stepArb, { maxLength: 50 }), (c, steps) => {
        expect(observe(c, steps, true)).toEqual(observe(c, steps, false));
      }),
      { numRuns: 800 },
    );
  });

  test('is taken by event-time sessions with the default trigger, and not when switched off', () => {
    const c: Config = { gap: 10, lateness: 0, contents: 'aggregate', sideOutput: false };
    const ev: Ev = { key: 'a', v: 1, gap: 1 };
    const fast = withPath(true, () => OperatorHarness.forOneInput<Ev, string>(sessionJob(c)));
    fast.processElement(ev, 5);
    expect(fast.keys('session-windows')).toEqual(['a']);
    expect(fast.keys('merging-window-set')).toEqual([]);
    expect(fast.timers().map((t) => [t.service, t.timestamp])).toEqual([['session-timers', 14]]);
    const general = withPath(false, () => OperatorHarness.forOneInput<Ev, string>(sessionJob(c)));
    general.processElement(ev, 5);
    expect(general.keys('session-windows')).toEqual([]);
    expect(general.keys('merging-window-set')).toEqual(['a']);
  });

  test('a restore keeps the path its state was written by', () => {
    const c: Config = { gap: 10, lateness: 5, contents: 'aggregate+fn', sideOutput: false };
    const first = (h: OperatorHarness<Ev, string>) =>
      h.processElement({ key: 'a', v: 1, gap: 1 }, 5).processElement({ key: 'b', v: 2, gap: 1 }, 7);
    const rest = (h: OperatorHarness<Ev, string>) => {
      h.processElement({ key: 'a', v: 3, gap: 1 }, 12).processWatermark(100);
      return h.records();
    };
    const expected = withPath(false, () => {
      const h = OperatorHarness.forOneInput<Ev, string>(sessionJob(c));
      first(h);
      return rest(h);
    });
    for (const [writtenFast, restoredFast] of [
      [false, true],
      [true, false],
    ] as const) {
      const snap = withPath(writtenFast, () => {
        const h = OperatorHarness.forOneInput<Ev, string>(sessionJob(c));
        first(h);
        return structuredClone(h.snapshot()) as OperatorSubtaskState;
      });
      const r = withPath(restoredFast, () =>
        OperatorHarness.forOneInput<Ev, string>(sessionJob(c), { restoreFrom: [snap] }),
      );
      expect(r.keys(writtenFast ? 'session-windows' : 'merging-window-set').sort()).toEqual(['a', 'b']);
      expect(rest(r)).toEqual(expected);
    }
    // Fast-path state cannot go to the general path (here: another trigger).
    const snap = withPath(true, () => {
      const h = OperatorHarness.forOneInput<Ev, string>(sessionJob(c));
      first(h);
      return structuredClone(h.snapshot()) as OperatorSubtaskState;
    });
    expect(() =>
      OperatorHarness.forOneInput<Ev, string>(
        (s) =>
          s
            .keyBy((e) => e.key)
            .window(EventTimeSessionWindows.withGap(10))
            .trigger(CountTrigger.of(2))
            .aggregate(concat),
        { restoreFrom: [snap] },
      ),
    ).toThrow(/kept by the session fast path/);
  });
});

interface Bid {
  bidder: number;
  time: number;
}

/** Bids of 12 bidders in bursts, some out of order, a few late. */
const bids: Bid[] = Array.from({ length: 400 }, (_x, i) => {
  const bidder = (i * 7) % 12;
  const burst = Math.floor(i / 40) * 5_000;
  const jitter = (i * 37) % 900;
  return { bidder, time: burst + (i % 40) * 60 + jitter - (i % 97 === 0 ? 4_000 : 0) };
});

/** q11's shape: bids per bidder and session, with allowed lateness and a late side output. */
function bidSessions(env: import('tidemark').StreamExecutionEnvironment) {
  const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Bid>(500).withTimestampAssigner(
    (b) => b.time,
  );
  const counted = env
    .fromArray(bids, { parallel: true, watermarks })
    .keyBy((b) => b.bidder)
    .window(EventTimeSessionWindows.withGap(1_000))
    .allowedLateness(800)
    .sideOutputLateData(new OutputTag<Bid>('late-bids'))
    .aggregate(
      {
        createAccumulator: () => 0,
        add: (_b: Bid, n: number) => n + 1,
        getResult: (n: number) => n,
        merge: (a: number, b: number) => a + b,
      },
      (bidder: number, w: TimeWindow, counts: Iterable<number>, out: Collector<string>) => {
        for (const n of counts) out.collect(`${bidder} [${w.start}, ${w.end}) ${n}`);
      },
    );
  return counted.collectCommitted();
}

describe('checkpoints of the session fast path', () => {
  test('restore at another parallelism (checkJobRescaling)', async () => {
    for (const [from, to] of [
      [2, 3],
      [3, 1],
    ] as const) {
      const { restoredFrom } = await checkJobRescaling(bidSessions, {
        from,
        to,
        stopAfterCheckpoints: 2,
        storage: () => new MemoryCheckpointStorage(),
      });
      expect(restoredFrom).toBeGreaterThanOrEqual(2);
    }
  });

  test('exactly once across failures (checkExactlyOnce)', async () => {
    const report = await checkExactlyOnce(
      (env, injector) => {
        const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Bid>(500).withTimestampAssigner(
          (b) => b.time,
        );
        return env
          .fromArray(bids, { parallel: true, watermarks })
          .map((b) => {
            injector.point();
            return b;
          })
          .keyBy((b) => b.bidder)
          .window(EventTimeSessionWindows.withGap(1_000))
          .reduce((a, b) => ({ bidder: a.bidder, time: Math.max(a.time, b.time) }))
          .collectCommitted();
      },
      { storage: () => new MemoryCheckpointStorage(), failAtCalls: [150, 330], parallelism: 2 },
    );
    expect(report.injectedFailures).toBe(2);
  });
});
