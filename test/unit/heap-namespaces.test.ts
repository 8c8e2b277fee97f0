// Namespaced keyed state of the heap backend (window state): mergeNamespaces, Flink's
// InternalMergingState.mergeNamespaces, which the window operator uses when session windows merge
// (their contents and trigger state merge into the state window of the merge result); and
// snapshots of namespaced state.
import { describe, expect, test } from 'vitest';
import {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import type { AggregateFunction } from '../../state/functions.js';
import { KeyGroupRange } from '../../state/key-groups.js';
import { BACKENDS } from '../helpers/backends.js';

describe.each(BACKENDS)('$name backend', ({ make }) => {
  function backend(now = () => 0) {
    return make({
      maxParallelism: 16,
      keyGroupRange: KeyGroupRange.all(16),
      now,
      owner: 'op',
    });
  }

  interface Avg {
    n: number;
    sum: number;
  }
  const avg: AggregateFunction<number, Avg, number> = {
    createAccumulator: () => ({ n: 0, sum: 0 }),
    add: (v, a) => ({ n: a.n + 1, sum: a.sum + v }),
    getResult: (a) => a.sum / a.n,
    merge: (a, b) => ({ n: a.n + b.n, sum: a.sum + b.sum }),
  };

  describe('mergeNamespaces', () => {
    test('reducing state: target = reduce(target, reduce(sources...)), in that order; sources removed', () => {
      const b = backend();
      // A non-commutative reduce shows the order: Flink folds the sources, then reduces target with it.
      const d = new ReducingStateDescriptor<string>('r', (x, y) => `(${x}${y})`);
      const s = b.getNamespacedState<import('../../state/descriptors.js').ReducingState<string>>(d);
      b.setCurrentKey('k');
      const put = (ns: string, ...vs: string[]) => {
        s.setNamespace(ns);
        for (const v of vs) s.add(v);
      };
      put('t', 'a');
      put('s1', 'b', 'c');
      put('s2', 'd');
      b.mergeNamespaces(d, 't', ['s1', 's2']);
      s.setNamespace('t');
      expect(s.get()).toBe('(a((bc)d))');
      s.setNamespace('s1');
      expect(s.get()).toBeUndefined();
      s.setNamespace('s2');
      expect(s.get()).toBeUndefined();
      expect(b.size('r')).toBe(1);
    });

    test('reducing state: an empty target takes the merged sources; empty sources are skipped', () => {
      const b = backend();
      const d = new ReducingStateDescriptor<number>('r', (x, y) => x + y);
      const s = b.getNamespacedState<import('../../state/descriptors.js').ReducingState<number>>(d);
      b.setCurrentKey('k');
      s.setNamespace('s1');
      s.add(3);
      s.setNamespace('s2');
      s.add(4);
      b.mergeNamespaces(d, 't', ['s1', 'missing', 's2']);
      s.setNamespace('t');
      expect(s.get()).toBe(7);
      // Nothing to merge: the target stays as it is.
      b.mergeNamespaces(d, 't', ['missing']);
      expect(s.get()).toBe(7);
      b.mergeNamespaces(d, 'u', []);
      s.setNamespace('u');
      expect(s.get()).toBeUndefined();
    });

    test('aggregating state merges accumulators with AggregateFunction.merge', () => {
      const b = backend();
      const d = new AggregatingStateDescriptor('g', avg);
      const s =
        b.getNamespacedState<import('../../state/descriptors.js').AggregatingState<number, number>>(d);
      b.setCurrentKey(['a', 1]);
      const values: Record<string, number[]> = { t: [1, 2], s1: [10], s2: [3, 4, 5] };
      for (const [ns, vs] of Object.entries(values)) {
        s.setNamespace(ns);
        for (const v of vs) s.add(v);
      }
      b.mergeNamespaces(d, 't', ['s1', 's2']);
      s.setNamespace('t');
      const all = Object.values(values).flat();
      expect(s.get()).toBe(all.reduce((x, y) => x + y, 0) / all.length);
      s.add(100); // the merged accumulator keeps aggregating
      expect(s.get()).toBe((all.reduce((x, y) => x + y, 0) + 100) / (all.length + 1));
    });

    test('aggregating state without merge() cannot be merged (clear error)', () => {
      const b = backend();
      const { merge: _merge, ...noMerge } = avg;
      const d = new AggregatingStateDescriptor('g', noMerge);
      b.setCurrentKey('k');
      expect(() => b.mergeNamespaces(d, 't', ['s'])).toThrow(
        /'g' cannot be merged: its AggregateFunction has no merge\(\)/,
      );
    });

    test('list state appends the source lists, in source order, to the target list', () => {
      const b = backend();
      const d = new ListStateDescriptor<number>('l');
      const s = b.getNamespacedState<import('../../state/descriptors.js').ListState<number>>(d);
      b.setCurrentKey('k');
      s.setNamespace('t');
      s.addAll([1, 2]);
      s.setNamespace('s1');
      s.addAll([3]);
      s.setNamespace('s2');
      s.addAll([4, 5]);
      b.mergeNamespaces(d, 't', ['s2', 's1']);
      s.setNamespace('t');
      expect(s.get()).toEqual([1, 2, 4, 5, 3]);
      s.setNamespace('s1');
      expect(s.get()).toEqual([]);
    });

    test('only the current key is merged; other keys keep their namespaces', () => {
      const b = backend();
      const d = new ListStateDescriptor<string>('l');
      const s = b.getNamespacedState<import('../../state/descriptors.js').ListState<string>>(d);
      for (const k of ['a', 'b']) {
        b.setCurrentKey(k);
        s.setNamespace('t');
        s.add(`${k}t`);
        s.setNamespace('s');
        s.add(`${k}s`);
      }
      b.setCurrentKey('a');
      b.mergeNamespaces(d, 't', ['s']);
      s.setNamespace('t');
      expect(s.get()).toEqual(['at', 'as']);
      b.setCurrentKey('b');
      expect(s.get()).toEqual(['bt']);
      s.setNamespace('s');
      expect(s.get()).toEqual(['bs']);
    });

    test('the handle keeps its namespace across a merge', () => {
      const b = backend();
      const d = new ReducingStateDescriptor<number>('r', (x, y) => x + y);
      const s = b.getNamespacedState<import('../../state/descriptors.js').ReducingState<number>>(d);
      b.setCurrentKey('k');
      s.setNamespace('s');
      s.add(1);
      s.setNamespace('other');
      s.add(9);
      b.mergeNamespaces(d, 't', ['s']);
      expect(s.get()).toBe(9);
    });

    test('merging marks the key group dirty (it changed since the last snapshot)', () => {
      const b = backend();
      const d = new ReducingStateDescriptor<number>('r', (x, y) => x + y);
      const s = b.getNamespacedState<import('../../state/descriptors.js').ReducingState<number>>(d);
      b.setCurrentKey('k');
      s.setNamespace('s');
      s.add(1);
      b.clearDirty();
      b.mergeNamespaces(d, 't', ['s']);
      expect(b.dirty[b.currentKeyGroup]).toBe(1);
    });

    test('value and map state cannot be merged', () => {
      const b = backend();
      b.setCurrentKey('k');
      expect(() => b.mergeNamespaces(new ValueStateDescriptor<number>('v'), 't', ['s'])).toThrow(
        /'v' is value state, which cannot be merged/,
      );
      expect(() => b.mergeNamespaces(new MapStateDescriptor<string, number>('m'), 't', ['s'])).toThrow(
        /'m' is map state, which cannot be merged/,
      );
    });

    test('with TTL, expired source entries are not merged and list elements keep their own age', () => {
      let now = 0;
      const b = backend(() => now);
      const d = new ListStateDescriptor<number>('l', { ttl: { ttlMs: 100 } });
      const s = b.getNamespacedState<import('../../state/descriptors.js').ListState<number>>(d);
      const r = new ReducingStateDescriptor<number>('r', (x, y) => x + y, { ttl: { ttlMs: 100 } });
      const rs = b.getNamespacedState<import('../../state/descriptors.js').ReducingState<number>>(r);
      b.setCurrentKey('k');
      s.setNamespace('s');
      s.add(1); // written at 0
      rs.setNamespace('old');
      rs.add(5); // written at 0
      now = 50;
      s.add(2); // written at 50
      rs.setNamespace('t');
      rs.add(1);
      now = 120; // 1 and 5 expired
      b.mergeNamespaces(d, 't', ['s']);
      b.mergeNamespaces(r, 't', ['old']);
      s.setNamespace('t');
      expect(s.get()).toEqual([2]);
      rs.setNamespace('t');
      expect(rs.get()).toBe(1);
      now = 160; // 2 (written at 50) expires: it kept its age through the merge
      expect(s.get()).toEqual([]);
    });
  });

  describe('namespaced state in snapshots', () => {
    test('a snapshot is not changed by later writes to namespaced list and map state, and restores them', () => {
      const b = backend();
      const list = new ListStateDescriptor<number>('l');
      const map = new MapStateDescriptor<string, number>('m');
      const l = b.getNamespacedState<import('../../state/descriptors.js').ListState<number>>(list);
      const m = b.getNamespacedState<import('../../state/descriptors.js').MapState<string, number>>(map);
      b.setCurrentKey('a');
      l.setNamespace('0:10');
      l.add(1);
      m.setNamespace('0:10');
      m.put('x', 1);
      const snap = b.snapshot();
      l.add(2);
      m.put('y', 2);
      const r = backend();
      r.restore(snap);
      const rl = r.getNamespacedState<import('../../state/descriptors.js').ListState<number>>(list);
      const rm = r.getNamespacedState<import('../../state/descriptors.js').MapState<string, number>>(map);
      r.setCurrentKey('a');
      rl.setNamespace('0:10');
      rm.setNamespace('0:10');
      expect(rl.get()).toEqual([1]);
      expect([...rm.entries()]).toEqual([['x', 1]]);
      // The restored state is independent of the snapshot too.
      rl.add(3);
      const again = backend();
      again.restore(snap);
      const al = again.getNamespacedState<import('../../state/descriptors.js').ListState<number>>(list);
      again.setCurrentKey('a');
      al.setNamespace('0:10');
      expect(al.get()).toEqual([1]);
    });
  });
});

describe.each(BACKENDS)(
  '$name backend: a key with one namespace, then several, then one again',
  ({ name, make }) => {
    const backend = () =>
      make({ maxParallelism: 16, keyGroupRange: KeyGroupRange.all(16), now: () => 0, owner: 'op' });
    // A key's entries are kept compactly while it has one namespace (state/heap-backend.ts, OneNs):
    // random writes, adds and clears over a few keys and namespaces agree with a plain model, and
    // so do snapshots (size, entries, and a restore of them) after every step.
    test('reads, counts and snapshots agree with a model', async () => {
      const fc = (await import('fast-check')).default;
      const op = fc.record({
        kind: fc.constantFrom('update', 'add', 'clear'),
        key: fc.integer({ min: 0, max: 3 }),
        ns: fc.integer({ min: 0, max: 3 }),
        value: fc.integer({ min: 1, max: 9 }),
      });
      fc.assert(
        fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
          const b = backend();
          const value = b.getNamespacedState<import('../../state/descriptors.js').ValueState<number>>(
            new ValueStateDescriptor<number>('v'),
          );
          const sum = b.getNamespacedState<import('../../state/descriptors.js').ReducingState<number>>(
            new ReducingStateDescriptor<number>('r', (x, y) => x + y),
          );
          const model = new Map<string, number>();
          for (const o of ops) {
            b.setCurrentKey(o.key);
            value.setNamespace(o.ns);
            sum.setNamespace(o.ns);
            const id = `${o.key}/${o.ns}`;
            if (o.kind === 'update') {
              value.update(o.value);
              model.set(`v${id}`, o.value);
            } else if (o.kind === 'add') {
              sum.add(o.value);
              model.set(`r${id}`, (model.get(`r${id}`) ?? 0) + o.value);
            } else {
              value.clear();
              sum.clear();
              model.delete(`v${id}`);
              model.delete(`r${id}`);
            }
            const restored = backend();
            restored.restore(b.snapshot());
            const rv = restored.getNamespacedState<import('../../state/descriptors.js').ValueState<number>>(
              new ValueStateDescriptor<number>('v'),
            );
            const rr = restored.getNamespacedState<
              import('../../state/descriptors.js').ReducingState<number>
            >(new ReducingStateDescriptor<number>('r', (x, y) => x + y));
            for (const from of [b, restored]) {
              expect(from.size('v')).toBe([...model.keys()].filter((k) => k.startsWith('v')).length);
              expect(from.size('r')).toBe([...model.keys()].filter((k) => k.startsWith('r')).length);
            }
            for (let key = 0; key <= 3; key++)
              for (let ns = 0; ns <= 3; ns++) {
                for (const [from, v, r] of [
                  [b, value, sum],
                  [restored, rv, rr],
                ] as const) {
                  from.setCurrentKey(key);
                  v.setNamespace(ns);
                  r.setNamespace(ns);
                  expect(v.value()).toBe(model.get(`v${key}/${ns}`));
                  expect(r.get()).toBe(model.get(`r${key}/${ns}`));
                }
              }
          }
        }),
        { numRuns: name === 'heap' ? 200 : 25 },
      );
    });
  },
);
