// Nexmark q3: local item suggestion — people in Oregon, Idaho or California who sell in
// category 10, as an incremental join of auctions and people on `seller = id`.
//
// As Flink's regular (non-windowed) join: both sides are kept in keyed state, and each matching
// (person, auction) pair is emitted once, whichever of the two arrives first. An auction can come
// before its seller (the generator lets sellers be up to 10 people ahead of the last one, and
// parallel channels interleave), so auctions wait in state for their person.
//
// NOTE: one person is kept per id (the latest), and an auction that found its person is not kept:
// Nexmark's person ids are unique (each person event is a new account). For an id repeated in
// some other input, q3.sql would join every auction with every record of that id; here each
// auction joins once, with the record kept when it or its person came.
//
// Run it with:  npx tidemark run examples/nexmark/q3.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import {
  type Collector,
  type DataStream,
  job,
  KeyedCoProcessFunction,
  type KeyedProcessContext,
  type ListState,
  ListStateDescriptor,
  type RuntimeContext,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { type Auction, auctionsOf, type Event, eventsFromEnv, type Person, personsOf } from './generator.js';

/** The columns of q3: the person and the auction. */
export interface Q3Result {
  name: string;
  city: string;
  state: string;
  id: number;
}

/** The states q3 selects. */
export const Q3_STATES: readonly string[] = ['OR', 'ID', 'CA'];
/** The category q3 selects. */
export const Q3_CATEGORY = 10;

interface Seller {
  name: string;
  city: string;
  state: string;
}

/** Joins auctions (input 1, by seller) with people (input 2, by id). */
class JoinSellers extends KeyedCoProcessFunction<number, Auction, Person, Q3Result> {
  private seller!: ValueState<Seller>;
  private waiting!: ListState<number>;
  override open(ctx: RuntimeContext): void {
    this.seller = ctx.getState(new ValueStateDescriptor<Seller>('seller'));
    this.waiting = ctx.getListState(new ListStateDescriptor<number>('auctions-waiting-for-seller'));
  }
  processElement1(a: Auction, _ctx: KeyedProcessContext<number>, out: Collector<Q3Result>): void {
    const p = this.seller.value();
    if (p === undefined) this.waiting.add(a.id);
    else out.collect({ name: p.name, city: p.city, state: p.state, id: a.id });
  }
  processElement2(p: Person, _ctx: KeyedProcessContext<number>, out: Collector<Q3Result>): void {
    this.seller.update({ name: p.name, city: p.city, state: p.state });
    const waiting = this.waiting.get();
    if (waiting.length === 0) return;
    for (const id of waiting) out.collect({ name: p.name, city: p.city, state: p.state, id });
    this.waiting.clear();
  }
}

/**
 * q3: `SELECT P.name, P.city, P.state, A.id FROM auction A JOIN person P ON A.seller = P.id
 * WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')`.
 */
export function build(events: DataStream<Event>): DataStream<Q3Result> {
  const auctions = auctionsOf(events)
    .filter((a) => a.category === Q3_CATEGORY)
    .name('q3: category 10');
  const persons = personsOf(events)
    .filter((p) => Q3_STATES.includes(p.state))
    .name('q3: OR, ID, CA');
  return auctions
    .keyBy((a) => a.seller)
    .connect(persons.keyBy((p) => p.id))
    .process(new JoinSellers())
    .name('q3: join sellers')
    .uid('q3-join');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q3');
  },
  { name: 'nexmark-q3' },
);
