/**
 * Hand-made Nexmark inputs that sit on the edges of the queries' SQL (inclusive and exclusive
 * bounds, ties, empty windows, repeated rows), with the results worked out by hand from the SQL.
 * Generated events almost never get there: prices hardly ever tie, and person ids are unique.
 */
import type { Auction, Bid, Person } from '../../examples/nexmark/generator.js';
import type { ClosingPrice } from '../../examples/nexmark/q4.js';
import type { Q7Result } from '../../examples/nexmark/q7.js';
import type { Q8Result } from '../../examples/nexmark/q8.js';
import type { Q11Result } from '../../examples/nexmark/q11.js';

/** A bid on `auction` at `price` and `dateTime` (its bidder follows from the auction). */
export const bid = (auction: number, price: number, dateTime: number, extra = ''): Bid => ({
  kind: 'bid',
  auction,
  bidder: 1000 + (auction % 7),
  price,
  channel: 'Google',
  url: 'u',
  dateTime,
  extra,
});

/** A person `id` called `name`, appearing at `dateTime`. */
export const person = (id: number, name: string, dateTime: number): Person => ({
  kind: 'person',
  id,
  name,
  emailAddress: `${name}@example.com`,
  creditCard: '0000 0000 0000 0000',
  city: 'Boise',
  state: 'ID',
  dateTime,
  extra: '',
});

/** An auction `id` of `seller`, created at `dateTime`, open until `expires` (a minute by default). */
export const auction = (
  id: number,
  seller: number,
  dateTime: number,
  expires = dateTime + 60_000,
  category = 10,
): Auction => ({
  kind: 'auction',
  id,
  itemName: `item ${id}`,
  description: '',
  initialBid: 100,
  reserve: 200,
  dateTime,
  expires,
  seller,
  category,
  extra: '',
});

/**
 * Bids every 500 ms for 30 s on three auctions, with ties in the highest price (every bid of the
 * first 10 s is at 700; later prices repeat every 2 s) and in the highest count per auction.
 */
export const TIED_BIDS: readonly Bid[] = Array.from({ length: 60 }, (_, i) =>
  bid(1000 + (i % 3), i < 20 ? 700 : (i * 500) % 2_000, i * 500),
);

/** Window starts of the corners: B is a multiple of 10 s, epoch-sized as generated times are. */
const B = 1_700_000_000_000;

const q7Row = (b: Bid): Q7Result => ({
  auction: b.auction,
  price: b.price,
  bidder: b.bidder,
  dateTime: b.dateTime,
  extra: b.extra,
});

/**
 * q7 at window boundaries. Windows of 10 s from B: W0 = [B, B + 10 s), W1, ... `arrival` is the
 * input in order, with watermarks (numbers): the bids at W0's and at W2's end come after the
 * watermark reached that window's end - 1 (they are still on time). `expected` pairs each
 * result with its timestamp, the end of its window.
 */
export const Q7_CORNER = (() => {
  const w0Start = bid(1001, 500, B, "at W0's start, at its highest price");
  const w0Early = bid(1002, 300, B + 2_000);
  const w0Max = bid(1003, 500, B + 4_000, "W0's highest price");
  const w0Last = bid(1004, 500, B + 9_999, "W0's highest price, its last millisecond");
  const w1Early = bid(1005, 300, B + 14_000);
  const w0End = bid(1006, 500, B + 10_000, "at W0's end, tying W0's highest price (not W1's)");
  const w1Max = bid(1007, 800, B + 12_000, "W1's highest price");
  const w1Low = bid(1008, 200, B + 15_000);
  const w1End = bid(1009, 900, B + 20_000, "at W1's end, above W1's highest: W2's highest only");
  const w2Low = bid(1010, 100, B + 25_000);
  const w2End = bid(1011, 900, B + 30_000, "at W2's end, tying W2's highest, and W3's highest");
  const w3Low = bid(1012, 50, B + 31_000);
  // W4 = [B + 40 s, B + 50 s) has no bids.
  const w5StartA = bid(1013, 70, B + 50_000, 'after an empty window, at its start: W5 highest');
  const w5StartB = bid(1014, 70, B + 50_000, 'the same millisecond, the same price');
  const w5Low = bid(1015, 10, B + 55_000);
  const arrival: readonly (Bid | number)[] = [
    ...[w0Start, w0Early, w0Max, w0Last, w1Early, B + 9_999, w0End, B + 10_000],
    ...[w1Max, w1Low, w1End, w2Low, B + 29_999, w2End, w3Low, w5StartA, w5StartB, w5Low],
  ];
  // Per window with bids, its highest price over [start, end), joined with the bids of
  // [start, end] at that price.
  const expected: readonly [Q7Result, number][] = [
    ...[w0Start, w0Max, w0Last, w0End].map((b): [Q7Result, number] => [q7Row(b), B + 10_000]),
    [q7Row(w1Max), B + 20_000],
    [q7Row(w1End), B + 30_000],
    [q7Row(w2End), B + 30_000],
    [q7Row(w2End), B + 40_000],
    [q7Row(w5StartA), B + 60_000],
    [q7Row(w5StartB), B + 60_000],
  ];
  return { arrival, bids: arrival.filter((a): a is Bid => typeof a !== 'number'), expected };
})();

/**
 * q8's grouping and window bounds: a person repeated in a window (one row), one id under two
 * names (two rows), a person and their auction on either side of a window boundary (none), a
 * person at a window's start (a row), and a person or an auction alone (none).
 */
export const Q8_CORNER = (() => {
  const events = [
    person(2001, 'ann', B + 1_000),
    person(2002, 'bob', B + 2_000),
    person(2002, 'bobby', B + 3_000),
    auction(3001, 2002, B + 4_000),
    person(2001, 'ann', B + 5_000),
    auction(3002, 2001, B + 7_000),
    auction(3003, 2001, B + 8_000),
    person(2003, 'cy', B + 9_999),
    person(2004, 'di', B + 10_000),
    auction(3004, 2003, B + 10_000),
    person(2005, 'eve', B + 12_000),
    auction(3005, 2006, B + 13_000),
    auction(3006, 2004, B + 19_999),
  ];
  const expected: readonly Q8Result[] = [
    { id: 2001, name: 'ann', starttime: B },
    { id: 2002, name: 'bob', starttime: B },
    { id: 2002, name: 'bobby', starttime: B },
    { id: 2004, name: 'di', starttime: B + 10_000 },
  ];
  return { events, expected };
})();

/**
 * q4's `B.dateTime BETWEEN A.dateTime AND A.expires`, both ends inclusive, on each of the two
 * ways a bid meets its auction: after it (4001, 4002) and before it (4003, 4004). Each auction's
 * closing price is decided by a bid at exactly one bound, next to a higher bid a millisecond
 * outside. Auction 4005 has no bid, so no closing price, and its category 11 no average. The
 * events are in their order of arrival (at most 4 s out of order).
 */
export const Q4_CORNER = (() => {
  const events = [
    auction(4001, 2001, B + 1_000, B + 5_000, 10),
    bid(4001, 100, B + 1_000),
    bid(4001, 900, B + 999),
    auction(4002, 2002, B + 2_000, B + 3_000, 10),
    bid(4002, 10, B + 2_500),
    bid(4002, 300, B + 3_000),
    bid(4002, 800, B + 3_001),
    bid(4003, 900, B + 3_999),
    bid(4003, 40, B + 4_000),
    auction(4003, 2003, B + 4_000, B + 9_000, 12),
    bid(4004, 5, B + 5_500),
    bid(4004, 60, B + 6_000),
    bid(4004, 700, B + 6_001),
    auction(4004, 2004, B + 5_000, B + 6_000, 12),
    auction(4005, 2005, B + 6_500, B + 9_000, 11),
  ];
  const expected: readonly ClosingPrice[] = [
    { auction: 4001, category: 10, price: 100 },
    { auction: 4002, category: 10, price: 300 },
    { auction: 4003, category: 12, price: 40 },
    { auction: 4004, category: 12, price: 60 },
  ];
  return { events, expected };
})();

/**
 * q11's sessions (gap 10 s): bids exactly the gap apart are one session (Flink merges windows
 * that touch), a millisecond more starts another.
 */
export const Q11_CORNER = (() => {
  // One bidder: auctions 1001, 1008, 1015 all give bidder 1000 (see `bid`).
  const events = [bid(1001, 5, B), bid(1008, 5, B + 10_000), bid(1015, 5, B + 20_001)];
  const expected: readonly Q11Result[] = [
    { bidder: 1000, bidCount: 2, starttime: B, endtime: B + 20_000 },
    { bidder: 1000, bidCount: 1, starttime: B + 20_001, endtime: B + 30_001 },
  ];
  return { events, expected };
})();
