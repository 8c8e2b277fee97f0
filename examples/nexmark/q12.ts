// Nexmark q12: processing-time windows — the number of bids of each bidder in tumbling windows of
// 10 s of processing time (the time at which the window operator sees the bid).
//
// NOTE: as in Flink's streaming mode, processing-time windows still open when a bounded input
// ends are not fired: a run shorter than the window prints only the windows it saw close. Give
// it a rate and enough events (e.g. NEXMARK_RATE=10000 NEXMARK_EVENTS=300000, 30 s) or run it
// unbounded (NEXMARK_EVENTS=0) to see every window.
//
// Run it with:  npx tidemark run examples/nexmark/q12.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import {
  type Collector,
  type DataStream,
  job,
  type TimeWindow,
  TumblingProcessingTimeWindows,
} from 'tidemark';
import { bidsOf, countAll, type Event, eventsFromEnv } from './generator.js';

/** Bids of one bidder in one processing-time window (Flink's q12 columns). */
export interface Q12Result {
  bidder: number;
  bidCount: number;
  starttime: number;
  endtime: number;
}

/** Window size of q12 (ms of processing time). */
export const Q12_SIZE_MS = 10_000;

/** q12: bids per bidder in 10 s tumbling windows of processing time. */
export function build(events: DataStream<Event>): DataStream<Q12Result> {
  return bidsOf(events)
    .keyBy((b) => b.bidder)
    .window(TumblingProcessingTimeWindows.of(Q12_SIZE_MS))
    .aggregate(
      countAll,
      (bidder: number, w: TimeWindow, counts: Iterable<number>, out: Collector<Q12Result>) => {
        for (const bidCount of counts) out.collect({ bidder, bidCount, starttime: w.start, endtime: w.end });
      },
    )
    .name('q12: bids per processing-time window')
    .uid('q12-windows');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q12');
  },
  { name: 'nexmark-q12' },
);
