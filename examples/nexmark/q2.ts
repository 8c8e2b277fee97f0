// Nexmark q2: selection — the bids on every 123rd auction, projected to (auction, price).
//
// Run it with:  npx tidemark run examples/nexmark/q2.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import { type DataStream, job } from 'tidemark';
import { bidsOf, type Event, eventsFromEnv } from './generator.js';

/** The columns of q2. */
export interface Q2Result {
  auction: number;
  price: number;
}

/** q2 selects the auctions whose id is a multiple of this. */
export const AUCTION_MODULUS = 123;

/** q2: `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`. */
export function build(events: DataStream<Event>): DataStream<Q2Result> {
  return bidsOf(events)
    .filter((b) => b.auction % AUCTION_MODULUS === 0)
    .name('q2: every 123rd auction')
    .map((b): Q2Result => ({ auction: b.auction, price: b.price }))
    .name('q2: project');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q2');
  },
  { name: 'nexmark-q2' },
);
