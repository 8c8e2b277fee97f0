/**
 * Batch computations of the Nexmark queries over an array of generated events: plain loops,
 * written for obviousness rather than speed, independent of tidemark and of the query modules
 * (only their result types and constants are shared). The Nexmark tests and the examples test
 * compare the streaming queries with these.
 */
import {
  type Auction,
  type Bid,
  DEFAULT_CONFIG,
  type Event,
  type NexmarkConfig,
  nexmarkEvent,
  type Person,
} from '../../examples/nexmark/generator.js';
import type { Q1Result } from '../../examples/nexmark/q1.js';
import type { Q2Result } from '../../examples/nexmark/q2.js';
import type { Q3Result } from '../../examples/nexmark/q3.js';
import type { ClosingPrice, Q4Result } from '../../examples/nexmark/q4.js';
import type { Q5Result } from '../../examples/nexmark/q5.js';
import type { Q7Result } from '../../examples/nexmark/q7.js';
import type { Q8Result } from '../../examples/nexmark/q8.js';
import type { Q11Result } from '../../examples/nexmark/q11.js';
import type { Q12Result } from '../../examples/nexmark/q12.js';

/** Events `0 .. count - 1`. */
export function generateEvents(count: number, config: NexmarkConfig = DEFAULT_CONFIG): Event[] {
  const out: Event[] = [];
  for (let i = 0; i < count; i++) out.push(nexmarkEvent(i, config));
  return out;
}

const isBid = (e: Event): e is Bid => e.kind === 'bid';
const isAuction = (e: Event): e is Auction => e.kind === 'auction';
const isPerson = (e: Event): e is Person => e.kind === 'person';

/** Values as sorted JSON strings: equal multisets give equal arrays, whatever the order. */
export function canonicalJson(values: readonly unknown[]): string[] {
  return values.map((v) => JSON.stringify(v)).sort();
}

/** q0: every bid. */
export function q0(events: readonly Event[]): Bid[] {
  return events.filter(isBid);
}

/** q1: every bid, price times 0.908. */
export function q1(events: readonly Event[]): Q1Result[] {
  return events.filter(isBid).map((b) => ({
    auction: b.auction,
    bidder: b.bidder,
    price: 0.908 * b.price,
    dateTime: b.dateTime,
    extra: b.extra,
  }));
}

/** q2: `(auction, price)` of the bids on auctions that are multiples of 123. */
export function q2(events: readonly Event[]): Q2Result[] {
  return events
    .filter(isBid)
    .filter((b) => b.auction % 123 === 0)
    .map((b) => ({ auction: b.auction, price: b.price }));
}

/** q3: every (person in OR/ID/CA, auction of category 10 they sell) pair. */
export function q3(events: readonly Event[]): Q3Result[] {
  const people = new Map<number, Person>();
  for (const p of events.filter(isPerson)) if (['OR', 'ID', 'CA'].includes(p.state)) people.set(p.id, p);
  const out: Q3Result[] = [];
  for (const a of events.filter(isAuction)) {
    const p = people.get(a.seller);
    if (a.category === 10 && p !== undefined)
      out.push({ name: p.name, city: p.city, state: p.state, id: a.id });
  }
  return out;
}

/** q4's first step: the highest bid within [dateTime, expires] of every auction that has one. */
export function q4ClosingPrices(events: readonly Event[]): ClosingPrice[] {
  const bids = events.filter(isBid);
  const out: ClosingPrice[] = [];
  for (const a of events.filter(isAuction)) {
    let best = -1;
    for (const b of bids)
      if (b.auction === a.id && b.dateTime >= a.dateTime && b.dateTime <= a.expires && b.price > best)
        best = b.price;
    if (best >= 0) out.push({ auction: a.id, category: a.category, price: best });
  }
  return out;
}

/** q4: the final average closing price per category (with the number of auctions averaged). */
export function q4(events: readonly Event[]): Q4Result[] {
  const byCategory = new Map<number, number[]>();
  for (const c of q4ClosingPrices(events)) {
    const prices = byCategory.get(c.category) ?? [];
    prices.push(c.price);
    byCategory.set(c.category, prices);
  }
  return [...byCategory].map(([category, prices]) => ({
    category,
    average: prices.reduce((s, p) => s + p, 0) / prices.length,
    auctions: prices.length,
  }));
}

/** Starts of the sliding windows (`size`, `slide`) that hold time `t` (t >= 0). */
export function slidingWindowStarts(t: number, size: number, slide: number): number[] {
  const out: number[] = [];
  for (let start = t - (t % slide); start > t - size; start -= slide) out.push(start);
  return out;
}

/** q5: per sliding window (10 s every 2 s), the auctions with the most bids. */
export function q5(events: readonly Event[]): Q5Result[] {
  const counts = new Map<number, Map<number, number>>();
  for (const b of events.filter(isBid))
    for (const start of slidingWindowStarts(b.dateTime, 10_000, 2_000)) {
      const perAuction = counts.get(start) ?? new Map<number, number>();
      perAuction.set(b.auction, (perAuction.get(b.auction) ?? 0) + 1);
      counts.set(start, perAuction);
    }
  const out: Q5Result[] = [];
  for (const [start, perAuction] of counts) {
    const max = [...perAuction.values()].reduce((m, n) => Math.max(m, n), 0);
    for (const [auction, num] of perAuction)
      if (num === max) out.push({ auction, num, windowStart: start, windowEnd: start + 10_000 });
  }
  return out;
}

/**
 * q7 as its SQL: the highest price of every tumbling window [start, end) of 10 s that has bids,
 * joined back to every bid at that price with `dateTime BETWEEN end - 10 s AND end` (both ends
 * inclusive: a bid at exactly `end` counts for the window it ends too).
 */
export function q7(events: readonly Event[]): Q7Result[] {
  const bids = events.filter(isBid);
  const maxByEnd = new Map<number, number>();
  for (const b of bids) {
    const end = b.dateTime - (b.dateTime % 10_000) + 10_000;
    maxByEnd.set(end, Math.max(maxByEnd.get(end) ?? Number.NEGATIVE_INFINITY, b.price));
  }
  const out: Q7Result[] = [];
  for (const [end, max] of maxByEnd)
    for (const b of bids)
      if (b.price === max && b.dateTime >= end - 10_000 && b.dateTime <= end)
        out.push({
          auction: b.auction,
          price: b.price,
          bidder: b.bidder,
          dateTime: b.dateTime,
          extra: b.extra,
        });
  return out;
}

/**
 * q8: persons who created an auction in the 10 s tumbling window in which they appeared, one row
 * per distinct (id, name, window), as the SQL groups persons by `id, name, window_start, window_end`.
 */
export function q8(events: readonly Event[]): Q8Result[] {
  const windowOf = (t: number) => t - (t % 10_000);
  const sellers = new Set(events.filter(isAuction).map((a) => `${a.seller}@${windowOf(a.dateTime)}`));
  const rows = new Map<string, Q8Result>();
  for (const p of events.filter(isPerson))
    if (sellers.has(`${p.id}@${windowOf(p.dateTime)}`)) {
      const row = { id: p.id, name: p.name, starttime: windowOf(p.dateTime) };
      rows.set(JSON.stringify(row), row);
    }
  return [...rows.values()];
}

/** q11: per bidder, sessions of bids less than (or exactly) 10 s apart. */
export function q11(events: readonly Event[]): Q11Result[] {
  const byBidder = new Map<number, number[]>();
  for (const b of events.filter(isBid)) {
    const times = byBidder.get(b.bidder) ?? [];
    times.push(b.dateTime);
    byBidder.set(b.bidder, times);
  }
  const out: Q11Result[] = [];
  for (const [bidder, times] of byBidder) {
    times.sort((a, b) => a - b);
    let start = times[0]!;
    let last = start;
    let n = 0;
    for (const t of times) {
      // Session windows [t, t + gap) merge when they overlap or touch.
      if (t > last + 10_000) {
        out.push({ bidder, bidCount: n, starttime: start, endtime: last + 10_000 });
        start = t;
        n = 0;
      }
      last = t;
      n++;
    }
    out.push({ bidder, bidCount: n, starttime: start, endtime: last + 10_000 });
  }
  return out;
}

/** q12: bids per bidder in 10 s tumbling windows of the processing time each bid was seen at. */
export function q12(bids: readonly { bid: Bid; processingTime: number }[]): Q12Result[] {
  const counts = new Map<string, Q12Result>();
  for (const { bid, processingTime } of bids) {
    const start = processingTime - (processingTime % 10_000);
    const k = `${bid.bidder}@${start}`;
    const r = counts.get(k) ?? { bidder: bid.bidder, bidCount: 0, starttime: start, endtime: start + 10_000 };
    r.bidCount++;
    counts.set(k, r);
  }
  return [...counts.values()];
}
