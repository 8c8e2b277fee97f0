// The key-group codec of checkpoints (version 3: columns, typed arrays for numbers, namespaces
// once per key group): whatever a key group holds comes back exactly, and key groups written by
// version 2 (the flat arrays as msgpackr encodes them) still decode.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { TimeWindow } from '../../operators/windows/windows.js';
import { encode } from '../../state/snapshot/format.js';
import { decodeKeyGroupSnapshot, encodeKeyGroupSnapshot } from '../../state/snapshot/key-group-codec.js';
import type { KeyGroupSnapshot, TableSnapshot, TimersSnapshot } from '../../state/snapshot/types.js';

// Numbers that typed arrays could get wrong: -0, NaN, fractions, beyond uint32, negatives.
const numberArb = fc.oneof(
  fc.nat({ max: 2 ** 32 - 1 }),
  fc.constantFrom(-0, Number.NaN, 2 ** 32, -1, 0.5, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER),
  fc.double(),
);
const valueArb = fc.oneof(
  { weight: 4, arbitrary: numberArb },
  { weight: 1, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.record({ n: fc.integer(), s: fc.string() }) },
  { weight: 1, arbitrary: fc.array(fc.integer(), { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.bigInt() },
);
const keyArb = fc.oneof(fc.nat({ max: 1000 }), fc.string({ maxLength: 4 }));
const namespaceArb = fc.oneof(fc.constantFrom('0:10', '10:20', 'w'), fc.nat({ max: 3 }));

const tableArb: fc.Arbitrary<TableSnapshot> = fc.oneof(
  fc
    .uniqueArray(fc.tuple(keyArb, valueArb), { selector: ([k]) => k, maxLength: 12 })
    .map((entries) => ({ kind: 'value' as const, namespaced: false, data: entries.flat() })),
  fc
    .uniqueArray(
      fc.tuple(
        keyArb,
        fc.uniqueArray(fc.tuple(namespaceArb, valueArb), {
          selector: ([ns]) => ns,
          minLength: 1,
          maxLength: 4,
        }),
      ),
      { selector: ([k]) => k, maxLength: 12 },
    )
    .map((entries) => ({
      kind: 'aggregating' as const,
      namespaced: true,
      data: entries.flatMap(([k, inner]) => [k, inner.length, ...inner.flat()]),
    })),
);

// Timer namespaces: windows (several objects may be the same window), or plain values.
const timerNamespaceArb = fc.oneof(
  fc
    .tuple(fc.integer({ min: -3, max: 3 }), fc.nat({ max: 2 }))
    .map(([i, n]) => new TimeWindow(i * 10, i * 10 + 10 + n)),
  fc.constantFrom('VoidNamespace', 7),
);
const flatTimersArb = fc
  .array(fc.tuple(keyArb, timerNamespaceArb, numberArb), { maxLength: 12 })
  .map((timers) => timers.flat());
const timersArb: fc.Arbitrary<TimersSnapshot> = fc.record({
  event: flatTimersArb,
  processing: flatTimersArb,
});

const keyGroupArb: fc.Arbitrary<KeyGroupSnapshot> = fc
  .record({
    state: fc.dictionary(fc.constantFrom('contents', 'count', 'seen'), tableArb, { maxKeys: 3 }),
    timers: fc.dictionary(fc.constantFrom('window-timers', 'user-timers'), timersArb, { maxKeys: 2 }),
    replaces: fc.option(fc.array(keyArb, { maxLength: 4 }), { nil: undefined }),
  })
  .map(({ replaces, ...kg }) => (replaces === undefined ? kg : { ...kg, replaces }));

/**
 * What a checkpoint gives back: windows as their plain data (`toJSON`), as before version 3; -0
 * may come back as 0 (msgpackr writes it as the integer 0, and always did).
 */
function asRestored(kg: KeyGroupSnapshot): unknown {
  return JSON.parse(
    JSON.stringify(kg, (_k, v: unknown) => {
      if (typeof v === 'bigint') return `${v}n`;
      if (typeof v === 'number' && !Number.isFinite(v)) return `number:${String(v)}`;
      return v;
    }),
  );
}

describe('key-group codec', () => {
  test('a key group comes back exactly: state, timers (with their namespaces), replaced keys', () => {
    fc.assert(
      fc.property(keyGroupArb, (kg) => {
        const back = decodeKeyGroupSnapshot(encodeKeyGroupSnapshot(kg));
        expect(asRestored(back)).toEqual(asRestored(kg));
        // Numbers keep their exact values (NaN, fractions, beyond uint32; -0 as 0 or -0).
        for (const [name, t] of Object.entries(kg.state))
          t.data.forEach((x, i) => {
            const y = back.state[name]!.data[i];
            if (typeof x === 'number') expect(Object.is(y, x) || (x === 0 && y === 0)).toBe(true);
          });
      }),
      { numRuns: 300 },
    );
  });

  test('key groups of version-2 checkpoints (flat arrays) still decode', () => {
    fc.assert(
      fc.property(keyGroupArb, (kg) => {
        expect(asRestored(decodeKeyGroupSnapshot(encode(kg)))).toEqual(asRestored(kg));
      }),
      { numRuns: 100 },
    );
  });

  test('numbers are written as typed arrays and each window once', () => {
    const w = new TimeWindow(0, 86_400_000);
    const data: unknown[] = [];
    const timers: unknown[] = [];
    for (let k = 0; k < 10_000; k++) {
      data.push(k, 1, w.namespace(), k % 7);
      // A new window object per timer: equal windows are still written once.
      timers.push(k, new TimeWindow(0, 86_400_000), w.maxTimestamp());
    }
    const kg: KeyGroupSnapshot = {
      state: { contents: { kind: 'aggregating', namespaced: true, data } },
      timers: { 'window-timers': { event: timers, processing: [] } },
    };
    const bytes = encodeKeyGroupSnapshot(kg);
    // Per key: 2 bytes of key, 1 of entry count, 1 of namespace, 1 of value; 2 of timer key, 1 of
    // timer namespace, 4 of timestamp: 12 bytes, and little else.
    expect(bytes.length).toBeLessThan(10_000 * 12 + 1_000);
    expect(bytes.length).toBeLessThan(encode(kg).length);
    expect(asRestored(decodeKeyGroupSnapshot(bytes))).toEqual(asRestored(kg));
  });
});
