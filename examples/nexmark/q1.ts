// Nexmark q1: currency conversion — every bid with its price in euros (`price * 0.908`).
//
// NOTE: the euro price is a JavaScript number (a double), where q1.sql's is a DECIMAL(23, 3):
// `0.908 * price` may differ from the exact product in its last binary digits.
//
// Run it with:  npx tidemark run examples/nexmark/q1.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import { type DataStream, job } from 'tidemark';
import { bidsOf, type Event, eventsFromEnv } from './generator.js';

/** A bid with its price converted (Flink's q1 columns). */
export interface Q1Result {
  auction: number;
  bidder: number;
  price: number;
  dateTime: number;
  extra: string;
}

/** The exchange rate of q1. */
export const DOLLAR_TO_EURO = 0.908;

/** q1: `SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid`. */
export function build(events: DataStream<Event>): DataStream<Q1Result> {
  return bidsOf(events)
    .map(
      (b): Q1Result => ({
        auction: b.auction,
        bidder: b.bidder,
        price: DOLLAR_TO_EURO * b.price,
        dateTime: b.dateTime,
        extra: b.extra,
      }),
    )
    .name('q1: to euros');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q1');
  },
  { name: 'nexmark-q1' },
);
