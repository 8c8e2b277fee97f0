// Nexmark q8: monitor new users — people who opened an account and created an auction in the same
// 10 s tumbling window: a window coGroup of persons and auctions on `id = seller`.
//
// Flink's q8 groups each side per window first (`GROUP BY id, name, window_start, window_end` for
// persons, `GROUP BY seller, window_start, window_end` for auctions), so each person is reported
// once per window however many auctions they opened: a coGroup (both sides of a key's window at
// once) gives that directly, where a window join would emit one row per (person, auction) pair.
// The same grouping makes a person record repeated in a window one row, and the same id under
// two names two rows (generated person ids are unique, so only other inputs see the difference).
//
// Run it with:  npx tidemark run examples/nexmark/q8.ts   (NEXMARK_EVENTS=n, NEXMARK_RATE=r)
import { type DataStream, job, TumblingEventTimeWindows } from 'tidemark';
import { auctionsOf, type Event, eventsFromEnv, personsOf } from './generator.js';

/** A new user who also sells (Flink's q8 columns). */
export interface Q8Result {
  id: number;
  name: string;
  /** Start of the window. */
  starttime: number;
}

/** Window size of q8 (ms). */
export const Q8_SIZE_MS = 10_000;

/** The columns of a person q8 reads. */
interface NewPerson {
  id: number;
  name: string;
  dateTime: number;
}

/** True if a person before `i` has the name of person `i`. */
function nameSeenBefore(persons: readonly NewPerson[], i: number): boolean {
  const name = persons[i]!.name;
  for (let j = 0; j < i; j++) if (persons[j]!.name === name) return true;
  return false;
}

/** q8: persons and their auctions in the same 10 s tumbling window, one row per person and window. */
export function build(events: DataStream<Event>): DataStream<Q8Result> {
  // Only the columns the query reads go into the window (a person's id, name and time, an
  // auction's seller): projected before the shuffle, as Flink's planner does for q8.sql, so the
  // window keeps three fields of a person and a number per auction, not the whole events.
  const persons = personsOf(events)
    .map((p): NewPerson => ({ id: p.id, name: p.name, dateTime: p.dateTime }))
    .name('q8: columns of the person');
  const sellers = auctionsOf(events)
    .map((a) => a.seller)
    .name('q8: seller of the auction');
  return persons
    .coGroup(sellers)
    .where((p) => p.id)
    .equalTo((seller) => seller)
    .window(TumblingEventTimeWindows.of(Q8_SIZE_MS))
    .apply<Q8Result>((persons, sellers, out) => {
      if (sellers.length === 0) return;
      // The key is the id: one row per distinct name among the window's persons.
      for (let i = 0; i < persons.length; i++) {
        const p = persons[i]!;
        if (nameSeenBefore(persons, i)) continue;
        out.collect({ id: p.id, name: p.name, starttime: p.dateTime - (p.dateTime % Q8_SIZE_MS) });
      }
    })
    .name('q8: new sellers')
    .uid('q8-cogroup');
}

export default job(
  (env) => {
    build(eventsFromEnv(env)).print('q8');
  },
  { name: 'nexmark-q8' },
);
