/**
 * Hand-written baselines of the Nexmark queries: for each query, one plain loop over the same
 * generated events (the same generator function, the same count) that computes the same result
 * with the same algorithm as the query, with plain Maps and no framework: the practical limit of
 * one Node.js thread, against which the benchmark sets tidemark's throughput.
 *
 * Each loop sees the events in order, as one source split would, and emulates the queries'
 * watermark (largest time so far - 4000 - 1) to fire windows and close auctions, so its state stays
 * as bounded as the query's. Results go to the same {@link ResultChecker} as tidemark's sink, so
 * the benchmark can check that both computed the same thing.
 */
import {
  type Bid,
  type Event,
  type NexmarkConfig,
  nexmarkEvent,
  type Person,
} from '../../examples/nexmark/generator.js';
import type { Q1Result } from '../../examples/nexmark/q1.js';
import type { Q2Result } from '../../examples/nexmark/q2.js';
import type { Q3Result } from '../../examples/nexmark/q3.js';
import { CLOSED_AUCTION_RETENTION_MS, type Q4Result } from '../../examples/nexmark/q4.js';
import type { Q5Result } from '../../examples/nexmark/q5.js';
import type { Q7Result } from '../../examples/nexmark/q7.js';
import type { Q8Result } from '../../examples/nexmark/q8.js';
import type { Q11Result } from '../../examples/nexmark/q11.js';
import type { Q12Result } from '../../examples/nexmark/q12.js';

/** Receives a query's results; summarizes them cheaply so two runs can be compared. */
export interface ResultChecker<T> {
  add(record: T): void;
  /** Number of records added. */
  readonly records: number;
  /** A digest of what was added (equal for equal results, whatever their order). */
  digest(): string;
}

/** Sums a 32-bit hash of every record: order-insensitive, one addition per record. */
export class SumChecker<T> implements ResultChecker<T> {
  records = 0;
  private sum = 0;
  constructor(private readonly hash: (record: T) => number) {}
  add(record: T): void {
    this.records++;
    this.sum = (this.sum + this.hash(record)) | 0;
  }
  digest(): string {
    return `${this.records}:${(this.sum >>> 0).toString(16)}`;
  }
}

/** Keeps the last record per key (for updating results such as q4's): the digest is the final state. */
export class LastPerKeyChecker<T> implements ResultChecker<T> {
  records = 0;
  private readonly last = new Map<number, T>();
  constructor(private readonly keyOf: (record: T) => number) {}
  add(record: T): void {
    this.records++;
    this.last.set(this.keyOf(record), record);
  }
  digest(): string {
    const keys = [...this.last.keys()].sort((a, b) => a - b);
    return `${this.records}:${JSON.stringify(keys.map((k) => this.last.get(k)))}`;
  }
}

const h = (a: number, b: number) => Math.imul(a ^ Math.imul(b, 0x9e3779b1), 0x85ebca6b);

/** The checkers of the queries (tidemark's sink and the baselines use the same). */
export const checkers = {
  q0: () => new SumChecker<Bid>((b) => h(h(b.auction, b.bidder), h(b.price, b.dateTime))),
  q1: () =>
    new SumChecker<Q1Result>((b) => h(h(b.auction, b.bidder), h(Math.round(b.price * 1000), b.dateTime))),
  q2: () => new SumChecker<Q2Result>((r) => h(r.auction, r.price)),
  q3: () =>
    new SumChecker<Q3Result>((r) => h(r.id, r.name.length + r.city.length * 31 + r.state.charCodeAt(0))),
  q4: () => new LastPerKeyChecker<Q4Result>((r) => r.category),
  q5: () => new SumChecker<Q5Result>((r) => h(h(r.auction, r.num), r.windowStart)),
  q7: () => new SumChecker<Q7Result>((r) => h(h(r.auction, r.price), h(r.bidder, r.dateTime))),
  q8: () => new SumChecker<Q8Result>((r) => h(r.id, r.starttime)),
  q11: () => new SumChecker<Q11Result>((r) => h(h(r.bidder, r.bidCount), h(r.starttime, r.endtime))),
  q12: () => new SumChecker<Q12Result>((r) => h(h(r.bidder, r.bidCount), r.starttime)),
} as const;

/** A query's name in the benchmark. */
export type QueryName = keyof typeof checkers;

/** The watermark the queries use after seeing timestamp `t` (bounded out-of-orderness of 4 s). */
const watermarkAfter = (t: number) => t - 4000 - 1;

function q0(count: number, c: NexmarkConfig, out: ResultChecker<Bid>): void {
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid') out.add(e);
  }
}

function q1(count: number, c: NexmarkConfig, out: ResultChecker<Q1Result>): void {
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid')
      out.add({
        auction: e.auction,
        bidder: e.bidder,
        price: 0.908 * e.price,
        dateTime: e.dateTime,
        extra: e.extra,
      });
  }
}

function q2(count: number, c: NexmarkConfig, out: ResultChecker<Q2Result>): void {
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid' && e.auction % 123 === 0) out.add({ auction: e.auction, price: e.price });
  }
}

function q3(count: number, c: NexmarkConfig, out: ResultChecker<Q3Result>): void {
  const sellers = new Map<number, Person>();
  const waiting = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'auction') {
      if (e.category !== 10) continue;
      const p = sellers.get(e.seller);
      if (p !== undefined) out.add({ name: p.name, city: p.city, state: p.state, id: e.id });
      else {
        const w = waiting.get(e.seller);
        if (w === undefined) waiting.set(e.seller, [e.id]);
        else w.push(e.id);
      }
    } else if (e.kind === 'person') {
      if (e.state !== 'OR' && e.state !== 'ID' && e.state !== 'CA') continue;
      sellers.set(e.id, e);
      const w = waiting.get(e.id);
      if (w !== undefined) {
        for (const id of w) out.add({ name: e.name, city: e.city, state: e.state, id });
        waiting.delete(e.id);
      }
    }
  }
}

interface OpenAuction {
  category: number;
  start: number;
  expires: number;
  price: number;
  closed: boolean;
}

/** Event-time timers by timestamp (one per key and time), fired in order as the watermark advances. */
class Timers {
  private readonly byTime = new Map<number, number[]>();
  /** Timers up to this time have fired. */
  private fired = Number.NEGATIVE_INFINITY;
  add(time: number, key: number): void {
    const list = this.byTime.get(time);
    if (list === undefined) this.byTime.set(time, [key]);
    else if (!list.includes(key)) list.push(key);
  }
  /** Calls `fire(time, key)` for every timer up to `watermark`, in time order. */
  advance(watermark: number, fire: (time: number, key: number) => void): void {
    if (this.byTime.size === 0) {
      if (watermark > this.fired && watermark < Number.POSITIVE_INFINITY) this.fired = watermark;
      return;
    }
    // NOTE: the watermark moves by about a millisecond at a time: visiting every millisecond
    // costs less than keeping the timers sorted.
    let t = this.fired === Number.NEGATIVE_INFINITY ? Math.min(...this.byTime.keys()) : this.fired + 1;
    const upTo = watermark === Number.POSITIVE_INFINITY ? Math.max(...this.byTime.keys()) : watermark;
    for (; t <= upTo; t++) {
      const keys = this.byTime.get(t);
      if (keys === undefined) continue;
      this.byTime.delete(t);
      for (const k of keys) fire(t, k);
    }
    if (upTo > this.fired) this.fired = upTo;
  }
}

function q4(count: number, c: NexmarkConfig, out: ResultChecker<Q4Result>): void {
  const auctions = new Map<number, OpenAuction>();
  const early = new Map<number, { dateTime: number; price: number }[]>();
  const averages = new Map<number, { sum: number; count: number }>();
  const timers = new Timers();
  const fire = (time: number, id: number) => {
    const a = auctions.get(id);
    if (a === undefined) {
      const keep = (early.get(id) ?? []).filter((b) => b.dateTime > time);
      if (keep.length === 0) early.delete(id);
      else {
        early.set(id, keep);
        timers.add(Math.min(...keep.map((b) => b.dateTime)), id);
      }
      return;
    }
    if (a.closed) {
      if (time >= a.expires + CLOSED_AUCTION_RETENTION_MS) auctions.delete(id);
      return;
    }
    if (time < a.expires) return;
    if (a.price >= 0) {
      let avg = averages.get(a.category);
      if (avg === undefined) averages.set(a.category, (avg = { sum: 0, count: 0 }));
      avg.sum += a.price;
      avg.count++;
      out.add({ category: a.category, average: avg.sum / avg.count, auctions: avg.count });
    }
    a.closed = true;
    timers.add(a.expires + CLOSED_AUCTION_RETENTION_MS, id);
  };
  let watermark = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid') {
      const a = auctions.get(e.auction);
      if (a === undefined) {
        const list = early.get(e.auction);
        if (list === undefined) {
          early.set(e.auction, [{ dateTime: e.dateTime, price: e.price }]);
          timers.add(e.dateTime, e.auction);
        } else list.push({ dateTime: e.dateTime, price: e.price });
      } else if (!a.closed && e.dateTime >= a.start && e.dateTime <= a.expires && e.price > a.price)
        a.price = e.price;
    } else if (e.kind === 'auction') {
      let price = -1;
      const list = early.get(e.id);
      if (list !== undefined) {
        for (const b of list)
          if (b.dateTime >= e.dateTime && b.dateTime <= e.expires && b.price > price) price = b.price;
        early.delete(e.id);
      }
      auctions.set(e.id, {
        category: e.category,
        start: e.dateTime,
        expires: e.expires,
        price,
        closed: false,
      });
      timers.add(e.expires, e.id);
    }
    const w = watermarkAfter(e.dateTime);
    if (w > watermark) {
      watermark = w;
      timers.advance(w, fire);
    }
  }
  timers.advance(Number.POSITIVE_INFINITY, fire);
}

function q5(count: number, c: NexmarkConfig, out: ResultChecker<Q5Result>): void {
  const size = 10_000;
  const slide = 2_000;
  // NOTE: the honest limit of a sliding count: each bid is added once, to the count of its 2 s
  // slice (the greatest common divisor of size and slide), and a window sums its five slices when
  // it fires, as Flink SQL's sliced windows do (adding each bid to all five windows was 1.5-2.3x
  // slower). Windows fire in order of their start; the slice a window starts with is needed by no
  // later window, so it goes once that window fired.
  const slices = new Map<number, Map<number, number>>();
  /** The start of the next window to fire (the first one holding a slice). */
  let next = Number.POSITIVE_INFINITY;
  const firstWindowOf = (slice: number) => slice - size + slide;
  const fireUpTo = (watermark: number) => {
    while (next !== Number.POSITIVE_INFINITY && next + size - 1 <= watermark) {
      const sums = new Map<number, number>();
      for (let s = next; s < next + size; s += slide) {
        const counts = slices.get(s);
        if (counts !== undefined)
          for (const [auction, n] of counts) sums.set(auction, (sums.get(auction) ?? 0) + n);
      }
      let max = 0;
      for (const n of sums.values()) if (n > max) max = n;
      for (const [auction, num] of sums)
        if (num === max) out.add({ auction, num, windowStart: next, windowEnd: next + size });
      slices.delete(next);
      // The next window holding a slice (windows between slices hold none and do not fire).
      let lowest = Number.POSITIVE_INFINITY;
      for (const s of slices.keys()) if (s < lowest) lowest = s;
      next = Math.max(next + slide, firstWindowOf(lowest));
    }
  };
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid') {
      const t = e.dateTime;
      const slice = t - (t % slide);
      let counts = slices.get(slice);
      if (counts === undefined) {
        slices.set(slice, (counts = new Map()));
        if (firstWindowOf(slice) < next) next = firstWindowOf(slice);
      }
      counts.set(e.auction, (counts.get(e.auction) ?? 0) + 1);
    }
    if (watermarkAfter(e.dateTime) >= next + size - 1) fireUpTo(watermarkAfter(e.dateTime));
  }
  fireUpTo(Number.POSITIVE_INFINITY);
}

function q7(count: number, c: NexmarkConfig, out: ResultChecker<Q7Result>): void {
  const size = 10_000;
  // Per window start: the highest price, the window's bids at it, and its bids at exactly its
  // start (which the window before joins too, as q7.sql's inclusive BETWEEN).
  const windows = new Map<number, { price: number; bids: Bid[]; atStart: Bid[] }>();
  let nextEnd = Number.POSITIVE_INFINITY;
  const emit = (b: Bid) =>
    out.add({ auction: b.auction, price: b.price, bidder: b.bidder, dateTime: b.dateTime, extra: b.extra });
  const fireUpTo = (watermark: number) => {
    // A window fires once the watermark reaches its end (all bids at the end have come by then).
    const fired: number[] = [];
    for (const [start, w] of windows) {
      if (start + size > watermark) continue;
      for (const b of w.bids) emit(b);
      const next = windows.get(start + size);
      if (next !== undefined) for (const b of next.atStart) if (b.price === w.price) emit(b);
      fired.push(start);
    }
    // Deleted after the loop: a window fired with the next one still needs its bids at the start.
    for (const start of fired) windows.delete(start);
    nextEnd = Number.POSITIVE_INFINITY;
    for (const start of windows.keys()) if (start + size < nextEnd) nextEnd = start + size;
  };
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid') {
      const start = e.dateTime - (e.dateTime % size);
      const w = windows.get(start);
      if (w === undefined) {
        windows.set(start, { price: e.price, bids: [e], atStart: e.dateTime === start ? [e] : [] });
        if (start + size < nextEnd) nextEnd = start + size;
      } else {
        if (e.price > w.price) {
          w.price = e.price;
          w.bids = [e];
        } else if (e.price === w.price) w.bids.push(e);
        if (e.dateTime === start) w.atStart.push(e);
      }
    }
    if (watermarkAfter(e.dateTime) >= nextEnd) fireUpTo(watermarkAfter(e.dateTime));
  }
  fireUpTo(Number.POSITIVE_INFINITY);
}

function q8(count: number, c: NexmarkConfig, out: ResultChecker<Q8Result>): void {
  const size = 10_000;
  // Per window start: the distinct names of each person id, and the sellers.
  const windows = new Map<number, { persons: Map<number, string[]>; sellers: Set<number> }>();
  let nextEnd = Number.POSITIVE_INFINITY;
  const windowAt = (t: number) => {
    const start = t - (t % size);
    let w = windows.get(start);
    if (w === undefined) {
      windows.set(start, (w = { persons: new Map(), sellers: new Set() }));
      if (start + size < nextEnd) nextEnd = start + size;
    }
    return w;
  };
  const fireUpTo = (watermark: number) => {
    for (const [start, w] of windows) {
      if (start + size - 1 > watermark) continue;
      for (const [id, names] of w.persons)
        if (w.sellers.has(id)) for (const name of names) out.add({ id, name, starttime: start });
      windows.delete(start);
    }
    nextEnd = Number.POSITIVE_INFINITY;
    for (const start of windows.keys()) if (start + size < nextEnd) nextEnd = start + size;
  };
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'person') {
      const persons = windowAt(e.dateTime).persons;
      const names = persons.get(e.id);
      if (names === undefined) persons.set(e.id, [e.name]);
      else if (!names.includes(e.name)) names.push(e.name);
    } else if (e.kind === 'auction') windowAt(e.dateTime).sellers.add(e.seller);
    if (watermarkAfter(e.dateTime) >= nextEnd - 1) fireUpTo(watermarkAfter(e.dateTime));
  }
  fireUpTo(Number.POSITIVE_INFINITY);
}

function q11(count: number, c: NexmarkConfig, out: ResultChecker<Q11Result>): void {
  const gap = 10_000;
  const sessions = new Map<number, { start: number; end: number; count: number }>();
  let nextSweep = Number.NEGATIVE_INFINITY;
  const sweep = (watermark: number) => {
    for (const [bidder, s] of sessions)
      if (s.end - 1 <= watermark) {
        out.add({ bidder, bidCount: s.count, starttime: s.start, endtime: s.end });
        sessions.delete(bidder);
      }
  };
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    if (e.kind === 'bid') {
      const s = sessions.get(e.bidder);
      if (s !== undefined && e.dateTime <= s.end) {
        // [t, t + gap) touches or overlaps the session: it merges into it.
        if (e.dateTime + gap > s.end) s.end = e.dateTime + gap;
        s.count++;
      } else {
        if (s !== undefined)
          out.add({ bidder: e.bidder, bidCount: s.count, starttime: s.start, endtime: s.end });
        sessions.set(e.bidder, { start: e.dateTime, end: e.dateTime + gap, count: 1 });
      }
    }
    // Emit closed sessions about every second of event time, as periodic watermarks would.
    if (e.dateTime >= nextSweep) {
      sweep(watermarkAfter(e.dateTime));
      nextSweep = e.dateTime + 1_000;
    }
  }
  sweep(Number.POSITIVE_INFINITY);
}

function q12(count: number, c: NexmarkConfig, out: ResultChecker<Q12Result>): void {
  const size = 10_000;
  let counts = new Map<number, number>();
  let end = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    const e = nexmarkEvent(i, c);
    // Processing time, read every 256 events (as cheap as a loop can be while still windowing).
    if ((i & 255) === 0) {
      const now = Date.now();
      if (now >= end) {
        for (const [bidder, bidCount] of counts)
          out.add({ bidder, bidCount, starttime: end - size, endtime: end });
        counts = new Map();
        end = now - (now % size) + size;
      }
    }
    if (e.kind === 'bid') counts.set(e.bidder, (counts.get(e.bidder) ?? 0) + 1);
  }
  // As the query: windows still open when the input ends are not fired.
}

/** The baseline loops, by query. */
export const baselines: {
  [Q in QueryName]: (count: number, config: NexmarkConfig, out: ReturnType<(typeof checkers)[Q]>) => void;
} = {
  q0,
  q1,
  q2,
  q3,
  q4,
  q5,
  q7,
  q8,
  q11,
  q12,
};

/** Generates `count` events and does nothing else with them: the generator's own cost. */
export function generatorOnly(count: number, config: NexmarkConfig): number {
  let x = 0;
  for (let i = 0; i < count; i++) {
    const e: Event = nexmarkEvent(i, config);
    x ^= e.dateTime & 0xff;
  }
  return x;
}
