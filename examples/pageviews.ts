// The demo behind `npm start`: a stream of page views, counted per user.
//
// A parallel generator emits page views (user, page, time on page) as fast as it can; views of
// the admin pages are filtered out; the rest are keyed by user, and a rolling aggregate keeps, per
// user, the number of views, distinct pages and total time. A sink at parallelism 1 keeps the
// latest figures per user and, when the input ends, prints the ten most active users.
//
// Run it with:  npx tidemark run examples/pageviews.ts --parallelism 2 --progress
// `npm start` also checkpoints every second (to .tidemark/checkpoints), paces the page views at
// 50,000 a second (about three and a half minutes) and serves the dashboard at
// http://127.0.0.1:8081/; interrupt it with Ctrl-C and `npm start -- --restore latest` resumes
// where the last checkpoint left off.
import {
  type AggregateFunction,
  job,
  type ListState,
  ListStateDescriptor,
  type SinkFunction,
} from 'tidemark';

/** One page view. */
export interface PageView {
  user: string;
  page: string;
  millisOnPage: number;
}

/** The per-user figures the job maintains. */
export interface UserActivity {
  user: string;
  views: number;
  distinctPages: number;
  totalSeconds: number;
}

export const USERS = 5_000;
const PAGES = ['/', '/search', '/cart', '/checkout', '/help', '/account', '/admin', '/admin/users'];

/** A deterministic pseudo-random page view for index `i` (a hash of `i`, no shared state). */
export function pageView(i: number): PageView {
  let x = Math.imul(i ^ (i >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  x = (x ^ (x >>> 16)) >>> 0;
  // Skewed users: low ids are much more active.
  const u = Math.floor(((x >>> 8) / 2 ** 24) ** 3 * USERS);
  return { user: `user-${u}`, page: PAGES[x % PAGES.length]!, millisOnPage: 500 + ((x >>> 3) % 60_000) };
}

interface Acc {
  user: string;
  views: number;
  pages: number; // bit set of pages seen
  millis: number;
}

const activity: AggregateFunction<PageView, Acc, UserActivity> = {
  createAccumulator: () => ({ user: '', views: 0, pages: 0, millis: 0 }),
  add: (v, acc) => {
    acc.user = v.user;
    acc.views++;
    acc.pages |= 1 << PAGES.indexOf(v.page);
    acc.millis += v.millisOnPage;
    return acc;
  },
  getResult: (acc) => ({
    user: acc.user,
    views: acc.views,
    distinctPages: popcount(acc.pages),
    totalSeconds: Math.round(acc.millis / 1000),
  }),
};

function popcount(x: number): number {
  let n = 0;
  for (; x !== 0; x &= x - 1) n++;
  return n;
}

/**
 * Keeps the latest activity per user; prints the top ten when the input ends. What it keeps is
 * checkpointed (operator state), so a restored run prints the same top ten.
 */
function topUsers(n: number): SinkFunction<UserActivity> {
  const latest = new Map<string, UserActivity>();
  let stored: ListState<UserActivity>;
  return {
    open: (ctx) => {
      stored = ctx.getOperatorListState(new ListStateDescriptor<UserActivity>('latest-per-user'));
      for (const a of stored.get()) latest.set(a.user, a);
    },
    snapshotState: () => stored.update(latest.values()),
    invoke: (a) => {
      latest.set(a.user, a);
    },
    finish: () => {
      const top = [...latest.values()]
        .sort((a, b) => b.views - a.views || a.user.localeCompare(b.user))
        .slice(0, n);
      console.log(`users seen: ${latest.size}; top ${n} by views:`);
      for (const a of top)
        console.log(
          `  ${a.user.padEnd(10)} ${String(a.views).padStart(7)} views  ${a.distinctPages} pages  ${a.totalSeconds} s`,
        );
    },
  };
}

/** Number of page views the demo generates (override with PAGEVIEWS=n). */
export const COUNT = Number(process.env.PAGEVIEWS ?? 10_000_000);
/**
 * Page views per second over all subtasks (PAGEVIEWS_PER_SECOND=n); unset or 0: as fast as
 * possible. `npm start` sets 50,000 (examples/pageviews.env), so that the demo lasts long enough
 * to watch in the dashboard.
 */
export const PER_SECOND = Number(process.env.PAGEVIEWS_PER_SECOND ?? 0);

export default job(
  (env) => {
    env
      .fromGenerator(pageView, { count: COUNT, ...(PER_SECOND > 0 ? { ratePerSecond: PER_SECOND } : {}) })
      .name('page views')
      .uid('page-views')
      .filter((v) => !v.page.startsWith('/admin'))
      .name('drop admin pages')
      .keyBy((v) => v.user)
      .aggregate(activity)
      .name('activity per user')
      .uid('activity')
      .addSink(topUsers(10))
      .name('top users')
      .uid('top-users')
      .setParallelism(1);
  },
  { name: 'pageviews', parallelism: 2 },
);
