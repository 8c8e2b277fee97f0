// Nexmark q4: average closing price per category.
//
// An auction's closing price is its highest bid between its start and its expiry (both
// inclusive, as Flink's `B.dateTime BETWEEN A.dateTime AND A.expires`); q4 averages the closing
// prices of each category's auctions. Auctions without such a bid have no closing price.
//
// How it runs: auctions and bids meet, keyed by auction id, in a keyed co-process function that
// keeps the auction and its highest qualifying bid so far; when the watermark passes the
// auction's expiry (an event-time timer) it emits the closing price and forgets the auction. A
// rolling aggregate per category then emits the updated average for every closed auction (an
// updating result, as Flink's; the last update per category is the answer). The intermediate
// updates depend on the order in which a category's auctions close on different subtasks (so
// `tidemark simulate` sees several outputs); the final averages, printed last, do not.
//
// NOTE: Flink's SQL keeps every auction and bid in its join state forever and retracts and
// re-emits averages as bids come in. Closing at `expires` gives the same final averages with
// bounded state: a bid later than its auction's expiry can never count, and a bid that arrives
// before its auction (bids may name auctions up to 10 ahead, and parallel channels interleave)
// waits until the watermark passes its own time, after which its auction could only start later.
//
// NOTE: the average is a JavaScript number (a double). Flink's `AVG` over q4.sql's BIGINT prices is
// a BIGINT (the sum divided by the count, truncated); `auctions` is a column of our own.
//
// Run it with:  npx tidemark run examples/nexmark/q4.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  job,
  KeyedCoProcessFunction,
  type KeyedProcessContext,
  type ListState,
  ListStateDescriptor,
  type OnTimerContext,
  type RuntimeContext,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { type Auction, auctionsOf, type Bid, bidsOf, type Event, eventsFromEnv } from './generator.js';

/** The closing price of one auction. */
export interface ClosingPrice {
  auction: number;
  category: number;
  price: number;
}

/** The average closing price of a category so far. */
export interface Q4Result {
  category: number;
  average: number;
  /** Number of closed auctions (with a closing price) averaged. */
  auctions: number;
}

/** How long (ms of event time) a closed auction is remembered, so that its late bids are ignored at once. */
export const CLOSED_AUCTION_RETENTION_MS = 10_000;

interface OpenAuction {
  category: number;
  start: number;
  expires: number;
  /** Highest qualifying bid so far (-1: none). */
  price: number;
  closed: boolean;
}

interface EarlyBid {
  dateTime: number;
  price: number;
}

/** Keyed by auction id: auctions (input 1) and their bids (input 2); emits closing prices. */
class CloseAuctions extends KeyedCoProcessFunction<number, Auction, Bid, ClosingPrice> {
  private auction!: ValueState<OpenAuction>;
  private early!: ListState<EarlyBid>;
  override open(ctx: RuntimeContext): void {
    this.auction = ctx.getState(new ValueStateDescriptor<OpenAuction>('auction'));
    this.early = ctx.getListState(new ListStateDescriptor<EarlyBid>('bids-before-auction'));
  }

  processElement1(a: Auction, ctx: KeyedProcessContext<number>, _out: Collector<ClosingPrice>): void {
    let price = -1;
    const early = this.early.get();
    if (early.length > 0) {
      for (const b of early)
        if (b.dateTime >= a.dateTime && b.dateTime <= a.expires && b.price > price) price = b.price;
      this.early.clear();
    }
    this.auction.update({
      category: a.category,
      start: a.dateTime,
      expires: a.expires,
      price,
      closed: false,
    });
    ctx.timerService().registerEventTimeTimer(a.expires);
  }

  processElement2(b: Bid, ctx: KeyedProcessContext<number>, _out: Collector<ClosingPrice>): void {
    const a = this.auction.value();
    if (a === undefined) {
      // Its auction has not arrived (yet): keep the bid until the watermark passes its time.
      // NOTE: one cleanup timer per auction at a time (at its earliest waiting bid), not one per bid.
      if (this.early.get().length === 0) ctx.timerService().registerEventTimeTimer(b.dateTime);
      this.early.add({ dateTime: b.dateTime, price: b.price });
    } else if (!a.closed && b.dateTime >= a.start && b.dateTime <= a.expires && b.price > a.price) {
      a.price = b.price;
      this.auction.update(a);
    }
  }

  override onTimer(timestamp: number, ctx: OnTimerContext<number>, out: Collector<ClosingPrice>): void {
    const a = this.auction.value();
    if (a === undefined) {
      // Bids that came before an auction that has not come: those up to now can never count.
      const keep = this.early.get().filter((b) => b.dateTime > timestamp);
      if (keep.length === 0) this.early.clear();
      else {
        this.early.update(keep);
        ctx.timerService().registerEventTimeTimer(Math.min(...keep.map((b) => b.dateTime)));
      }
      return;
    }
    if (a.closed) {
      if (timestamp >= a.expires + CLOSED_AUCTION_RETENTION_MS) this.auction.clear();
      return;
    }
    if (timestamp < a.expires) return;
    if (a.price >= 0) out.collect({ auction: ctx.getCurrentKey(), category: a.category, price: a.price });
    // Remembered a while as closed, so that its later bids are dropped without being kept.
    a.closed = true;
    this.auction.update(a);
    ctx.timerService().registerEventTimeTimer(a.expires + CLOSED_AUCTION_RETENTION_MS);
  }
}

interface Average {
  category: number;
  sum: number;
  count: number;
}

const average: AggregateFunction<ClosingPrice, Average, Q4Result> = {
  createAccumulator: () => ({ category: 0, sum: 0, count: 0 }),
  add: (c, acc) => {
    acc.category = c.category;
    acc.sum += c.price;
    acc.count++;
    return acc;
  },
  getResult: (acc) => ({ category: acc.category, average: acc.sum / acc.count, auctions: acc.count }),
};

/** The closing price of every auction that had a qualifying bid. */
export function closingPrices(events: DataStream<Event>): DataStream<ClosingPrice> {
  return auctionsOf(events)
    .keyBy((a) => a.id)
    .connect(bidsOf(events).keyBy((b) => b.auction))
    .process(new CloseAuctions())
    .name('q4: closing prices')
    .uid('q4-closing-prices');
}

/**
 * q4: `SELECT category, AVG(final) FROM (SELECT MAX(B.price) AS final, A.category FROM auction A,
 * bid B WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires GROUP BY A.id,
 * A.category) GROUP BY category` — an update per closed auction.
 */
export function build(events: DataStream<Event>): DataStream<Q4Result> {
  return closingPrices(events)
    .keyBy((c) => c.category)
    .aggregate(average)
    .name('q4: average per category')
    .uid('q4-average');
}

export default job(
  (env) => {
    const averages = build(eventsFromEnv(env));
    averages.print('q4');
    // At the end: the final average per category, as one JSON object.
    averages.printSummary(
      (r) => r.category,
      (r) => r.average,
    );
  },
  { name: 'nexmark-q4' },
);
