// The timer service's hash index (numbers in an open-addressing table, other keys in a Map)
// answers as a Map does, over random additions, replacements, deletions and resets of numbers (small
// integers, timestamps, fractions, 0 and -0, NaN) and other keys, with enough churn that deleted
// slots are reused and the table is rebuilt many times.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { KeyIndex } from '../../runtime/operator/key-index.js';

type Op =
  | { kind: 'set'; key: unknown; value: number }
  | { kind: 'delete'; key: unknown }
  | { kind: 'reset'; expected: number };

const key: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -40, max: 200 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 300 }).map((i) => 1.7e12 + i * 83) },
  { weight: 1, arbitrary: fc.constantFrom(0, -0, Number.NaN, 0.5, -1.25, 2 ** 31, -(2 ** 31) - 1, 2 ** 53) },
  { weight: 1, arbitrary: fc.constantFrom('a', '7', '', '\u0001[1]', 7n, true, false) },
);

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('set' as const), key, value: fc.integer() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), key }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('reset' as const), expected: fc.nat({ max: 300 }) }),
  },
);

/** The keys of a Map as the index lists them (-0 as 0, as both keep it), sorted to compare. */
function sorted(keys: Iterable<unknown>): string[] {
  return [...keys].map((k) => `${typeof k}:${String(k)}`).sort();
}

describe('KeyIndex', () => {
  test('answers get, has, delete and size as a Map, and lists its keys', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 400 }), (ops) => {
        const index = new KeyIndex<number>();
        const model = new Map<unknown, number>();
        for (const o of ops) {
          if (o.kind === 'reset') {
            index.reset(o.expected);
            model.clear();
            expect(index.size).toBe(0);
            continue;
          }
          if (o.kind === 'set') {
            index.set(o.key, o.value);
            model.set(o.key, o.value);
          } else expect(index.delete(o.key)).toBe(model.delete(o.key));
          expect(index.get(o.key)).toBe(model.get(o.key));
          expect(index.has(o.key)).toBe(model.has(o.key));
          expect(index.size).toBe(model.size);
        }
        for (const k of model.keys()) expect(index.get(k)).toBe(model.get(k));
        expect(sorted(index.keyList())).toEqual(sorted(model.keys()));
        index.clear();
        expect(index.size).toBe(0);
        expect(index.keyList()).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });

  test('keeps every live key through long runs of churn (deleted slots reused, the table rebuilt)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 50_000 }), (live, n) => {
        // A sliding range of keys, as timers per key come and go: key i is added, and i - live deleted.
        const index = new KeyIndex<number>();
        for (let i = 0; i < n; i++) {
          index.set(1.7e12 + i * 7, i);
          if (i >= live) expect(index.delete(1.7e12 + (i - live) * 7)).toBe(true);
        }
        expect(index.size).toBe(Math.min(live, n));
        for (let i = Math.max(0, n - live); i < n; i++) expect(index.get(1.7e12 + i * 7)).toBe(i);
        expect(index.get(1.7e12 + (n - live - 1) * 7)).toBe(undefined);
      }),
      { numRuns: 40 },
    );
  });
});
