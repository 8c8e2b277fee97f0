// Nexmark q7: highest bid — in every tumbling window of 10 s, the bid(s) with the highest price.
//
// How it runs, in two phases (as Beam's `Max.globally().withFanout(...)` and Flink's local/global
// aggregation): the bids are spread over 16 shards (by price modulo 16); per shard and window an
// incremental aggregate keeps the highest price and the bids that carry it (so the "join back" to
// the bids is free: they are in the accumulator); these partial results then meet, keyed by the
// window's end, in a keyed process function that keeps the overall highest and emits its bids
// when the watermark passes the window's end.
//
// NOTE: sharding by a well-spread field rather than by auction: per auction, every (auction,
// window) pair would cost its own window state and timer (measured 3.5 times slower), and the
// hot auction (half of all bids) would load one shard; prices spread evenly.
//
// Run it with:  npx tidemark run examples/nexmark/q7.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  job,
  type KeyedProcessContext,
  KeyedProcessFunction,
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
};

/** Keyed by window end: merges the shards' highest bids; emits the overall highest at the end. */
class HighestOfWindow extends KeyedProcessFunction<number, HighestBids, Q7Result> {
  private best!: ValueState<HighestBids>;
  override open(ctx: RuntimeContext): void {
    this.best = ctx.getState(new ValueStateDescriptor<HighestBids>('highest'));
  }
  processElement(h: HighestBids, ctx: KeyedProcessContext<number>, _out: Collector<Q7Result>): void {
    const best = this.best.value();
    if (best === undefined) {
      this.best.update({ price: h.price, bids: h.bids.slice(), windowEnd: h.windowEnd });
      ctx.timerService().registerEventTimeTimer(h.windowEnd - 1);
    } else if (h.price >= best.price) {
      for (const b of h.bids) keepHighest(best, b);
      this.best.update(best);
    }
  }
  override onTimer(_timestamp: number, _ctx: OnTimerContext<number>, out: Collector<Q7Result>): void {
    const best = this.best.value();
    if (best === undefined) return;
    for (const b of best.bids)
      out.collect({
        auction: b.auction,
        price: b.price,
        bidder: b.bidder,
        dateTime: b.dateTime,
        extra: b.extra,
      });
    this.best.clear();
  }
}

/** q7: the highest bid(s) of every 10 s tumbling window. */
export function build(events: DataStream<Event>): DataStream<Q7Result> {
  return bidsOf(events)
    .keyBy((b) => b.price % Q7_FANOUT)
    .window(TumblingEventTimeWindows.of(Q7_SIZE_MS))
    .aggregate(
      highest,
      (_shard: number, w: TimeWindow, hs: Iterable<HighestBids>, out: Collector<HighestBids>) => {
        for (const h of hs) out.collect({ price: h.price, bids: h.bids, windowEnd: w.end });
      },
    )
    .name('q7: highest bid per shard and window')
    .uid('q7-partial')
    .keyBy((h) => h.windowEnd)
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
