// Property tests of the window operator (fast-check):
// - with disorder within the bounded-out-of-orderness bound, tumbling, sliding and session window
//   results equal a batch computation of the same windows, at parallelism 1..4, whatever the order
//   within the bound;
// - with explicit watermarks, allowed lateness and late elements, every record is in exactly the
//   windows that were not late when it arrived, or else in the late side output (never lost, never
//   twice);
// - watermarks seen downstream of a window never decrease, and on-time results are not late there.
import fc from 'fast-check';
import {
  type AggregateFunction,
  type Collector,
  EventTimeSessionWindows,
  OutputTag,
  type ProcessContext,
  ProcessFunction,
  type ProcessWindowContext,
  type RuntimeContext,
  SlidingEventTimeWindows,
  StreamExecutionEnvironment,
  type TimeWindow,
  TumblingEventTimeWindows,
  WatermarkStrategy,
} from 'tidemark';
import { fromTestStream, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { sessions, slidingWindows, sortedByJson, tumblingWindow } from '../helpers/windows.js';

interface Ev {
  id: number;
  key: string;
  ts: number;
  v: number;
}

interface Stat {
  key: string;
  start: number;
  end: number;
  count: number;
  sum: number;
}

const countSum: AggregateFunction<Ev, { count: number; sum: number }, { count: number; sum: number }> = {
  createAccumulator: () => ({ count: 0, sum: 0 }),
  add: (e, a) => ({ count: a.count + 1, sum: a.sum + e.v }),
  getResult: (a) => a,
  merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum }),
};

const toStat = {
  process(
    key: string,
    ctx: ProcessWindowContext<TimeWindow>,
    elements: Iterable<{ count: number; sum: number }>,
    out: Collector<Stat>,
  ) {
    for (const e of elements) out.collect({ key, start: ctx.window.start, end: ctx.window.end, ...e });
  },
};

function statsOf(events: readonly Ev[], windowsOf: (ts: number) => [number, number][]): Stat[] {
  const m = new Map<string, Stat>();
  for (const e of events)
    for (const [start, end] of windowsOf(e.ts)) {
      const id = `${e.key}|${start}`;
      const s = m.get(id) ?? { key: e.key, start, end, count: 0, sum: 0 };
      s.count++;
      s.sum += e.v;
      m.set(id, s);
    }
  return sortedByJson([...m.values()]);
}

function sessionStats(events: readonly Ev[], gap: number): Stat[] {
  const out: Stat[] = [];
  for (const key of new Set(events.map((e) => e.key))) {
    const mine = events.filter((e) => e.key === key);
    for (const s of sessions(
      mine.map((e) => e.ts),
      gap,
    )) {
      const members = mine.filter((e) => e.ts >= s.start && e.ts < s.end);
      out.push({
        key,
        start: s.start,
        end: s.end,
        count: members.length,
        sum: members.reduce((n, e) => n + e.v, 0),
      });
    }
  }
  return sortedByJson(out);
}

/** Events in timestamp order: keys, values, and timestamp steps of 0..6 ms from a random start. */
const eventsArb = fc
  .tuple(
    fc.integer({ min: -200, max: 200 }),
    fc.array(
      fc.record({
        key: fc.constantFrom('a', 'b', 'c', 'd'),
        step: fc.nat(6),
        v: fc.integer({ min: -50, max: 50 }),
      }),
      { maxLength: 120 },
    ),
  )
  .map(([start, raw]) => {
    let ts = start;
    return raw.map((r, id): Ev => {
      ts += r.step;
      return { id, key: r.key, ts, v: r.v };
    });
  });

/**
 * An arrival order whose disorder is at most `disorder`: sort by `ts + delay` with delays in
 * [0, disorder], so an event never arrives after one more than `disorder` ms newer.
 */
function shuffleWithin(events: readonly Ev[], delays: readonly number[], disorder: number): Ev[] {
  return events
    .map((e, i) => ({ e, at: e.ts + ((delays[i % Math.max(1, delays.length)] ?? 0) % (disorder + 1)) }))
    .sort((x, y) => x.at - y.at || x.e.id - y.e.id)
    .map((x) => x.e);
}

describe('windows under bounded out-of-orderness', () => {
  test('tumbling, sliding and session results equal the batch computation at every parallelism and order', async () => {
    await fc.assert(
      fc.asyncProperty(
        eventsArb,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 50 }),
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 50 }),
        fc.record({
          size: fc.integer({ min: 1, max: 25 }),
          slide: fc.integer({ min: 1, max: 10 }),
          gap: fc.integer({ min: 1, max: 12 }),
        }),
        async (events, parallelism, bound, delays1, delays2, { size, slide, gap }) => {
          const offset = (size * 7) % slide; // some offset with |offset| < slide
          const expectedTumbling = statsOf(events, (ts) => [tumblingWindow(ts, size)]);
          const expectedSliding = statsOf(events, (ts) => slidingWindows(ts, size, slide, offset));
          const expectedSessions = sessionStats(events, gap);
          for (const delays of [delays1, delays2]) {
            // NOTE: windows get disorder up to the bound; sessions up to bound - 1. With exactly the
            // bound, an element at a session's end can arrive right after the watermark (max - bound
            // - 1) fired and cleaned that session: as in Flink, it then opens a new session instead
            // of extending the emitted one, which a batch computation does not model.
            const arrival = shuffleWithin(events, delays, bound);
            const sessionArrival = shuffleWithin(events, delays, bound - 1);
            const env = new StreamExecutionEnvironment({ parallelism });
            const strategy = WatermarkStrategy.forBoundedOutOfOrderness<Ev>(bound).withTimestampAssigner(
              (e) => e.ts,
            );
            const input = env
              .fromArray(arrival, { parallel: true, watermarks: strategy })
              .keyBy((e) => e.key);
            const tumbling = input
              .window(TumblingEventTimeWindows.of(size))
              .aggregate(countSum, toStat)
              .collect();
            const sliding = input
              .window(SlidingEventTimeWindows.of(size, slide, offset))
              .aggregate(countSum, toStat)
              .collect();
            const session = env
              .fromArray(sessionArrival, { parallel: true, watermarks: strategy })
              .keyBy((e) => e.key)
              .window(EventTimeSessionWindows.withGap(gap))
              .aggregate(countSum, toStat)
              .collect();
            await env.execute();
            expect(sortedByJson(tumbling.values)).toEqual(expectedTumbling);
            expect(sortedByJson(sliding.values)).toEqual(expectedSliding);
            expect(sortedByJson(session.values)).toEqual(expectedSessions);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

type Step = { kind: 'el'; key: string; ts: number } | { kind: 'wm'; by: number };

describe('late data', () => {
  test('every record is in exactly the windows that were not late on arrival, or in the late side output', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            {
              weight: 4,
              arbitrary: fc.record({
                kind: fc.constant('el' as const),
                key: fc.constantFrom('a', 'b', 'c'),
                ts: fc.integer({ min: 0, max: 60 }),
              }),
            },
            {
              weight: 1,
              arbitrary: fc.record({ kind: fc.constant('wm' as const), by: fc.integer({ min: 1, max: 12 }) }),
            },
          ),
          { maxLength: 80 },
        ),
        fc.record({
          size: fc.integer({ min: 1, max: 20 }),
          slide: fc.integer({ min: 1, max: 20 }),
          lateness: fc.integer({ min: 0, max: 15 }),
          parallelism: fc.integer({ min: 1, max: 3 }),
        }),
        async (steps, { size, slide, lateness, parallelism }) => {
          // The model: the operator's watermark when each element arrives, and its windows then.
          const script = TestStream.create<Ev>();
          const expectedWindows = new Map<string, number[]>();
          const expectedLate: number[] = [];
          let wm = Number.NEGATIVE_INFINITY;
          let id = 0;
          for (const s of steps) {
            if (s.kind === 'wm') {
              wm = (wm === Number.NEGATIVE_INFINITY ? 0 : wm) + s.by;
              script.advanceWatermarkTo(wm);
              continue;
            }
            const e: Ev = { id: id++, key: s.key, ts: s.ts, v: 1 };
            script.addElement(e, e.ts);
            // Flink: a window is late when maxTimestamp + allowedLateness <= watermark.
            const live = slidingWindows(e.ts, size, slide).filter(([, end]) => end - 1 + lateness > wm);
            // Flink: skipped by every window and late itself (ts + allowedLateness <= watermark). With
            // slide > size an element can fall between windows: it belongs to none and is not late.
            if (live.length === 0 && e.ts + lateness <= wm) expectedLate.push(e.id);
            for (const [start, end] of live) {
              const k = `${e.key} ${start} ${end}`;
              expectedWindows.set(k, [...(expectedWindows.get(k) ?? []), e.id]);
            }
          }

          const env = new StreamExecutionEnvironment({ parallelism });
          const late = new OutputTag<Ev>('late');
          const windowed = fromTestStream(env, script)
            .keyBy((e) => e.key)
            .window(SlidingEventTimeWindows.of(size, slide))
            .allowedLateness(lateness)
            .sideOutputLateData(late)
            .process<{ w: string; ids: number[] }>({
              process(key, ctx, elements, out) {
                out.collect({
                  w: `${key} ${ctx.window.start} ${ctx.window.end}`,
                  ids: [...elements].map((e) => e.id),
                });
              },
            });
          const fired = windowed.collect();
          const side = windowed.getSideOutput(late).collect();
          await env.execute();

          // Every fire holds distinct records; re-fires (allowed lateness) only add to a window.
          const finalContents = new Map<string, number[]>();
          for (const f of fired.values) {
            expect(new Set(f.ids).size).toBe(f.ids.length);
            const before = finalContents.get(f.w) ?? [];
            for (const x of before) expect(f.ids).toContain(x);
            finalContents.set(f.w, f.ids);
          }
          const sortNum = (xs: number[]) => [...xs].sort((a, b) => a - b);
          expect([...finalContents.keys()].sort()).toEqual([...expectedWindows.keys()].sort());
          for (const [w, ids] of expectedWindows)
            expect(sortNum(finalContents.get(w)!)).toEqual(sortNum(ids));
          expect(sortNum(side.values.map((e) => e.id))).toEqual(sortNum(expectedLate));
        },
      ),
      { numRuns: 100 },
    );
  });
});

/** Emits, per record, its subtask, the watermark it sees and the record's timestamp. */
class WatermarkProbe extends ProcessFunction<Stat, [number, number, number | null]> {
  private subtask = -1;
  override open(ctx: RuntimeContext): void {
    this.subtask = ctx.taskInfo.subtaskIndex;
  }
  processElement(_s: Stat, ctx: ProcessContext, out: Collector<[number, number, number | null]>): void {
    out.collect([this.subtask, ctx.timerService().currentWatermark(), ctx.timestamp()]);
  }
}

describe('watermarks downstream of windows', () => {
  test('never decrease per subtask, and an on-time window result is never behind the watermark it meets', async () => {
    const script = fc.array(
      fc.oneof(
        fc.record({
          kind: fc.constant('el' as const),
          key: fc.constantFrom('a', 'b', 'c', 'd'),
          ts: fc.integer({ min: 0, max: 200 }),
        }),
        fc.record({ kind: fc.constant('wm' as const), by: fc.integer({ min: 0, max: 30 }) }),
      ),
      { maxLength: 40 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(script, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        async (scripts, windowParallelism, probeParallelism) => {
          const streams = scripts.map((steps) => {
            const t = TestStream.create<Ev>();
            let wm = 0;
            let id = 0;
            for (const s of steps as Step[]) {
              if (s.kind === 'wm') t.advanceWatermarkTo((wm += s.by));
              else t.addElement({ id: id++, key: s.key, ts: s.ts, v: 1 }, s.ts);
            }
            return t;
          });
          const env = new StreamExecutionEnvironment({ parallelism: 3 });
          const seen = fromTestStream(env, streams)
            .keyBy((e) => e.key)
            .window(TumblingEventTimeWindows.of(20))
            .aggregate(countSum, toStat)
            .setParallelism(windowParallelism)
            .rebalance()
            .process(new WatermarkProbe())
            .setParallelism(probeParallelism)
            .collect();
          seen.sink.setParallelism(probeParallelism); // chained: each probe subtask's order is kept
          await env.execute();
          const last = new Map<number, number>();
          for (const [subtask, wm, ts] of seen.values) {
            expect(wm).toBeGreaterThanOrEqual(last.get(subtask) ?? Number.NEGATIVE_INFINITY);
            last.set(subtask, wm);
            expect(ts).not.toBeNull();
            expect(ts!).toBeGreaterThan(wm);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
