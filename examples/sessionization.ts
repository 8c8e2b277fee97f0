// Sessionization: click events grouped into per-user sessions with event-time session windows.
//
// A session is a run of a user's clicks with no gap of more than 30 s between them. Clicks arrive
// slightly out of order (watermarks trail the largest time seen by 2 s); a few arrive very late,
// after their session was already emitted: they go to a late-data side output instead of being
// silently dropped. Each session is emitted once, when the watermark passes its end, with its
// start, end, number of clicks and pages.
//
// Run it with:  npx tidemark run examples/sessionization.ts --parallelism 2
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  EventTimeSessionWindows,
  job,
  OutputTag,
  type ProcessWindowContext,
  ProcessWindowFunction,
  type TimeWindow,
  WatermarkStrategy,
} from 'tidemark';

/** One click. */
export interface Click {
  user: string;
  page: string;
  time: number;
}

/** One session of a user. */
export interface Session {
  user: string;
  start: number;
  end: number;
  clicks: number;
  pages: number;
}

export const GAP_MS = 30_000;
export const OUT_OF_ORDER_MS = 2_000;
export const USERS = 20;
/** Number of clicks the job generates (override with CLICKS=n). */
export const COUNT = Number(process.env.CLICKS ?? 50_000);
const START = Date.UTC(2026, 0, 1);

function mix(i: number): number {
  let x = Math.imul(i ^ (i >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * Click `i`: one every 100 ms of event time. In each minute four users are active (a different
 * four every minute), so each user's clicks come in one-minute bursts: sessions. Clicks are
 * shuffled by less than the 2 s out-of-orderness bound; one in 500 is a straggler from 5 minutes
 * earlier, which is always late.
 */
export function click(i: number): Click {
  const x = mix(i);
  const slot = Math.floor((i * 100) / 60_000);
  const user = `u${(slot * 7 + (x % 4)) % USERS}`;
  const time = START + i * 100 + ((x >>> 8) % (OUT_OF_ORDER_MS - 1));
  const straggler = (x >>> 4) % 500 === 0 && i > 3_000;
  return { user, page: `/p${(x >>> 12) % 9}`, time: straggler ? time - 300_000 : time };
}

/** Late clicks: those that arrived after their session was emitted. */
export const lateClicks = new OutputTag<Click>('late-clicks');

interface Acc {
  clicks: number;
  pages: Set<string>;
}

const countClicks: AggregateFunction<Click, Acc, Acc> = {
  createAccumulator: () => ({ clicks: 0, pages: new Set() }),
  add: (c, acc) => {
    acc.clicks++;
    acc.pages.add(c.page);
    return acc;
  },
  getResult: (acc) => acc,
  merge: (a, b) => ({ clicks: a.clicks + b.clicks, pages: new Set([...a.pages, ...b.pages]) }),
};

/** Adds the user and the session's bounds to the aggregate. */
class ToSession extends ProcessWindowFunction<Acc, Session, string, TimeWindow> {
  process(
    user: string,
    ctx: ProcessWindowContext<TimeWindow>,
    aggregates: Iterable<Acc>,
    out: Collector<Session>,
  ): void {
    for (const a of aggregates)
      out.collect({
        user,
        start: ctx.window.start,
        end: ctx.window.end,
        clicks: a.clicks,
        pages: a.pages.size,
      });
  }
}

/** The pipeline: sessions per user, and the clicks that came too late for theirs. */
export function sessionize(clicks: DataStream<Click>): {
  sessions: DataStream<Session>;
  late: DataStream<Click>;
} {
  const sessions = clicks
    .keyBy((c) => c.user)
    .window(EventTimeSessionWindows.withGap(GAP_MS))
    .sideOutputLateData(lateClicks)
    .aggregate(countClicks, new ToSession())
    .name('sessions')
    .uid('sessions');
  return { sessions, late: sessions.getSideOutput(lateClicks) };
}

export default job(
  (env) => {
    const clicks = env
      .fromGenerator(click, {
        count: COUNT,
        // Per-event watermarks keep the run deterministic (periodic ones depend on the wall clock).
        watermarks: WatermarkStrategy.forGenerator<Click>(() => {
          let max = Number.NEGATIVE_INFINITY;
          return {
            onEvent: (_c, ts, out) => {
              if (ts > max) {
                max = ts;
                out.emitWatermark(max - OUT_OF_ORDER_MS - 1);
              }
            },
            onPeriodicEmit: () => {},
          };
        }).withTimestampAssigner((c) => c.time),
      })
      .name('clicks')
      .setParallelism(1);
    const { sessions, late } = sessionize(clicks);
    sessions.print('session');
    late.print('late');
    // At the end: the number of sessions per user, as one JSON object.
    sessions
      .map((s) => ({ user: s.user, n: 1 }))
      .keyBy((s) => s.user)
      .reduce((a, b) => ({ user: a.user, n: a.n + b.n }))
      .printSummary(
        (s) => s.user,
        (s) => s.n,
      );
  },
  { name: 'sessionization', parallelism: 2 },
);
