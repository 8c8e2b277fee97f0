// The Nexmark event generator (shared/NEXMARK.md) and a replayable parallel source of its events.
//
// Every event is a pure function of (seed, event number): `nexmarkEvent(n, config)` draws its
// random numbers from a SplitMix-style generator seeded with the seed and `n`, so any split can
// generate any range of event numbers without state, and a split's position (its next event
// number) is all a checkpoint needs. Events are flat objects with a `kind` discriminant (one
// allocation per event; strings come from tables built once at load, so nothing else is allocated).
//
// This module is not a job: the queries (q0.ts ... q12.ts) import it.
import {
  type AggregateFunction,
  type Collector,
  type DataStream,
  END_OF_INPUT,
  type InputStatus,
  MORE_AVAILABLE,
  NOTHING_AVAILABLE,
  type ReaderOutput,
  type Source,
  type SourceReader,
  type SourceReaderContext,
  type SourceSplit,
  type StreamEnvironment,
  WatermarkStrategy,
} from 'tidemark';

// ---- events ----

/** A new person (1 event in 50). */
export interface Person {
  readonly kind: 'person';
  readonly id: number;
  readonly name: string;
  readonly emailAddress: string;
  readonly creditCard: string;
  readonly city: string;
  readonly state: string;
  /** Event time, ms since the epoch. */
  readonly dateTime: number;
  readonly extra: string;
}

/** A new auction (3 events in 50). */
export interface Auction {
  readonly kind: 'auction';
  readonly id: number;
  readonly itemName: string;
  readonly description: string;
  readonly initialBid: number;
  readonly reserve: number;
  /** Event time, ms since the epoch. */
  readonly dateTime: number;
  /** When the auction closes (event time, ms). */
  readonly expires: number;
  readonly seller: number;
  readonly category: number;
  readonly extra: string;
}

/** A bid (46 events in 50). */
export interface Bid {
  readonly kind: 'bid';
  readonly auction: number;
  readonly bidder: number;
  readonly price: number;
  readonly channel: string;
  readonly url: string;
  /** Event time, ms since the epoch. */
  readonly dateTime: number;
  readonly extra: string;
}

/**
 * One Nexmark event.
 *
 * NOTE: a flat union with a `kind` field rather than Flink's `{ type, person, auction, bid }`
 * wrapper: one object per event instead of two, and a query's filter (`e.kind === 'bid'`) hands
 * the event itself on, with no projection. Field names are Flink's.
 */
export type Event = Person | Auction | Bid;

// ---- configuration ----

/** Generator settings (Flink's `GeneratorConfig`); every field is optional. */
export interface NexmarkOptions {
  /** Seed of all randomness (default 0). */
  seed?: number;
  /** Event time of event 0, ms since the epoch (default 2026-01-01T00:00:00Z). */
  baseTime?: number;
  /** Events per second of event time (default 10,000). */
  firstEventRate?: number;
  /** Number of generators sharing `firstEventRate` (default 1). */
  numEventGenerators?: number;
  /** Average size of a person in bytes (default 200). */
  avgPersonByteSize?: number;
  /** Average size of an auction in bytes (default 500). */
  avgAuctionByteSize?: number;
  /** Average size of a bid in bytes (default 100). */
  avgBidByteSize?: number;
}

/** A resolved generator configuration (make one with {@link nexmarkConfig}). */
export interface NexmarkConfig {
  readonly seed: number;
  readonly baseTime: number;
  readonly firstEventRate: number;
  readonly numEventGenerators: number;
  /** `1e6 / firstEventRate * numEventGenerators`: µs of event time between two events. */
  readonly interEventDelayUs: number;
  readonly avgPersonByteSize: number;
  readonly avgAuctionByteSize: number;
  readonly avgBidByteSize: number;
  /** @internal the seed, mixed (the random state of an event starts from it and the event number). */
  readonly seedState: number;
  /** @internal `seedState` mixed with a high word of 0 (event numbers below 2^32). */
  readonly seedLow: number;
}

/** Proportions of persons, auctions and bids among every 50 events (1 : 3 : 46). */
export const PERSON_PROPORTION = 1;
/** See {@link PERSON_PROPORTION}. */
export const AUCTION_PROPORTION = 3;
/** See {@link PERSON_PROPORTION}. */
export const TOTAL_PROPORTION = 50;
/** Ids of persons start here. */
export const FIRST_PERSON_ID = 1000;
/** Ids of auctions start here. */
export const FIRST_AUCTION_ID = 1000;
/** Categories are `FIRST_CATEGORY_ID + rand(NUM_CATEGORIES)`. */
export const FIRST_CATEGORY_ID = 10;
/** Number of categories. */
export const NUM_CATEGORIES = 5;
/** A bid goes to the hot auction with probability 1 - 1/HOT_AUCTION_RATIO. */
export const HOT_AUCTION_RATIO = 2;
/** A bidder is the hot bidder with probability 1 - 1/HOT_BIDDER_RATIO. */
export const HOT_BIDDER_RATIO = 4;
/** An auction's seller is the hot seller with probability 1 - 1/HOT_SELLER_RATIO. */
export const HOT_SELLER_RATIO = 4;
/** Hot ids are multiples of this (the hot auction is `floor(lastAuction / 100) * 100`). */
export const HOT_ID_GROUP = 100;
/** Bidders and sellers are drawn among this many most recent people (plus {@link ID_LEAD}). */
export const NUM_ACTIVE_PEOPLE = 1000;
/** Bids go to one of this many most recent auctions (plus {@link ID_LEAD}). */
export const NUM_IN_FLIGHT_AUCTIONS = 100;
/** How many ids beyond the last one a bid, bidder or seller may refer to (not yet generated). */
export const ID_LEAD = 10;
/** Hot channels (each with probability 1/8). */
export const HOT_CHANNELS: readonly string[] = ['Google', 'Facebook', 'Baidu', 'Apple'];
/** Number of non-hot channels. */
export const NUM_CHANNELS = 10_000;
/** States of persons; q3 selects OR, ID and CA. */
export const US_STATES: readonly string[] = ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'];
/** Cities of persons. */
export const US_CITIES: readonly string[] = [
  'Phoenix',
  'Los Angeles',
  'San Francisco',
  'Boise',
  'Portland',
  'Bend',
  'Redmond',
  'Seattle',
  'Kent',
  'Cheyenne',
];
const FIRST_NAMES = [
  'Peter',
  'Paul',
  'Luke',
  'John',
  'Saul',
  'Vicky',
  'Kate',
  'Julie',
  'Sarah',
  'Deiter',
  'Walter',
];
const LAST_NAMES = ['Shultz', 'Abrams', 'Spencer', 'White', 'Bartels', 'Walton', 'Smith', 'Jones', 'Noris'];

/** A configuration with defaults for what `options` leaves out. */
export function nexmarkConfig(options: NexmarkOptions = {}): NexmarkConfig {
  const seed = options.seed ?? 0;
  const firstEventRate = options.firstEventRate ?? 10_000;
  const numEventGenerators = options.numEventGenerators ?? 1;
  if (!Number.isInteger(seed)) throw new RangeError(`nexmark seed must be an integer, got ${seed}`);
  if (!(firstEventRate > 0)) throw new RangeError(`firstEventRate must be positive, got ${firstEventRate}`);
  if (!(Number.isInteger(numEventGenerators) && numEventGenerators >= 1))
    throw new RangeError(`numEventGenerators must be a positive integer, got ${numEventGenerators}`);
  // NOTE: the seed is folded into 32 bits (its low and high words), enough for reproducible runs.
  const seedState = mix32(mix32((seed | 0) ^ 0x5851f42d) ^ Math.floor(seed / 2 ** 32));
  return {
    seed,
    baseTime: options.baseTime ?? Date.UTC(2026, 0, 1),
    firstEventRate,
    numEventGenerators,
    interEventDelayUs: (1e6 / firstEventRate) * numEventGenerators,
    avgPersonByteSize: options.avgPersonByteSize ?? 200,
    avgAuctionByteSize: options.avgAuctionByteSize ?? 500,
    avgBidByteSize: options.avgBidByteSize ?? 100,
    seedState,
    seedLow: mix32(seedState ^ mix32(0x2545f491)),
  };
}

/** The default configuration (seed 0, 10,000 events/s of event time from 2026-01-01). */
export const DEFAULT_CONFIG: NexmarkConfig = nexmarkConfig();

// ---- randomness ----

// NOTE: SplitMix32, the 32-bit analogue of Java's SplittableRandom (SplitMix64), which Flink's
// generator seeds per event: a Weyl sequence (step 0x9e3779b9) through a murmur3-style finalizer.
// An event's random state is `eventSeed(n)`, and its k-th draw is the finalizer of
// `state + k * 0x9e3779b9` — exactly the k-th output of SplitMix32 from that state, computed
// directly (counter-based), so nothing carries over from one event to the next. Each field has
// its own draw index. Plain 32-bit integer math (Math.imul): no BigInt, no allocation; the draws
// of the event being generated sit in a scratch array (generation is synchronous).

function mix32(x: number): number {
  let z = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) | 0;
}

/** The draws of the event being generated: `DRAWS[k]` is draw `k` (uniform in [0, 1)). */
const DRAWS = new Float64Array(16);

/** Computes draws `1 .. count` of the event whose state is `s` into {@link DRAWS}. */
function drawAll(s: number, count: number): void {
  // NOTE: all of an event's draws in one loop, read back by index: one small loop instead of a
  // copy of the mixing code at every call site keeps a bid's code within V8's inlining budget
  // (measured: the generator about 1.4 times faster than with a mixing function per draw).
  // Constants are literals: a module-level numeric `const` is a context slot read (and unboxed)
  // each time (measured: 40 % slower).
  for (let k = 1; k <= count; k++) {
    let z = (s + Math.imul(k, 0x9e3779b9)) | 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    DRAWS[k] = ((z ^ (z >>> 16)) >>> 0) * 2.3283064365386963e-10;
  }
}

/** Draw `k` of the current event as a uniform integer in [0, n). */
function drawInt(k: number, n: number): number {
  return Math.floor(DRAWS[k]! * n);
}

/** The random state of event `eventNumber`: a bijection of the number (below 2^32) for a seed. */
function eventSeed(eventNumber: number, c: NexmarkConfig): number {
  // NOTE: event numbers go beyond 2^32 in long unbounded runs: the high word is mixed in too.
  const hi = Math.floor(eventNumber / 4294967296);
  const base = hi === 0 ? c.seedLow : mix32(c.seedState ^ mix32(hi ^ 0x2545f491));
  return mix32(base ^ Math.imul(eventNumber | 0, 0x9e3779b9));
}

/** A small deterministic generator for the string tables (seeded apart from event randomness). */
function tableRandom(seed: number): () => number {
  let s = mix32(seed ^ 0x6a09e667);
  return () => {
    s = (s + 0x9e3779b9) | 0;
    return (mix32(s) >>> 0) * 2.3283064365386963e-10;
  };
}

// ---- string tables (built once; generation only picks from them) ----

const STRING_VARIANTS = 16;
/** A random lowercase text with a space 1 time in 13 (Flink's `nextString` alphabet). */
function randomText(rnd: () => number, length: number, space = ' '): string {
  let s = '';
  for (let i = 0; i < length; i++)
    s += rnd() * 13 < 1 ? space : String.fromCharCode(97 + Math.floor(rnd() * 26));
  return s;
}

/** `VARIANTS` random texts of every length up to `maxLength`, one array per length. */
function textTable(maxLength: number, variants: number, seed: number): string[][] {
  const rnd = tableRandom(seed);
  const out: string[][] = [];
  for (let len = 0; len <= maxLength; len++) {
    const row: string[] = [];
    for (let v = 0; v < variants; v++) row.push(randomText(rnd, len));
    out.push(row);
  }
  return out;
}

const ITEM_NAMES = textTable(20, STRING_VARIANTS, 1);
const DESCRIPTIONS = textTable(100, STRING_VARIANTS, 2);
/** Padding of every length up to the largest any default configuration asks for. */
const EXTRA_MAX = 1024;
const EXTRA_POOL = randomText(tableRandom(3), EXTRA_MAX + 64);
const EXTRAS: string[] = [];
for (let len = 0; len <= EXTRA_MAX; len++) EXTRAS.push(EXTRA_POOL.slice(len % 61, (len % 61) + len));

const NAMES: string[] = [];
for (const f of FIRST_NAMES) for (const l of LAST_NAMES) NAMES.push(`${f} ${l}`);

const TABLE_SIZE = 1024;
const EMAILS: string[] = [];
const CREDIT_CARDS: string[] = [];
{
  const rnd = tableRandom(4);
  const text = (max: number) => randomText(rnd, 3 + Math.floor(rnd() * (max - 3)));
  const group = () => String(Math.floor(rnd() * 10_000)).padStart(4, '0');
  for (let i = 0; i < TABLE_SIZE; i++) {
    EMAILS.push(`${text(7)}@${text(5)}.com`);
    CREDIT_CARDS.push(`${group()} ${group()} ${group()} ${group()}`);
  }
}

function baseUrl(rnd: () => number): string {
  const part = () => randomText(rnd, 3 + Math.floor(rnd() * 2), '_');
  return `https://www.nexmark.com/${part()}/${part()}/${part()}/item.htm?query=1`;
}

/** Bit-reversal of a 32-bit integer (Java's `Integer.reverse`). */
function reverse32(x: number): number {
  let r = 0;
  for (let i = 0; i < 32; i++) {
    r = (r << 1) | (x & 1);
    x >>>= 1;
  }
  return r | 0;
}

const HOT_URLS: string[] = HOT_CHANNELS.map((_c, i) => baseUrl(tableRandom(100 + i)));
const CHANNELS: string[] = [];
const CHANNEL_URLS: string[] = [];
for (let i = 0; i < NUM_CHANNELS; i++) {
  // As Flink: the URL of a channel is random but fixed (seeded by the channel number); 9 in 10
  // carry a channel id.
  const rnd = tableRandom(1000 + i);
  const url = baseUrl(rnd);
  CHANNELS.push(`channel-${i}`);
  CHANNEL_URLS.push(rnd() * 10 >= 1 ? `${url}&channel_id=${Math.abs(reverse32(i))}` : url);
}
// NOTE: the size of a bid's channel and URL is kept apart: reading `.length` of one of 10,000
// strings spread over the heap costs a cache miss per bid (measured: a third of a bid's time).
const HOT_SIZES = Int32Array.from(HOT_CHANNELS, (c, i) => 32 + c.length + HOT_URLS[i]!.length);
const CHANNEL_SIZES = Int32Array.from(CHANNELS, (c, i) => 32 + c.length + CHANNEL_URLS[i]!.length);

/** Flink's `nextExtra`: padding so that records average `desiredAverageSize` bytes. */
function nextExtra(k: number, currentSize: number, desiredAverageSize: number): string {
  if (currentSize > desiredAverageSize) return '';
  const rest = desiredAverageSize - currentSize;
  const delta = Math.round(rest * 0.2);
  const size = rest - delta + (delta === 0 ? 0 : drawInt(k, 2 * delta));
  return size <= EXTRA_MAX
    ? EXTRAS[size]!
    : EXTRA_POOL.repeat(Math.ceil(size / EXTRA_POOL.length)).slice(0, size);
}

/** Flink's `nextString(maxLength)`: length 3 .. maxLength - 1. */
function nextString(k: number, table: readonly (readonly string[])[], maxLength: number): string {
  const len = 3 + drawInt(k, maxLength - 3);
  const row = table[len]!;
  return row[drawInt(k + 1, row.length)]!;
}

/** `round(10 ** (u * 6) * 100)`: prices from 100 to 100,000,000 (cents), log-uniform. */
function nextPrice(k: number): number {
  // NOTE: written as exp(u * 6 ln 10), the same number, since Math.exp costs a third of `10 **`.
  return Math.round(Math.exp(DRAWS[k]! * 13.815510557964274) * 100); // 6 ln 10
}

// ---- ids and times from the event number ----

/** Event time of event `eventNumber`. */
export function eventTimestamp(eventNumber: number, c: NexmarkConfig = DEFAULT_CONFIG): number {
  return c.baseTime + Math.floor((eventNumber * c.interEventDelayUs) / 1000);
}

/** The base-0 id of the last person generated at or before `eventNumber`. */
export function lastBase0PersonId(eventNumber: number): number {
  // NOTE: with one person per epoch, the last person is always the epoch's.
  return Math.floor(eventNumber / TOTAL_PROPORTION);
}

/** The base-0 id of the last auction generated at or before `eventNumber` (-1 before the first). */
export function lastBase0AuctionId(eventNumber: number): number {
  const epoch = Math.floor(eventNumber / TOTAL_PROPORTION);
  const offset = eventNumber - epoch * TOTAL_PROPORTION;
  if (offset < PERSON_PROPORTION) return (epoch - 1) * AUCTION_PROPORTION + AUCTION_PROPORTION - 1;
  if (offset >= PERSON_PROPORTION + AUCTION_PROPORTION)
    return epoch * AUCTION_PROPORTION + AUCTION_PROPORTION - 1;
  return epoch * AUCTION_PROPORTION + offset - PERSON_PROPORTION;
}

/** One of the last 1000 people, or one of the 10 next ones (base 0). */
function nextBase0PersonId(k: number, lastPerson: number): number {
  const numPeople = lastPerson + 1;
  const active = Math.min(numPeople, 1000); // NUM_ACTIVE_PEOPLE
  return numPeople - active + drawInt(k, active + 10); // ID_LEAD
}

/** One of the last 100 auctions, or one of the 10 next ones (base 0). */
function nextBase0AuctionId(k: number, lastAuction: number): number {
  const min = lastAuction > 100 ? lastAuction - 100 : 0; // NUM_IN_FLIGHT_AUCTIONS
  return min + drawInt(k, lastAuction - min + 1 + 10); // ID_LEAD
}

/** Number of events in which 100 auctions are generated (Flink's `numEventsForAuctions`). */
export const EVENTS_FOR_IN_FLIGHT_AUCTIONS = Math.floor(
  (NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION) / AUCTION_PROPORTION,
);

// ---- the events ----

/**
 * Event number `eventNumber` (0, 1, 2, ...): deterministic from the configuration's seed and the
 * number alone. Allocates the event object and nothing else.
 */
export function nexmarkEvent(eventNumber: number, c: NexmarkConfig = DEFAULT_CONFIG): Event {
  const s = eventSeed(eventNumber, c);
  // 50 events per epoch: a person (offset 0), three auctions (1-3), 46 bids (4-49).
  const epoch = Math.floor(eventNumber / 50);
  const offset = eventNumber - epoch * 50;
  const dateTime = c.baseTime + Math.floor((eventNumber * c.interEventDelayUs) / 1000);
  // Each kind computes exactly the draws it reads (a draw index beyond the count would read the
  // previous event's: keep these counts in step with the draw indices below).
  if (offset >= 4) {
    drawAll(s, 8);
    return nextBid(epoch, dateTime, c);
  }
  if (offset < 1) {
    drawAll(s, 6);
    return nextPerson(epoch, dateTime, c);
  }
  drawAll(s, 11);
  return nextAuction(eventNumber, epoch, offset, dateTime, c);
}

function nextBid(epoch: number, dateTime: number, c: NexmarkConfig): Bid {
  // After a person and the epoch's three auctions: the last auction is the epoch's third.
  const lastAuction = epoch * 3 + 2;
  // The hot auction (HOT_AUCTION_RATIO 2, HOT_ID_GROUP 100), else a recent one.
  const auction =
    drawInt(1, 2) > 0 ? Math.floor(lastAuction / 100) * 100 : nextBase0AuctionId(2, lastAuction);
  // The hot bidder (HOT_BIDDER_RATIO 4), else a recent person.
  const bidder = drawInt(3, 4) > 0 ? Math.floor(epoch / 100) * 100 + 1 : nextBase0PersonId(4, epoch);
  const price = nextPrice(5);
  let channel: string;
  let url: string;
  let size: number;
  if (drawInt(6, 2) > 0) {
    const i = drawInt(7, 4); // one of the 4 HOT_CHANNELS
    channel = HOT_CHANNELS[i]!;
    url = HOT_URLS[i]!;
    size = HOT_SIZES[i]!;
  } else {
    const i = drawInt(7, 10_000); // NUM_CHANNELS
    channel = CHANNELS[i]!;
    url = CHANNEL_URLS[i]!;
    size = CHANNEL_SIZES[i]!;
  }
  // NOTE: the size counts every field (8 bytes per number, one per character), so bids average
  // about 100 bytes as NEXMARK.md asks; channel and URL mostly fill that already, so most bids
  // have no padding. (Flink counts only a bid's numbers, which makes its bids ~170 bytes.)
  const extra = nextExtra(8, size, c.avgBidByteSize);
  return {
    kind: 'bid',
    auction: auction + 1000, // FIRST_AUCTION_ID
    bidder: bidder + 1000, // FIRST_PERSON_ID
    price,
    channel,
    url,
    dateTime,
    extra,
  };
}

function nextPerson(epoch: number, dateTime: number, c: NexmarkConfig): Person {
  const name = NAMES[drawInt(1, NAMES.length)]!;
  const emailAddress = EMAILS[drawInt(2, EMAILS.length)]!;
  const creditCard = CREDIT_CARDS[drawInt(3, CREDIT_CARDS.length)]!;
  const city = US_CITIES[drawInt(4, US_CITIES.length)]!;
  const st = US_STATES[drawInt(5, US_STATES.length)]!;
  const size = 16 + name.length + emailAddress.length + creditCard.length + city.length + st.length;
  return {
    kind: 'person',
    id: epoch + 1000, // FIRST_PERSON_ID
    name,
    emailAddress,
    creditCard,
    city,
    state: st,
    dateTime,
    extra: nextExtra(6, size, c.avgPersonByteSize),
  };
}

function nextAuction(
  eventNumber: number,
  epoch: number,
  offset: number,
  dateTime: number,
  c: NexmarkConfig,
): Auction {
  // The hot seller (HOT_SELLER_RATIO 4), else a recent person.
  const seller = drawInt(1, 4) > 0 ? Math.floor(epoch / 100) * 100 : nextBase0PersonId(2, epoch);
  const category = 10 + drawInt(3, 5); // FIRST_CATEGORY_ID + rand(NUM_CATEGORIES)
  const initialBid = nextPrice(4);
  // The auction stays open for up to twice the event time in which 100 more auctions are generated.
  const horizon =
    Math.floor(((eventNumber + 1666) * c.interEventDelayUs) / 1000) - // EVENTS_FOR_IN_FLIGHT_AUCTIONS
    Math.floor((eventNumber * c.interEventDelayUs) / 1000);
  const expires = dateTime + 1 + drawInt(5, Math.max(horizon * 2, 1));
  const itemName = nextString(6, ITEM_NAMES, 20);
  const description = nextString(8, DESCRIPTIONS, 100);
  const reserve = initialBid + nextPrice(10);
  const size = 8 + itemName.length + description.length + 8 + 8 + 8 + 8 + 8 + 8;
  return {
    kind: 'auction',
    id: epoch * 3 + offset - 1 + 1000, // FIRST_AUCTION_ID
    itemName,
    description,
    initialBid,
    reserve,
    dateTime,
    expires,
    seller: seller + 1000, // FIRST_PERSON_ID
    category,
    extra: nextExtra(11, size, c.avgAuctionByteSize),
  };
}

// ---- the source ----

/** A split of the event numbers: `next, next + stride, ...` below `end`. Plain data (checkpointed). */
export interface NexmarkSplit extends SourceSplit {
  /** The next event number of this split (its position). */
  next: number;
  /** Event numbers of this split are below this (`Number.MAX_SAFE_INTEGER` when unbounded). */
  readonly end: number;
  readonly stride: number;
}

/** Options of {@link NexmarkSource}. */
export interface NexmarkSourceOptions {
  /** Number of events (default: unbounded). */
  count?: number;
  /**
   * Events per second of processing time over all subtasks (default: as fast as possible). Event
   * `n` is due `n * 1000 / ratePerSecond` ms after the start, whichever subtask generates it.
   */
  ratePerSecond?: number;
  /**
   * With a rate: the processing time (ms) at which event 0 is due (default: the first poll, so
   * that each reader starts at its own first poll, and a restored one goes on from there).
   */
  startTime?: number;
  /** Generator configuration (default {@link DEFAULT_CONFIG}). */
  config?: NexmarkConfig;
  /**
   * Events a reader emits per poll at most (default 256). Larger amortizes the runtime's work per
   * poll; smaller gives a simulated run (tidemark/testing) more points to interleave and fail at.
   */
  eventsPerPoll?: number;
}

/**
 * A parallel, replayable source of Nexmark events. Subtask `i` of `p` generates the event numbers
 * `i, i + p, i + 2p, ...`; each split's position is its next event number.
 *
 * NOTE: splits interleave event numbers instead of cutting contiguous ranges, so that every
 * subtask's event time (which follows the event number) advances together: with contiguous
 * ranges an unbounded source's second subtask would start centuries ahead in event time, and
 * downstream windows would hold a later subtask's events until the earlier ones caught up.
 * (Beam's generator gets the same from contiguous id ranges that each restart their time.)
 */
export class NexmarkSource implements Source<Event, NexmarkSplit> {
  readonly boundedness: 'bounded' | 'unbounded';
  readonly count: number;
  readonly ratePerSecond: number | undefined;
  readonly startTime: number | undefined;
  readonly config: NexmarkConfig;
  readonly eventsPerPoll: number;
  constructor(options: NexmarkSourceOptions = {}) {
    this.count = options.count ?? Number.MAX_SAFE_INTEGER;
    if (!(Number.isInteger(this.count) && this.count >= 0))
      throw new RangeError(`nexmark count must be a non-negative integer, got ${options.count}`);
    if (options.ratePerSecond !== undefined && !(options.ratePerSecond > 0))
      throw new RangeError(`nexmark ratePerSecond must be positive, got ${options.ratePerSecond}`);
    this.ratePerSecond = options.ratePerSecond;
    this.startTime = options.startTime;
    this.config = options.config ?? DEFAULT_CONFIG;
    this.eventsPerPoll = options.eventsPerPoll ?? EVENTS_PER_POLL;
    if (!(Number.isInteger(this.eventsPerPoll) && this.eventsPerPoll > 0))
      throw new RangeError(`nexmark eventsPerPoll must be a positive integer, got ${options.eventsPerPoll}`);
    this.boundedness = options.count === undefined ? 'unbounded' : 'bounded';
  }
  createSplits(parallelism: number): NexmarkSplit[] {
    const out: NexmarkSplit[] = [];
    for (let i = 0; i < parallelism; i++)
      out.push({ splitId: `nexmark-${i}-of-${parallelism}`, next: i, end: this.count, stride: parallelism });
    return out;
  }
  createReader(ctx: SourceReaderContext): SourceReader<Event, NexmarkSplit> {
    return new NexmarkReader(this.config, this.ratePerSecond, this.startTime, this.eventsPerPoll, ctx);
  }
}

/** Events a reader emits per poll at most by default (see the note in `pollNext`). */
const EVENTS_PER_POLL = 256;

/** Reads its splits round-robin, a batch per poll, optionally rate-limited. */
class NexmarkReader implements SourceReader<Event, NexmarkSplit> {
  private readonly splits: NexmarkSplit[] = [];
  private readonly outputs: (ReaderOutput<Event> | undefined)[] = [];
  private current = 0;
  /** Milliseconds of processing time per event (rate-limited readers). */
  private readonly msPerEvent: number;
  constructor(
    private readonly config: NexmarkConfig,
    ratePerSecond: number | undefined,
    private start: number | undefined,
    private readonly eventsPerPoll: number,
    private readonly ctx: SourceReaderContext,
  ) {
    this.msPerEvent = ratePerSecond === undefined ? 0 : 1000 / ratePerSecond;
  }

  addSplits(splits: readonly NexmarkSplit[]): void {
    for (const s of splits) {
      this.splits.push({ ...s });
      this.outputs.push(undefined);
    }
  }

  pollNext(output: ReaderOutput<Event>): InputStatus {
    if (this.splits.length === 0) return END_OF_INPUT;
    if (this.current >= this.splits.length) this.current = 0;
    const k = this.current++;
    const split = this.splits[k]!;
    if (split.next >= split.end) {
      output.releaseSplit(split.splitId);
      this.splits.splice(k, 1);
      this.outputs.splice(k, 1);
      return this.splits.length === 0 ? END_OF_INPUT : MORE_AVAILABLE;
    }
    const stride = split.stride;
    let end = split.end;
    // NOTE: a poll may emit several events (the source contract allows it): it amortizes the
    // runtime's per-poll work. Channels are a soft bound and checked between polls, so a batch
    // can overshoot a full queue by at most its size.
    const batchEnd = split.next + this.eventsPerPoll * stride;
    if (batchEnd < end) end = batchEnd;
    if (this.msPerEvent > 0) {
      // Event n is due at start + n * msPerEvent: pacing by event number keeps the subtasks in
      // step with each other and with the event time they generate.
      const now = this.ctx.clock.now();
      if (this.start === undefined) this.start = now - this.minNext() * this.msPerEvent;
      const due = Math.floor((now - this.start) / this.msPerEvent) + 1;
      if (split.next >= due) {
        // This split is ahead; another one of this reader may be due (polled next, round-robin).
        const min = this.minNext();
        if (min < due) return MORE_AVAILABLE;
        this.ctx.wakeAt(Math.ceil(this.start + min * this.msPerEvent));
        return NOTHING_AVAILABLE;
      }
      if (due < end) end = due;
    }
    const out = this.outputs[k] ?? (this.outputs[k] = output.forSplit(split.splitId));
    const c = this.config;
    let i = split.next;
    for (; i < end; i += stride) {
      const e = nexmarkEvent(i, c);
      out.collect(e, e.dateTime);
    }
    split.next = i;
    return MORE_AVAILABLE;
  }

  private minNext(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const s of this.splits) if (s.next < min) min = s.next;
    return min;
  }

  snapshotState(): NexmarkSplit[] {
    return this.splits.map((s) => ({ ...s }));
  }
}

/** Options of {@link nexmarkStream}. */
export interface NexmarkStreamOptions extends NexmarkSourceOptions {
  /** Out-of-orderness bound of the watermarks in ms (default 4000, the reference jobs' setting). */
  outOfOrdernessMs?: number;
}

/**
 * The Nexmark event stream with the reference watermarks: bounded out-of-orderness of 4 s on
 * `dateTime`, generated per split. The source attaches `dateTime` as each record's timestamp
 * (as a Kafka source attaches record timestamps), so no timestamp assigner runs per event.
 */
export function nexmarkStream(env: StreamEnvironment, options: NexmarkStreamOptions = {}): DataStream<Event> {
  const watermarks = WatermarkStrategy.forBoundedOutOfOrderness<Event>(options.outOfOrdernessMs ?? 4000);
  return env.fromSource(new NexmarkSource(options), watermarks, 'nexmark').uid('nexmark-source');
}

function onlyBids(e: Event, out: Collector<Bid>): void {
  if (e.kind === 'bid') out.collect(e);
}
function onlyAuctions(e: Event, out: Collector<Auction>): void {
  if (e.kind === 'auction') out.collect(e);
}
function onlyPersons(e: Event, out: Collector<Person>): void {
  if (e.kind === 'person') out.collect(e);
}

// NOTE: the views are flatMaps that pass the event itself on (no projection, no copy), typed as
// the kind they keep: one operator, where a filter would need a cast or a map after it.

/** The bids of the stream (Flink's `bid` view). */
export function bidsOf(events: DataStream<Event>): DataStream<Bid> {
  return events.flatMap(onlyBids).name('bids');
}

/** The auctions of the stream (Flink's `auction` view). */
export function auctionsOf(events: DataStream<Event>): DataStream<Auction> {
  return events.flatMap(onlyAuctions).name('auctions');
}

/** The persons of the stream (Flink's `person` view). */
export function personsOf(events: DataStream<Event>): DataStream<Person> {
  return events.flatMap(onlyPersons).name('persons');
}

/** `COUNT(*)` of the queries' windows, as an incremental aggregate (mergeable, for sessions). */
export const countAll: AggregateFunction<unknown, number, number> = {
  createAccumulator: () => 0,
  add: (_e, n) => n + 1,
  getResult: (n) => n,
  merge: (a, b) => a + b,
};

// ---- settings of the example jobs ----

/** Number of events of an example job: `NEXMARK_EVENTS` (default 100,000; 0 for unbounded). */
export function eventCountFromEnv(): number | undefined {
  const raw = process.env.NEXMARK_EVENTS;
  const n = raw === undefined || raw === '' ? 100_000 : Number(raw);
  if (!(Number.isInteger(n) && n >= 0))
    throw new RangeError(`NEXMARK_EVENTS must be a whole number, got ${raw}`);
  return n === 0 ? undefined : n;
}

/** Events per second of an example job: `NEXMARK_RATE` (default: as fast as possible). */
export function rateFromEnv(): number | undefined {
  const raw = process.env.NEXMARK_RATE;
  if (raw === undefined || raw === '') return undefined;
  const r = Number(raw);
  if (!(r > 0)) throw new RangeError(`NEXMARK_RATE must be a positive number, got ${raw}`);
  return r;
}

/** The event stream of an example job, as `NEXMARK_EVENTS` and `NEXMARK_RATE` ask. */
export function eventsFromEnv(env: StreamEnvironment): DataStream<Event> {
  return nexmarkStream(env, { count: eventCountFromEnv(), ratePerSecond: rateFromEnv() });
}
