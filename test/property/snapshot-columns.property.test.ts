// A checkpoint of a whole key group on the heap backend walks its entries straight into the columns
// the checkpoint writes (`snapshotKeyGroupForCheckpoint`), not into flat arrays the encoder splits
// again. Over random state of every kind (value, list, map, reducing, aggregating), with and
// without namespaces (one or several a key), with TTL, written, overwritten and cleared, each key
// group encodes to exactly the bytes of the flat snapshot, and decodes back to it.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  type StateDescriptor,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import {
  decodeKeyGroupSnapshot,
  encodeKeyGroupSnapshot,
  TableColumnsBuilder,
} from '../../state/snapshot/key-group-codec.js';
import { heapBackend } from '../helpers/heap.js';

const MAX_PARALLELISM = 8;

interface Op {
  state: number;
  key: number | string | [number, string];
  ns: number | string;
  value: number | string | { n: number };
  clear: boolean;
}

const opArb: fc.Arbitrary<Op> = fc.record({
  state: fc.nat({ max: 9 }),
  key: fc.oneof(
    fc.nat({ max: 30 }),
    fc.constantFrom('a', 'b', 'c'),
    fc.tuple(fc.nat({ max: 3 }), fc.constant('x')),
  ),
  ns: fc.oneof(fc.nat({ max: 3 }), fc.constantFrom('0:10', '10:20')),
  value: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 3 }), fc.record({ n: fc.integer() })),
  clear: fc.boolean(),
});

/** Every kind, each without and with namespaces; the last two with TTL. */
function descriptors(): [StateDescriptor, boolean][] {
  const sum = (a: unknown, b: unknown) => (typeof a === 'number' && typeof b === 'number' ? a + b : b);
  const agg = () =>
    new AggregatingStateDescriptor<unknown, unknown[], number>('agg', {
      createAccumulator: () => [],
      add: (v, acc) => [...acc, v],
      getResult: (acc) => acc.length,
      merge: (a, b) => [...a, ...b],
    });
  const ttl = { ttlMs: 1000 };
  return [
    [new ValueStateDescriptor('value'), false],
    [new ListStateDescriptor('list'), false],
    [new MapStateDescriptor('map'), false],
    [new ReducingStateDescriptor('reducing', sum), false],
    [agg(), false],
    [new ValueStateDescriptor('value-ns'), true],
    [new ReducingStateDescriptor('reducing-ns', sum), true],
    [new ListStateDescriptor('list-ns'), true],
    [new ValueStateDescriptor('value-ttl').enableTimeToLive(ttl), false],
    [new MapStateDescriptor('map-ns-ttl').enableTimeToLive(ttl), true],
  ];
}

describe('checkpoint snapshots in columns', () => {
  test('a key group walked into columns encodes to the bytes of its flat snapshot', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        let now = 0;
        const backend = heapBackend(MAX_PARALLELISM, () => now);
        const states = descriptors().map(([d, namespaced]) =>
          namespaced
            ? backend.getNamespacedState<Record<string, (...a: unknown[]) => unknown>>(d)
            : backend.getState(d),
        ) as Record<string, (...a: unknown[]) => unknown>[];
        const kinds = descriptors().map(([d]) => d.kind);
        for (const op of ops) {
          now += 7;
          backend.setCurrentKey(op.key);
          const s = states[op.state]!;
          if (typeof s.setNamespace === 'function') s.setNamespace(op.ns);
          if (op.clear) {
            s.clear!();
            continue;
          }
          switch (kinds[op.state]) {
            case 'value':
              s.update!(op.value);
              break;
            case 'map':
              s.put!(String(op.ns), op.value);
              break;
            default:
              s.add!(op.value);
          }
        }
        for (let g = 0; g < MAX_PARALLELISM; g++) {
          const flat = { state: backend.snapshotKeyGroup(g), timers: {} };
          const columns = { state: backend.snapshotKeyGroupForCheckpoint(g), timers: {} };
          const bytes = encodeKeyGroupSnapshot(columns);
          expect(bytes).toEqual(encodeKeyGroupSnapshot(flat));
          expect(decodeKeyGroupSnapshot(bytes)).toEqual(decodeKeyGroupSnapshot(encodeKeyGroupSnapshot(flat)));
        }
      }),
      { numRuns: 300 },
    );
  });

  // The builder types each column while it is walked (the narrowest typed array, until a value that
  // is not a number): the column must be the one the flat path's split makes of the same values,
  // at the edges of each width, for -0, NaN and fractions, and past the size it was told.
  test('a column built while walking is the column the flat path makes of its values', () => {
    const value = fc.oneof(
      fc.constantFrom(0, -0, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, 0.5, Number.NaN),
      fc.nat({ max: 300 }),
      fc.integer(),
      fc.double(),
      fc.constant('s'),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.oneof(fc.nat(), fc.constant('k')), value), { maxLength: 40 }),
        fc.nat({ max: 40 }),
        (entries, hint) => {
          const b = new TableColumnsBuilder('value', false, hint);
          const data: unknown[] = [];
          for (const [k, v] of entries) {
            b.plain(k, v);
            data.push(k, v);
          }
          const bytes = encodeKeyGroupSnapshot({ state: { t: b.build() }, timers: {} });
          const flat = { state: { t: { kind: 'value' as const, namespaced: false, data } }, timers: {} };
          expect(bytes).toEqual(encodeKeyGroupSnapshot(flat));
        },
      ),
      { numRuns: 500 },
    );
  });
});
