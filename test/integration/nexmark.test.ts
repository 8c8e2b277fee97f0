// The Nexmark queries of examples/nexmark, run on generated events, against batch computations
// of the same queries over the same events (test/helpers/nexmark-reference.ts): exact (as
// multisets) for q0-q3, q5, q7, q8 and q11; the final per-category averages and every closing
// price for q4; and for q12 (processing time) exact too, on a TestStream that moves a manual
// clock at fixed event numbers, so that each bid's processing time is known. Hand-made inputs
// (ties, and test/helpers/nexmark-corners.ts) check the edges that generated events do not reach.
import {
  type DataStream,
  ManualClock,
  MemoryCheckpointStorage,
  StreamExecutionEnvironment,
  WatermarkStrategy,
} from 'tidemark';
import { checkExactlyOnce, checkJobRescaling, fromTestStream, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import {
  DEFAULT_CONFIG,
  type Event,
  type NexmarkConfig,
  nexmarkConfig,
  nexmarkEvent,
  nexmarkStream,
} from '../../examples/nexmark/generator.js';
import * as q0 from '../../examples/nexmark/q0.js';
import * as q1 from '../../examples/nexmark/q1.js';
import * as q2 from '../../examples/nexmark/q2.js';
import * as q3 from '../../examples/nexmark/q3.js';
import * as q4 from '../../examples/nexmark/q4.js';
import * as q5 from '../../examples/nexmark/q5.js';
import * as q7 from '../../examples/nexmark/q7.js';
import * as q8 from '../../examples/nexmark/q8.js';
import * as q11 from '../../examples/nexmark/q11.js';
import * as q12 from '../../examples/nexmark/q12.js';
import { Q4_CORNER, Q7_CORNER, Q8_CORNER, Q11_CORNER, TIED_BIDS } from '../helpers/nexmark-corners.js';
import * as ref from '../helpers/nexmark-reference.js';
import { withTimestamps } from '../helpers/windows.js';

/** A query as the tests see it: a run of its stream, and the batch computation of the same result. */
interface Query {
  run: (count: number, config: NexmarkConfig, p: number) => Promise<unknown[]>;
  reference: (events: readonly Event[]) => unknown[];
}

function query<T>(
  build: (events: DataStream<Event>) => DataStream<T>,
  reference: (events: readonly Event[]) => T[],
): Query {
  return { run: (count, config, p) => run(build, count, config, p), reference };
}

const EXACT: Record<string, Query> = {
  q0: query(q0.build, ref.q0),
  q1: query(q1.build, ref.q1),
  q2: query(q2.build, ref.q2),
  q3: query(q3.build, ref.q3),
  'q4 closing prices': query(q4.closingPrices, ref.q4ClosingPrices),
  q5: query(q5.build, ref.q5),
  q7: query(q7.build, ref.q7),
  q8: query(q8.build, ref.q8),
  q11: query(q11.build, ref.q11),
};

/** Runs `build` on `count` generated events at parallelism `p`; returns what it emitted. */
async function run<T>(
  build: (events: DataStream<Event>) => DataStream<T>,
  count: number,
  config: NexmarkConfig,
  p: number,
): Promise<T[]> {
  // NOTE: periodic watermarks every millisecond, so that windows fire and timers run while the
  // input flows (not only at the final watermark); results must not depend on it.
  const env = new StreamExecutionEnvironment({ parallelism: p, autoWatermarkIntervalMs: 1 });
  const out = build(nexmarkStream(env, { count, config })).collect();
  await env.execute();
  return out.values;
}

/** The last update per category of q4's updating output. */
function finalAverages(updates: readonly q4.Q4Result[]): q4.Q4Result[] {
  const last = new Map<number, q4.Q4Result>();
  for (const u of updates) last.set(u.category, u);
  return [...last.values()];
}

const CASES = [
  { name: 'default configuration (10,000 events/s of event time)', count: 20_000, config: DEFAULT_CONFIG },
  // 200 events/s: 30 s of event time, so several windows, sessions and auction lifetimes.
  {
    name: 'slow event time (200 events/s, seed 7)',
    count: 6_000,
    config: nexmarkConfig({ firstEventRate: 200, seed: 7 }),
  },
];

for (const c of CASES) {
  describe(`Nexmark on ${c.count} events, ${c.name}`, () => {
    const events = ref.generateEvents(c.count, c.config);

    for (const [name, q] of Object.entries(EXACT)) {
      test.each([1, 3])(`${name} equals the batch computation at parallelism %i`, async (p) => {
        const expected = q.reference(events);
        expect(expected.length).toBeGreaterThan(0);
        const actual = await q.run(c.count, c.config, p);
        expect(actual.length).toBe(expected.length);
        expect(ref.canonicalJson(actual)).toEqual(ref.canonicalJson(expected));
      });
    }

    test.each([1, 3])(
      'q4: the final average per category equals the batch computation at parallelism %i',
      async (p) => {
        const updates = await run(q4.build, c.count, c.config, p);
        const expected = ref.q4(events);
        expect(expected.length).toBe(5);
        // One update per closed auction; each category's last one is its final average.
        expect(updates.length).toBe(expected.reduce((n, r) => n + r.auctions, 0));
        expect(ref.canonicalJson(finalAverages(updates))).toEqual(ref.canonicalJson(expected));
      },
    );
  });
}

/**
 * Runs `build` on one scripted stream at parallelism `p` (on a manual clock, which only the
 * script's processing-time steps move); returns its results with their timestamps.
 */
async function runOnScript<T>(
  build: (events: DataStream<Event>) => DataStream<T>,
  script: TestStream<Event>,
  p: number,
): Promise<[T, number | null][]> {
  const env = new StreamExecutionEnvironment({ parallelism: p });
  const out = withTimestamps(build(fromTestStream(env, script))).collect();
  await env.execute({ clock: new ManualClock(0) });
  return out.values;
}

describe('Nexmark ties', () => {
  const bids = TIED_BIDS;

  async function runOnBids<T>(build: (events: DataStream<Event>) => DataStream<T>, p: number): Promise<T[]> {
    const env = new StreamExecutionEnvironment({ parallelism: p });
    const events = env.fromArray(bids, {
      parallel: true,
      watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Event>(4000).withTimestampAssigner(
        (e) => e.dateTime,
      ),
    });
    const out = build(events).collect();
    await env.execute();
    return out.values;
  }

  test.each([1, 3])(
    'q7 emits every bid carrying the highest price of its window (parallelism %i)',
    async (p) => {
      const expected = ref.q7(bids);
      const windows = new Set(expected.map((r) => Math.floor(r.dateTime / q7.Q7_SIZE_MS)));
      expect(expected.length).toBeGreaterThan(windows.size);
      expect(ref.canonicalJson(await runOnBids(q7.build, p))).toEqual(ref.canonicalJson(expected));
    },
  );

  test.each([1, 3])(
    'q5 emits every auction with the highest count of its window (parallelism %i)',
    async (p) => {
      const expected = ref.q5(bids);
      expect(expected.length).toBeGreaterThan(new Set(expected.map((r) => r.windowStart)).size);
      expect(ref.canonicalJson(await runOnBids(q5.build, p))).toEqual(ref.canonicalJson(expected));
    },
  );
});

describe('Nexmark at the edges of the SQL (hand-made input)', () => {
  /**
   * Replays `events` in their order with the queries' watermarks (4 s out of order); with
   * `settle`, each event goes through the whole job before the next one comes (a processing-time
   * step waits for that), so that an operator with two inputs sees them in this order too.
   */
  function replay(events: readonly Event[], settle = false): TestStream<Event> {
    const script = TestStream.create<Event>();
    let max = Number.NEGATIVE_INFINITY;
    for (const e of events) {
      script.addElement(e, e.dateTime);
      if (e.dateTime > max) {
        max = e.dateTime;
        script.advanceWatermarkTo(max - 4000 - 1);
      }
      if (settle) script.advanceProcessingTime(0);
    }
    return script;
  }

  test('the batch computations follow the SQL on these inputs', () => {
    expect(ref.canonicalJson(ref.q7(Q7_CORNER.bids))).toEqual(
      ref.canonicalJson(Q7_CORNER.expected.map(([r]) => r)),
    );
    expect(ref.canonicalJson(ref.q8(Q8_CORNER.events))).toEqual(ref.canonicalJson(Q8_CORNER.expected));
    expect(ref.canonicalJson(ref.q4ClosingPrices(Q4_CORNER.events))).toEqual(
      ref.canonicalJson(Q4_CORNER.expected),
    );
    expect(ref.canonicalJson(ref.q11(Q11_CORNER.events))).toEqual(ref.canonicalJson(Q11_CORNER.expected));
  });

  test.each([1, 3])(
    'q7 joins bids at exactly a window end to that window, and nothing to an empty one (parallelism %i)',
    async (p) => {
      const script = TestStream.create<Event>();
      for (const a of Q7_CORNER.arrival) {
        if (typeof a === 'number') script.advanceWatermarkTo(a);
        else script.addElement(a, a.dateTime);
      }
      expect(ref.canonicalJson(await runOnScript(q7.build, script, p))).toEqual(
        ref.canonicalJson(Q7_CORNER.expected),
      );
    },
  );

  test.each([1, 3])(
    'q8 reports each distinct (id, name) once per window, within the window bounds (parallelism %i)',
    async (p) => {
      const rows = (await runOnScript(q8.build, replay(Q8_CORNER.events), p)).map(([r]) => r);
      expect(ref.canonicalJson(rows)).toEqual(ref.canonicalJson(Q8_CORNER.expected));
    },
  );

  test.each([1, 3])(
    "q4 counts bids at exactly an auction's start and expiry, and none outside (parallelism %i)",
    async (p) => {
      const closing = await runOnScript(q4.closingPrices, replay(Q4_CORNER.events, true), p);
      expect(ref.canonicalJson(closing.map(([r]) => r))).toEqual(ref.canonicalJson(Q4_CORNER.expected));
      const averages = await runOnScript(q4.build, replay(Q4_CORNER.events, true), p);
      expect(ref.canonicalJson(finalAverages(averages.map(([r]) => r)))).toEqual(
        ref.canonicalJson([
          { category: 10, average: (100 + 300) / 2, auctions: 2 },
          { category: 12, average: (40 + 60) / 2, auctions: 2 },
        ]),
      );
    },
  );

  test.each([1, 3])('q11 merges bids exactly the gap apart into one session (parallelism %i)', async (p) => {
    const sessions = (await runOnScript(q11.build, replay(Q11_CORNER.events), p)).map(([r]) => r);
    expect(ref.canonicalJson(sessions)).toEqual(ref.canonicalJson(Q11_CORNER.expected));
  });
});

describe('Nexmark q12 (processing-time windows)', () => {
  // NOTE: q12's windows depend on when bids are processed. A TestStream replays the events and
  // moves a manual clock by 1 s every 500 event numbers (in every parallel script at the same
  // numbers, so the scripts move in step); event n is then processed at floor(n / 500) s, and
  // the windows are exactly those of a batch computation with that processing time.
  const config = nexmarkConfig({ seed: 3 });
  const count = 12_000;
  const perSecond = 500;

  function scripts(p: number): TestStream<Event>[] {
    const out = Array.from({ length: p }, () => TestStream.create<Event>());
    for (let n = 0; n < count; n++) {
      if (n > 0 && n % perSecond === 0) for (const s of out) s.advanceProcessingTime(1000);
      const e = nexmarkEvent(n, config);
      out[n % p]!.addElement(e, e.dateTime);
    }
    // Past the end of the last window: every window fires before the input ends.
    for (const s of out) s.advanceProcessingTime(q12.Q12_SIZE_MS);
    return out;
  }

  test.each([1, 3])(
    'q12 counts every bid once, in the window of its processing time, at parallelism %i',
    async (p) => {
      const env = new StreamExecutionEnvironment({ parallelism: p });
      const out = q12.build(fromTestStream(env, scripts(p))).collect();
      await env.execute({ clock: new ManualClock(0) });
      const bids = ref
        .generateEvents(count, config)
        .flatMap((e, n) =>
          e.kind === 'bid' ? [{ bid: e, processingTime: Math.floor(n / perSecond) * 1000 }] : [],
        );
      const expected = ref.q12(bids);
      expect(new Set(expected.map((r) => r.starttime)).size).toBeGreaterThan(2);
      expect(ref.canonicalJson(out.values)).toEqual(ref.canonicalJson(expected));
    },
  );
});

describe('Nexmark with checkpoints', () => {
  const config = nexmarkConfig({ firstEventRate: 200, seed: 11 });
  const count = 3_000;

  test('q5 and q4 are exactly once across injected failures (source positions, windows, timers restored)', async () => {
    const report = await checkExactlyOnce(
      (env, injector) => {
        const events = nexmarkStream(env, { count, config, eventsPerPoll: 16 }).map((e) => {
          injector.point();
          return e;
        });
        const hot = q5.build(events).map((r) => `q5 ${JSON.stringify(r)}`);
        const closing = q4.closingPrices(events).map((c) => `q4 ${JSON.stringify(c)}`);
        return hot.union(closing).collectCommitted();
      },
      {
        storage: () => new MemoryCheckpointStorage(),
        failAtCalls: [400, 1_500, 2_600],
        parallelism: 2,
        normalize: (v) => [...v].sort(),
      },
    );
    expect(report.injectedFailures).toBe(3);
    expect(report.completedCheckpoints).toBeGreaterThan(0);
  });

  test('q3 stopped at parallelism 2 and restored at 3 gives the uninterrupted result', async () => {
    const result = await checkJobRescaling(
      (env) => q3.build(nexmarkStream(env, { count, config, eventsPerPoll: 16 })).collectCommitted(),
      {
        from: 2,
        to: 3,
        storage: () => new MemoryCheckpointStorage(),
        normalize: (v) => ref.canonicalJson(v),
      },
    );
    expect(result.restoredFrom).toBeDefined();
  });
});
