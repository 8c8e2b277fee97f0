// Frames between slots: whatever records a channel carries, they come out of a frame exactly as
// they went in (values, key order, number identities such as -0 and NaN, types), through a
// structured clone with transferred buffers (between threads) and through msgpackr (between
// processes); flat records of one shape go in columns, everything else through msgpackr.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { decodeFrame, encodeFrame } from '../../runtime/distributed/frame-codec.js';
import { BARRIER, RECORD, WATERMARK } from '../../runtime/task/channel.js';
import { decode, encode } from '../../state/snapshot/format.js';

type Event = [number, unknown, number];

/** The events after a trip; `columns`: whether the records went in columns. */
function trip(events: Event[], via: 'clone' | 'msgpack'): { out: Event[]; columns: boolean } {
  const { frame, transfer } = encodeFrame(
    events.map((e) => e[0]),
    events.map((e) => e[1]),
    events.map((e) => e[2]),
  );
  const crossed =
    via === 'clone' ? structuredClone(frame, { transfer }) : decode<typeof frame>(encode(frame));
  const out: Event[] = [];
  const columns = !(frame.records instanceof Uint8Array);
  decodeFrame(crossed, (k, v, t) => out.push([k, v, t]));
  return { out, columns };
}

function roundTrip(events: Event[], via: 'clone' | 'msgpack'): Event[] {
  return trip(events, via).out;
}

/**
 * Deep equality that also compares key order and number identity (NaN, and -0 when `zero`:
 * msgpackr, the path of frames that do not go in columns, writes -0 as 0, as it always did).
 */
function same(a: unknown, b: unknown, zero = true): boolean {
  if (typeof a === 'number') return typeof b === 'number' && (Object.is(a, b) || (!zero && a === b));
  if (typeof a !== 'object' || a === null) return a === b;
  if (typeof b !== 'object' || b === null) return false;
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i], zero));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return (
    ka.length === kb.length &&
    ka.every(
      (k, i) =>
        k === kb[i] && same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], zero),
    )
  );
}

const str = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ minLength: 13, maxLength: 200 }),
);
const num = fc.oneof(fc.double(), fc.integer(), fc.constant(-0), fc.constant(Number.NaN));
const flat = (keys: string[]) =>
  fc
    .tuple(...keys.map(() => fc.oneof(num, str, fc.boolean())))
    .map((vs) => Object.fromEntries(keys.map((k, i) => [k, vs[i]])));
const anyValue = fc.oneof(
  num,
  str,
  fc.constant(null),
  fc.array(num, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(num, str, fc.boolean(), fc.constant(null)), {
    maxKeys: 4,
  }),
  fc.record({ nested: fc.record({ x: num }) }),
);

describe('frame codec', () => {
  test.each(['clone', 'msgpack'] as const)(
    'any records, watermarks and barriers come back as they were (%s)',
    (via) => {
      // One shape for many records (the column path), with now and then a different one (msgpackr).
      const shaped = fc
        .uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 })
        .chain((keys) =>
          fc.array(fc.oneof({ weight: 8, arbitrary: flat(keys) }, { weight: 1, arbitrary: anyValue }), {
            maxLength: 40,
          }),
        );
      const events = shaped.chain((values) =>
        fc.array(fc.constantFrom(WATERMARK, BARRIER), { maxLength: 5 }).map((marks) => {
          const out: Event[] = values.map((v, i) => [RECORD, v, i]);
          for (const [i, k] of marks.entries())
            out.splice((i * 7) % (out.length + 1), 0, [k, k === BARRIER ? i + 1 : undefined, i * 10]);
          return out;
        }),
      );
      fc.assert(
        fc.property(events, (evs) => {
          const { out: back, columns } = trip(evs, via);
          expect(back.length).toBe(evs.length);
          for (let i = 0; i < evs.length; i++) {
            expect(back[i]![0]).toBe(evs[i]![0]);
            expect(back[i]![2]).toBe(evs[i]![2]);
            if (!same(back[i]![1], evs[i]![1], columns))
              throw new Error(`event ${i}: ${JSON.stringify(back[i]![1])} != ${JSON.stringify(evs[i]![1])}`);
          }
        }),
        { numRuns: 300 },
      );
    },
  );

  test('records of one flat shape go in columns; a record with a key more, a key order changed, a prototype or __proto__ goes by msgpackr', () => {
    const bid = {
      kind: 'bid',
      auction: 1,
      price: 2.5,
      hot: true,
      url: 'https://example.com/a/long/url?query=1',
    };
    const columns = (values: unknown[]) =>
      !(
        encodeFrame(
          values.map(() => RECORD),
          values,
          values.map((_v, i) => i),
        ).frame.records instanceof Uint8Array
      );
    expect(columns([bid, { ...bid, auction: 2 }])).toBe(true);
    expect(columns([1, 2, 3.5])).toBe(true);
    expect(columns(['a', 'b'])).toBe(true);
    expect(columns([bid, { ...bid, extra: 1 }])).toBe(false);
    expect(columns([bid, { auction: 1, kind: 'bid', price: 2.5, hot: true, url: 'u' }])).toBe(false);
    expect(columns([bid, { ...bid, price: '2.5' }])).toBe(false);
    expect(
      columns([
        new (class Bid {
          a = 1;
        })(),
      ]),
    ).toBe(false);
    expect(columns([JSON.parse('{"__proto__": 1}')])).toBe(false);
    expect(columns([{ a: null }])).toBe(false);
    const proto = JSON.parse('{"__proto__": 1, "a": 2}');
    const [[, back]] = roundTrip([[RECORD, proto, 0]], 'clone') as [
      [number, Record<string, unknown>, number],
    ];
    // Never a prototype (msgpackr renames the key, as it always did).
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(back.a).toBe(2);
  });
});
