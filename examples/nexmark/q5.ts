// Nexmark q5: hot items — in every sliding window of 10 s (every 2 s), the auctions with the most
// bids.
//
// How it runs: bids are counted per auction and window (an incremental count, keyed by auction);
// the counts of one window then meet, keyed by the window's end, in a keyed process function that
// keeps the highest count and its auctions, and emits them when the watermark passes the window's
// end (every count of the window has arrived by then: each counting subtask emits a window's
// results before it forwards the watermark that fired it).
//
// Every auction tied at the window's highest count is emitted (q5.sql's `num >= maxn`). The rows
// also carry the window's bounds, which q5.sql leaves out of its (auction, num).
//
// Run it with:  npx tidemark run examples/nexmark/q5.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import {
  type Collector,
  type DataStream,
  job,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  type RuntimeContext,
  SlidingEventTimeWindows,
  type TimeWindow,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { bidsOf, countAll, type Event, eventsFromEnv } from './generator.js';

/** A hot item: an auction with the most bids in a window. */
export interface Q5Result {
  auction: number;
  /** Its number of bids in the window (the window's maximum). */
  num: number;
  windowStart: number;
  windowEnd: number;
}

/** Window size of q5 (ms). */
export const Q5_SIZE_MS = 10_000;
/** Window slide of q5 (ms). */
export const Q5_SLIDE_MS = 2_000;

interface Hottest {
  num: number;
  auctions: number[];
}

/** Keyed by window end: keeps the window's highest count and its auctions; emits them at the end. */
class HotItems extends KeyedProcessFunction<number, Q5Result, Q5Result> {
  private hottest!: ValueState<Hottest>;
  override open(ctx: RuntimeContext): void {
    this.hottest = ctx.getState(new ValueStateDescriptor<Hottest>('hottest'));
  }
  processElement(c: Q5Result, ctx: KeyedProcessContext<number>, _out: Collector<Q5Result>): void {
    const h = this.hottest.value();
    if (h === undefined) {
      this.hottest.update({ num: c.num, auctions: [c.auction] });
      // Counts carry the window's maxTimestamp (end - 1): fire once the watermark passes it.
      ctx.timerService().registerEventTimeTimer(c.windowEnd - 1);
    } else if (c.num > h.num) {
      h.num = c.num;
      h.auctions = [c.auction];
      this.hottest.update(h);
    } else if (c.num === h.num) {
      h.auctions.push(c.auction);
      this.hottest.update(h);
    }
  }
  override onTimer(_timestamp: number, ctx: OnTimerContext<number>, out: Collector<Q5Result>): void {
    const h = this.hottest.value();
    if (h === undefined) return;
    const windowEnd = ctx.getCurrentKey();
    for (const auction of h.auctions)
      out.collect({ auction, num: h.num, windowStart: windowEnd - Q5_SIZE_MS, windowEnd });
    this.hottest.clear();
  }
}

/** Bids per auction in every sliding window. */
export function bidCounts(events: DataStream<Event>): DataStream<Q5Result> {
  // Only the auction is needed (the timestamp travels with the record): projected before the
  // shuffle, as Flink's planner does for the SQL query, so less crosses between slots.
  return bidsOf(events)
    .map((b) => b.auction)
    .name('q5: auction of the bid')
    .keyBy((auction) => auction)
    .window(SlidingEventTimeWindows.of(Q5_SIZE_MS, Q5_SLIDE_MS))
    .aggregate(
      countAll,
      (auction: number, w: TimeWindow, counts: Iterable<number>, out: Collector<Q5Result>) => {
        for (const num of counts) out.collect({ auction, num, windowStart: w.start, windowEnd: w.end });
      },
    )
    .name('q5: bids per auction and window')
    .uid('q5-counts');
}

/**
 * q5: the auctions whose bid count in a sliding window (10 s, every 2 s) is the window's
 * highest (Flink's q5, with the window's bounds).
 */
export function build(events: DataStream<Event>): DataStream<Q5Result> {
  return bidCounts(events)
    .keyBy((c) => c.windowEnd)
    .process(new HotItems())
    .name('q5: hottest per window')
    .uid('q5-hottest');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q5');
  },
  { name: 'nexmark-q5' },
);
