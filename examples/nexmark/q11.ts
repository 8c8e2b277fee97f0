// Nexmark q11: user sessions — the number of bids of each bidder per session, where a session
// ends after 10 s without a bid (event-time session windows).
//
// Run it with:  npx tidemark run examples/nexmark/q11.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import { type Collector, type DataStream, EventTimeSessionWindows, job, type TimeWindow } from 'tidemark';
import { bidsOf, countAll, type Event, eventsFromEnv } from './generator.js';

/** Bids of one bidder in one session (Flink's q11 columns). */
export interface Q11Result {
  bidder: number;
  bidCount: number;
  starttime: number;
  endtime: number;
}

/** Session gap of q11 (ms). */
export const Q11_GAP_MS = 10_000;

/** q11: bids per bidder and session (gap 10 s). */
export function build(events: DataStream<Event>): DataStream<Q11Result> {
  return bidsOf(events)
    .keyBy((b) => b.bidder)
    .window(EventTimeSessionWindows.withGap(Q11_GAP_MS))
    .aggregate(
      countAll,
      (bidder: number, w: TimeWindow, counts: Iterable<number>, out: Collector<Q11Result>) => {
        for (const bidCount of counts) out.collect({ bidder, bidCount, starttime: w.start, endtime: w.end });
      },
    )
    .name('q11: bids per session')
    .uid('q11-sessions');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q11');
  },
  { name: 'nexmark-q11' },
);
