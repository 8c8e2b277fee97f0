// Nexmark q7: highest bid — for every tumbling window of 10 s, the bids at the window's highest
// price, as Flink's q7.sql computes them: the maximum price of each window [start, end) that has
// bids is joined back to the bids with `dateTime BETWEEN end - 10 s AND end`, both ends inclusive.
// So a window reports its own bids at its highest price and also the bids at exactly `end` (which
// belong to the next window) at that price; a bid at exactly a window boundary is reported twice
// when it carries the highest price both of the window it ends and of its own. A window without
// bids has no maximum and reports nothing, not even bids at its end.
//
// How it runs, in two phases (as Beam's `Max.globally().withFanout(...)` and Flink's local/global
// aggregation): the bids are spread over 16 shards (by price modulo 16); per shard and window an
// incremental aggregate keeps the highest price and the bids that carry it (so the join back to
// the window's own bids is free: they are in the accumulator). The bids at exactly a window
// boundary also take a side branch, keyed by that boundary (the end of the window before theirs).
// Both meet, keyed by the window's end, in a keyed co-process function that merges the shards'
// partial results into the window's highest price and its bids, keeps the bids at the window's end
// that could still match, and emits the matching bids once the watermark reaches the window's end.
//
// The first phase is pre-aggregated (`preAggregate()`, with `merge` on its accumulator): each
// source subtask keeps the highest bids of each shard and window and sends one partial per shard
// and window, so only those cross to the shard's window subtask, not every bid (same results;
// measured 1.5 to 2.1 times the events per core-second on one slot, 3 to 11 times the events/s
// on two slots after start-up; README's benchmark section has the runs).
//
// NOTE: sharding by a well-spread field rather than by auction: per auction, every (auction,
// window) pair would cost its own window state and timer (measured 3.5 times slower), and the
// hot auction (half of all bids) would load one shard; prices spread evenly.
//
// NOTE: the second phase fires at watermark >= end, not at the window's maxTimestamp (end - 1) as
// the first does: a bid at exactly `end` is on time until the watermark reaches `end`, so only then
// have they all arrived. Results carry the timestamp `end` (the timer's, and the SQL's
// `B1.dateTime`): by then the operator may have forwarded watermark `end - 1`, after which a
// result at `end - 1` would be late downstream. A bid at a boundary that comes once the watermark
// has reached it is late for the window it ends and is dropped from that join (as the first phase
// drops bids late for their own window); the SQL's regular join would still match it.
//
// Run it with:  npx tidemark run examples/nexmark/q7.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  job,
  KeyedCoProcessFunction,
  type KeyedProcessContext,
  type OnTimerContext,
  type RuntimeContext,
  type TimeWindow,
  TumblingEventTimeWindows,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { type Bid, bidsOf, type Event, eventsFromEnv } from './generator.js';

/** A highest bid of a window (Flink's q7 columns). */
export interface Q7Result {
  auction: number;
  price: number;
  bidder: number;
  dateTime: number;
  extra: string;
}

/** Window size of q7 (ms). */
export const Q7_SIZE_MS = 10_000;
/** Shards of q7's first phase. */
export const Q7_FANOUT = 16;

/** The highest price of a group of bids and the bids that carry it. */
export interface HighestBids {
  price: number;
  bids: Bid[];
  windowEnd: number;
}

/** True if `t` is a window boundary: the start of its window and the end of the one before. */
function atWindowBoundary(t: number): boolean {
  // NOTE: not `t % Q7_SIZE_MS === 0`: epoch-millisecond times are not small integers, so `%` is a
  // floating-point modulo (about four times slower here, and this runs for every bid). This is
  // exact for every safe integer: for a multiple the quotient is exact; otherwise the product is a
  // multiple of the size whatever the quotient's rounding, so it is not `t`.
  return Math.floor(t / Q7_SIZE_MS) * Q7_SIZE_MS === t;
}

function keepHighest(acc: HighestBids, b: Bid): HighestBids {
  if (b.price > acc.price) {
    acc.price = b.price;
    acc.bids = [b];
  } else if (b.price === acc.price) acc.bids.push(b);
  return acc;
}

const highest: AggregateFunction<Bid, HighestBids, HighestBids> = {
  createAccumulator: () => ({ price: -1, bids: [], windowEnd: 0 }),
  add: (b, acc) => keepHighest(acc, b),
  getResult: (acc) => acc,
  merge: (a, b) => {
    if (b.price > a.price) return b;
    if (b.price === a.price) for (const bid of b.bids) a.bids.push(bid);
    return a;
  },
};

/** What the second phase keeps of one window. */
interface WindowBids {
  /** The window's highest price so far (-1 until a shard's partial result came). */
  price: number;
  /** The window's own bids at that price. */
  bids: Bid[];
  /** Bids at exactly the window's end, at a price not below `price` when they came. */
  atEnd: Bid[];
}

const toResult = (b: Bid): Q7Result => ({
  auction: b.auction,
  price: b.price,
  bidder: b.bidder,
  dateTime: b.dateTime,
  extra: b.extra,
});

/**
 * Keyed by window end: merges the shards' highest bids (input 1) and keeps the bids at exactly the
 * window's end (input 2); when the watermark reaches the end, emits the window's bids at its
 * highest price and the bids at its end at the same price.
 */
class HighestOfWindow extends KeyedCoProcessFunction<number, HighestBids, Bid, Q7Result> {
  private window!: ValueState<WindowBids>;
  override open(ctx: RuntimeContext): void {
    this.window = ctx.getState(new ValueStateDescriptor<WindowBids>('window-bids'));
  }

  private current(end: number, ctx: KeyedProcessContext<number>): WindowBids {
    const w = this.window.value();
    if (w !== undefined) return w;
    ctx.timerService().registerEventTimeTimer(end);
    return { price: -1, bids: [], atEnd: [] };
  }

  processElement1(h: HighestBids, ctx: KeyedProcessContext<number>, _out: Collector<Q7Result>): void {
    const w = this.current(h.windowEnd, ctx);
    if (h.price > w.price) {
      w.price = h.price;
      w.bids = h.bids.slice();
    } else if (h.price === w.price) for (const b of h.bids) w.bids.push(b);
    this.window.update(w);
  }

  processElement2(b: Bid, ctx: KeyedProcessContext<number>, _out: Collector<Q7Result>): void {
    // Late for the window it ends: that window has been emitted already.
    if (b.dateTime <= ctx.timerService().currentWatermark()) return;
    const w = this.current(b.dateTime, ctx);
    // The highest price only grows: a bid below it now can never match.
    if (b.price < w.price) return;
    w.atEnd.push(b);
    this.window.update(w);
  }

  override onTimer(_timestamp: number, _ctx: OnTimerContext<number>, out: Collector<Q7Result>): void {
    const w = this.window.value();
    if (w === undefined) return;
    // No shard reported: the window had no bids, so no maximum to join the bids at its end with.
    if (w.bids.length > 0) {
      for (const b of w.bids) out.collect(toResult(b));
      for (const b of w.atEnd) if (b.price === w.price) out.collect(toResult(b));
    }
    this.window.clear();
  }
}

/** q7: the bids at the highest price of every 10 s tumbling window, bids at its end included. */
export function build(events: DataStream<Event>): DataStream<Q7Result> {
  const bids = bidsOf(events);
  const partial = bids
    .keyBy((b) => b.price % Q7_FANOUT)
    .window(TumblingEventTimeWindows.of(Q7_SIZE_MS))
    .preAggregate()
    .aggregate(
      highest,
      (_shard: number, w: TimeWindow, hs: Iterable<HighestBids>, out: Collector<HighestBids>) => {
        for (const h of hs) out.collect({ price: h.price, bids: h.bids, windowEnd: w.end });
      },
    )
    .name('q7: highest bid per shard and window')
    .uid('q7-partial');
  const atBoundary = bids.filter((b) => atWindowBoundary(b.dateTime)).name('q7: bids at a window boundary');
  return partial
    .keyBy((h) => h.windowEnd)
    .connect(atBoundary.keyBy((b) => b.dateTime))
    .process(new HighestOfWindow())
    .name('q7: highest bid per window')
    .uid('q7-highest');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q7');
  },
  { name: 'nexmark-q7' },
);
