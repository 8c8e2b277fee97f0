// The heap backend keeps the entries of a namespaced table whose keys have one namespace in
// columns (slots; a freed slot takes the last one's entry) and a key with several namespaces in an
// NsMap of them (two small arrays, a Map beyond eight namespaces). Over random writes, adds, clears and merges of a few keys in a few namespaces (keys
// going from one namespace to several, back to one and to none, slots freed out of order), every read
// agrees with a plain model of key → namespace → value, the entries a window operator reads
// (namespacesOfCurrentKey) are the model's, the entry count is the model's, and a snapshot of each
// key group holds the model's entries and restores to a backend whose snapshot is the same.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ReducingStateDescriptor } from '../../state/descriptors.js';
import { heapBackend } from '../helpers/heap.js';

const MAX_PARALLELISM = 4;

type Op =
  | { kind: 'add'; key: number; ns: number; value: number }
  | { kind: 'clear'; key: number; ns: number }
  | { kind: 'merge'; key: number; target: number; sources: number[] };

/** Operations on keys `0..maxKey` in namespaces `0..maxNs`, clears `clearWeight` in 6 + it. */
const opsOn = (maxKey: number, maxNs: number, clearWeight = 3): fc.Arbitrary<Op> => {
  const key = fc.nat({ max: maxKey });
  const ns = fc.nat({ max: maxNs });
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('add' as const),
        key,
        ns,
        value: fc.integer({ min: -50, max: 50 }),
      }),
    },
    { weight: clearWeight, arbitrary: fc.record({ kind: fc.constant('clear' as const), key, ns }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('merge' as const),
        key,
        target: ns,
        sources: fc.uniqueArray(ns, { maxLength: 3 }),
      }),
    },
  );
};

type Slices = {
  setNamespace(ns: number): void;
  add(v: number): void;
  get(): number | undefined;
  clear(): void;
  namespacesOfCurrentKey():
    | { size: number; get(ns: number): unknown; forEach(f: (v: unknown, ns: number) => void): void }
    | undefined;
};

const make = () => heapBackend(MAX_PARALLELISM);

const sum = new ReducingStateDescriptor<number>('sums', (a, b) => a + b);

/** A key group's snapshot as key → namespace → value. */
function entries(data: readonly unknown[]): Map<number, Map<number, unknown>> {
  const out = new Map<number, Map<number, unknown>>();
  for (let i = 0; i < data.length; ) {
    const n = data[i + 1] as number;
    const m = new Map<number, unknown>();
    for (let j = 0; j < n; j++) m.set(data[i + 2 + 2 * j] as number, data[i + 3 + 2 * j]);
    out.set(data[i] as number, m);
    i += 2 + 2 * n;
  }
  return out;
}

/** Every read, count and snapshot agrees with the model after each of `ops`. */
function agreesWithModel(ops: readonly Op[], maxKey: number, maxNs: number): void {
  const backend = make();
  const state = backend.getNamespacedState<Slices>(sum);
  const model = new Map<number, Map<number, number>>();
  for (const op of ops) {
    backend.setCurrentKey(op.key);
    let m = model.get(op.key);
    if (op.kind === 'add') {
      state.setNamespace(op.ns);
      state.add(op.value);
      if (m === undefined) model.set(op.key, (m = new Map()));
      m.set(op.ns, (m.get(op.ns) ?? 0) + op.value);
    } else if (op.kind === 'clear') {
      state.setNamespace(op.ns);
      state.clear();
      m?.delete(op.ns);
    } else {
      backend.mergeNamespaces(sum, op.target, op.sources);
      if (m !== undefined) {
        let merged: number | undefined;
        for (const s of op.sources) {
          const v = m.get(s);
          if (v === undefined) continue;
          m.delete(s);
          merged = merged === undefined ? v : merged + v;
        }
        if (merged !== undefined) m.set(op.target, (m.get(op.target) ?? 0) + merged);
      }
    }
    if (m !== undefined && m.size === 0) model.delete(op.key);
    // Every key's reads, after each step (a freed slot moves another key's entry).
    for (let k = 0; k <= maxKey; k++) {
      backend.setCurrentKey(k);
      const expected = model.get(k);
      for (let n = 0; n <= maxNs; n++) {
        state.setNamespace(n);
        expect(state.get()).toBe(expected?.get(n));
      }
      const seen = state.namespacesOfCurrentKey();
      const got = new Map<number, unknown>();
      seen?.forEach((v, n) => {
        got.set(n, v);
      });
      expect(got).toEqual(expected ?? new Map());
    }
  }
  let count = 0;
  for (const m of model.values()) count += m.size;
  expect(backend.size('sums')).toBe(count);
  const restored = make();
  restored.getNamespacedState<Slices>(sum);
  for (let g = 0; g < MAX_PARALLELISM; g++) {
    const snapshot = backend.snapshotKeyGroup(g);
    const got = entries(snapshot.sums?.data ?? []);
    for (const [k, m] of got) expect(model.get(k)).toEqual(m);
    restored.restoreKeyGroup(g, snapshot);
    expect(restored.snapshotKeyGroup(g)).toEqual(snapshot);
  }
  let keys = 0;
  for (let g = 0; g < MAX_PARALLELISM; g++)
    keys += entries(backend.snapshotKeyGroup(g).sums?.data ?? []).size;
  expect(keys).toBe(model.size);
}

describe('heap namespaced state in slots', () => {
  test('reads, counts and snapshots agree with a model of key → namespace → value', () => {
    fc.assert(
      fc.property(fc.array(opsOn(7, 3), { maxLength: 150 }), (ops) => agreesWithModel(ops, 7, 3)),
      {
        numRuns: 300,
        // Found by this property: a key back to one namespace kept its Map, so its restore (a
        // slot) gave its entries in another order.
        examples: [
          [
            [
              { kind: 'add', key: 6, ns: 0, value: 0 },
              { kind: 'add', key: 0, ns: 1, value: 0 },
              { kind: 'add', key: 0, ns: 0, value: 0 },
              { kind: 'clear', key: 0, ns: 0 },
              { kind: 'add', key: 6, ns: 1, value: 0 },
            ],
          ],
        ],
      },
    );
  });

  test('a key with more namespaces than the small arrays hold (a Map) agrees with the model too', () => {
    fc.assert(
      fc.property(fc.array(opsOn(1, 11, 1), { minLength: 40, maxLength: 120 }), (ops) =>
        agreesWithModel(ops, 1, 11),
      ),
      { numRuns: 200 },
    );
  });
});
