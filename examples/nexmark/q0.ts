// Nexmark q0: pass every bid through (the cost of the source, the filter and the sink alone).
// The bid record goes on whole, where q0.sql selects five of its columns.
//
// Run it with:  npx tidemark run examples/nexmark/q0.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import { type DataStream, job } from 'tidemark';
import { type Bid, bidsOf, type Event, eventsFromEnv } from './generator.js';

/** q0: every bid, unchanged. */
export function build(events: DataStream<Event>): DataStream<Bid> {
  return bidsOf(events);
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q0');
  },
  { name: 'nexmark-q0' },
);
