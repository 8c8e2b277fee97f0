// The Nexmark generator (examples/nexmark/generator.ts): the distributions NEXMARK.md asks for,
// determinism per seed, and the parallel source: any split assignment generates the same events,
// positions survive a snapshot, and the rate limit paces events by their number.
import {
  END_OF_INPUT,
  type InputStatus,
  ManualClock,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type SourceReader,
  type SourceReaderContext,
  StreamExecutionEnvironment,
} from 'tidemark';
import { describe, expect, test } from 'vitest';
import {
  type Auction,
  type Bid,
  DEFAULT_CONFIG,
  EVENTS_FOR_IN_FLIGHT_AUCTIONS,
  type Event,
  eventTimestamp,
  HOT_CHANNELS,
  lastBase0AuctionId,
  lastBase0PersonId,
  NexmarkSource,
  type NexmarkSplit,
  nexmarkConfig,
  nexmarkEvent,
  nexmarkStream,
  type Person,
} from '../../examples/nexmark/generator.js';
import { canonicalJson, generateEvents } from '../helpers/nexmark-reference.js';

const N = 100_000;
const events = generateEvents(N);
const bids = events.filter((e): e is Bid => e.kind === 'bid');
const auctions = events.filter((e): e is Auction => e.kind === 'auction');
const persons = events.filter((e): e is Person => e.kind === 'person');

/** The share of `xs` for which `p` holds. */
function share<T>(xs: readonly T[], p: (x: T) => boolean): number {
  return xs.filter(p).length / xs.length;
}

/** The estimated size of a record: 8 bytes per number, one per character (as Flink counts). */
function size(e: Event): number {
  let n = 0;
  for (const [k, v] of Object.entries(e))
    if (k !== 'kind') n += typeof v === 'number' ? 8 : (v as string).length;
  return n;
}

const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

describe('Nexmark generator', () => {
  test('event kinds come from eventId % 50: one person, three auctions, then 46 bids', () => {
    const wrong = events.filter(
      (e, n) => e.kind !== (n % 50 < 1 ? 'person' : n % 50 < 4 ? 'auction' : 'bid'),
    );
    expect(wrong).toEqual([]);
    expect([persons.length, auctions.length, bids.length]).toEqual([N / 50, (N / 50) * 3, (N / 50) * 46]);
  });

  test('ids come from the event number; bids and sellers refer to recent (or up to 10 future) ids', () => {
    const wrong: string[] = [];
    const check = (ok: boolean, n: number, what: string) => {
      if (!ok) wrong.push(`event ${n}: ${what}`);
    };
    events.forEach((e, n) => {
      const epoch = Math.floor(n / 50);
      const lastPerson = lastBase0PersonId(n);
      const lastAuction = lastBase0AuctionId(n);
      if (e.kind === 'person') check(e.id === 1000 + epoch, n, 'person id');
      if (e.kind === 'auction') {
        check(e.id === 1000 + epoch * 3 + (n % 50) - 1, n, 'auction id');
        check(e.seller - 1000 <= lastPerson + 10 && e.seller >= 1000, n, 'seller');
        check(e.category >= 10 && e.category < 15, n, 'category');
      }
      if (e.kind === 'bid') {
        check(
          e.auction - 1000 <= lastAuction + 10 && e.auction - 1000 >= Math.max(0, lastAuction - 100),
          n,
          'auction',
        );
        check(
          e.bidder - 1000 <= lastPerson + 10 && e.bidder - 1000 >= Math.max(0, lastPerson - 999),
          n,
          'bidder',
        );
      }
    });
    expect(wrong).toEqual([]);
  });

  test('hot auctions, bidders, sellers and channels have the stated probabilities', () => {
    let hotAuctions = 0;
    let hotBidders = 0;
    let hotSellers = 0;
    events.forEach((e, n) => {
      const hot = Math.floor(lastBase0PersonId(n) / 100) * 100 + 1000;
      if (e.kind === 'bid') {
        if (e.auction === 1000 + Math.floor(lastBase0AuctionId(n) / 100) * 100) hotAuctions++;
        if (e.bidder === hot + 1) hotBidders++;
      }
      if (e.kind === 'auction' && e.seller === hot) hotSellers++;
    });
    const hotAuction = hotAuctions / bids.length;
    const hotBidder = hotBidders / bids.length;
    const hotSeller = hotSellers / auctions.length;
    // 1/2 (3/4) hot, plus the chance that the other draw picks the hot one among ~111 (~1010).
    expect(Math.abs(hotAuction - (0.5 + 0.5 / 111))).toBeLessThan(0.01);
    expect(Math.abs(hotBidder - 0.75)).toBeLessThan(0.01);
    expect(Math.abs(hotSeller - 0.75)).toBeLessThan(0.02);
    for (const ch of HOT_CHANNELS)
      expect(Math.abs(share(bids, (b) => b.channel === ch) - 1 / 8)).toBeLessThan(0.01);
    expect(new Set(bids.map((b) => b.channel)).size).toBeGreaterThan(9_000);
    for (let c = 10; c < 15; c++)
      expect(Math.abs(share(auctions, (a) => a.category === c) - 0.2)).toBeLessThan(0.02);
    for (const st of ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'])
      expect(Math.abs(share(persons, (p) => p.state === st) - 1 / 6)).toBeLessThan(0.03);
  });

  test('prices are round(10^(6u) * 100): log-uniform from 100 to 10^8', () => {
    const prices = [...bids.map((b) => b.price), ...auctions.map((a) => a.initialBid)];
    expect(prices.every((p) => Number.isInteger(p) && p >= 100 && p <= 1e8)).toBe(true);
    // P(price < 100 * 10^k) = k / 6.
    for (let k = 1; k < 6; k++)
      expect(Math.abs(share(prices, (p) => p < 100 * 10 ** k) - k / 6)).toBeLessThan(0.01);
    expect(auctions.every((a) => a.reserve > a.initialBid)).toBe(true);
  });

  test('auctions expire within twice the event time of 100 more auctions', () => {
    const horizon = eventTimestamp(EVENTS_FOR_IN_FLIGHT_AUCTIONS) - eventTimestamp(0);
    const lengths = auctions.map((a) => a.expires - a.dateTime);
    expect(Math.min(...lengths)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(2 * horizon + 1);
    expect(Math.abs(mean(lengths) - horizon) / horizon).toBeLessThan(0.05);
  });

  test('extra pads records to about 200 (person), 500 (auction) and 100 (bid) bytes', () => {
    expect(Math.abs(mean(persons.map(size)) - 200) / 200).toBeLessThan(0.03);
    expect(Math.abs(mean(auctions.map(size)) - 500) / 500).toBeLessThan(0.03);
    // A bid's channel and URL alone are 60-90 bytes: records above 100 bytes get no padding.
    expect(mean(bids.map(size))).toBeGreaterThan(95);
    expect(mean(bids.map(size))).toBeLessThan(120);
    expect(bids.every((b) => b.extra === '' || size(b) <= 100 * 1.2)).toBe(true);
  });

  test('timestamps are baseTime + floor(n * interEventDelayUs / 1000), whatever the split', () => {
    expect(events.filter((e, n) => e.dateTime !== DEFAULT_CONFIG.baseTime + Math.floor(n / 10))).toEqual([]);
    const c = nexmarkConfig({ firstEventRate: 1_000, numEventGenerators: 3, baseTime: 0 });
    expect(c.interEventDelayUs).toBe(3_000);
    expect(nexmarkEvent(7, c).dateTime).toBe(21);
  });

  test('the same seed gives the same events; another seed other events; numbers beyond 2^32 work', () => {
    const again = nexmarkConfig({ seed: 0 });
    for (const n of [0, 1, 2, 49, 50, 12_345, 99_999]) expect(nexmarkEvent(n, again)).toEqual(events[n]);
    const other = nexmarkConfig({ seed: 42 });
    const differ = events
      .slice(0, 1_000)
      .filter((e, n) => JSON.stringify(e) !== JSON.stringify(nexmarkEvent(n, other)));
    expect(differ.length).toBeGreaterThan(990);
    const big = 2 ** 32 + 123;
    expect(nexmarkEvent(big)).toEqual(nexmarkEvent(big));
    expect(nexmarkEvent(big).kind).toBe(big % 50 < 1 ? 'person' : big % 50 < 4 ? 'auction' : 'bid');
    expect(JSON.stringify(nexmarkEvent(big))).not.toBe(JSON.stringify(nexmarkEvent(123)));
  });
});

/** A reader context on a manual clock that records wake-up requests. */
function readerContext(clock: ManualClock, parallelism = 1): SourceReaderContext & { wakeAts: number[] } {
  const wakeAts: number[] = [];
  return {
    info: {
      jobName: 'test',
      operatorId: 'nexmark',
      operatorName: 'nexmark',
      subtaskIndex: 0,
      parallelism,
      maxParallelism: 128,
      attemptNumber: 0,
      runId: 'test',
    },
    clock,
    wakeUp: () => {},
    wakeAt: (t) => wakeAts.push(t),
    wakeWhenIdle: () => {},
    wakeAts,
  };
}

/** An output that records what a reader emits, per split. */
function recordingOutput(): ReaderOutput<Event> & { events: Event[]; bySplit: Map<string, Event[]> } {
  const events: Event[] = [];
  const bySplit = new Map<string, Event[]>();
  const out = {
    events,
    bySplit,
    collect: (e: Event) => events.push(e),
    emitWatermark: () => {},
    markIdle: () => {},
    markActive: () => {},
    releaseSplit: () => {},
    forSplit: (id: string): ReaderOutput<Event> => ({
      ...out,
      collect: (e: Event, ts?: number) => {
        expect(ts).toBe(e.dateTime);
        events.push(e);
        bySplit.set(id, [...(bySplit.get(id) ?? []), e]);
      },
    }),
  };
  return out;
}

/** Polls a reader until it ends (or, with `limit`, until it emitted that many events). */
function drain(
  reader: SourceReader<Event, NexmarkSplit>,
  out: ReaderOutput<Event>,
  limit = Infinity,
): InputStatus {
  let status: InputStatus = END_OF_INPUT;
  const o = out as ReturnType<typeof recordingOutput>;
  while (o.events.length < limit) {
    status = reader.pollNext(out);
    if (status === END_OF_INPUT || status === NOTHING_AVAILABLE) break;
  }
  return status;
}

describe('Nexmark source', () => {
  const count = 5_000;
  const expected = canonicalJson(generateEvents(count));

  test('any assignment of splits to readers generates exactly events 0 .. count-1', () => {
    const source = new NexmarkSource({ count });
    const splits = source.createSplits(5);
    for (const assignment of [
      [[0, 1, 2, 3, 4]],
      [
        [0, 2],
        [1, 3, 4],
      ],
      [[4], [3], [2], [1], [0]],
    ]) {
      const all: Event[] = [];
      for (const ids of assignment) {
        const reader = source.createReader(readerContext(new ManualClock()));
        reader.addSplits(ids.map((i) => splits[i]!));
        const out = recordingOutput();
        expect(drain(reader, out)).toBe(END_OF_INPUT);
        // Each split's events are in event-time order.
        for (const es of out.bySplit.values())
          expect(es.map((e) => e.dateTime)).toEqual(es.map((e) => e.dateTime).sort((a, b) => a - b));
        all.push(...out.events);
      }
      expect(canonicalJson(all)).toEqual(expected);
    }
  });

  test('a restored reader goes on from the snapshotted positions', () => {
    const source = new NexmarkSource({ count });
    const first = source.createReader(readerContext(new ManualClock()));
    first.addSplits(source.createSplits(3));
    const before = recordingOutput();
    drain(first, before, 1_234);
    const snapshot = first.snapshotState(1);
    expect(snapshot.map((s) => s.stride)).toEqual([3, 3, 3]);
    const second = source.createReader(readerContext(new ManualClock()));
    second.addSplits(snapshot);
    const after = recordingOutput();
    drain(second, after);
    expect(canonicalJson([...before.events, ...after.events])).toEqual(expected);
  });

  test('with a rate, event n is emitted once processing time reaches start + n * 1000 / rate', () => {
    const clock = new ManualClock(1_000);
    const source = new NexmarkSource({ count, ratePerSecond: 2_000, startTime: 1_000 });
    const ctx = readerContext(clock);
    const reader = source.createReader(ctx);
    reader.addSplits(source.createSplits(1));
    const out = recordingOutput();
    expect(drain(reader, out)).toBe(NOTHING_AVAILABLE);
    expect(out.events.length).toBe(1);
    expect(ctx.wakeAts.at(-1)).toBe(1_001);
    clock.set(1_010); // 10 ms: events 0 .. 20 are due
    drain(reader, out);
    expect(out.events.length).toBe(21);
    expect(ctx.wakeAts.at(-1)).toBe(1_011);
    clock.set(1_000 + (count * 1000) / 2_000);
    expect(drain(reader, out)).toBe(END_OF_INPUT);
    expect(canonicalJson(out.events)).toEqual(expected);
  });

  test('without a count the source is unbounded: a reader goes on past any count', () => {
    const source = new NexmarkSource();
    expect(source.boundedness).toBe('unbounded');
    const splits = source.createSplits(2);
    expect(splits.map((s) => [s.next, s.end, s.stride])).toEqual([
      [0, Number.MAX_SAFE_INTEGER, 2],
      [1, Number.MAX_SAFE_INTEGER, 2],
    ]);
    const reader = source.createReader(readerContext(new ManualClock(), 2));
    reader.addSplits([splits[1]!]);
    const out = recordingOutput();
    expect(drain(reader, out, 2 * count)).not.toBe(END_OF_INPUT);
    const odd = generateEvents(2 * out.events.length).filter((_e, n) => n % 2 === 1);
    expect(canonicalJson(out.events)).toEqual(canonicalJson(odd.slice(0, out.events.length)));
    expect(reader.snapshotState(1)[0]!.next).toBe(2 * out.events.length + 1);
  });

  test.each([1, 2, 3])('a job at parallelism %i reads every event once', async (p) => {
    const env = new StreamExecutionEnvironment({ parallelism: p });
    const out = nexmarkStream(env, { count }).collect();
    await env.execute();
    expect(canonicalJson(out.values)).toEqual(expected);
  });
});
