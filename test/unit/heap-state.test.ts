import { describe, expect, test } from 'vitest';
import {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import { KeyGroupMismatchError } from '../../state/heap-backend.js';
import { KeyGroupRange, keyGroupFor } from '../../state/key-groups.js';
import { OperatorStateStore, redistributeOperatorState } from '../../state/operator-state.js';
import { restoreForSubtask } from '../../state/snapshot/redistribute.js';
import { BACKENDS } from '../helpers/backends.js';

// NOTE: the keyed-state tests run against both backends (the shared semantic suite).
describe.each(BACKENDS)('$name backend', ({ make }) => {
  function backend(now = () => 0, range = KeyGroupRange.all(16)) {
    return make({ maxParallelism: 16, keyGroupRange: range, now, owner: 'op' });
  }

  describe('keyed state primitives', () => {
    test('value state is scoped to the current key and has a default', () => {
      const b = backend();
      const s = b.getState(new ValueStateDescriptor<number>('v', { defaultValue: 0 }));
      b.setCurrentKey('a');
      expect(s.value()).toBe(0);
      s.update(5);
      b.setCurrentKey('b');
      expect(s.value()).toBe(0);
      s.update(7);
      b.setCurrentKey('a');
      expect(s.value()).toBe(5);
      s.clear();
      expect(s.value()).toBe(0);
      b.setCurrentKey('b');
      expect(s.value()).toBe(7);
    });

    test('list, map, reducing and aggregating state', () => {
      const b = backend();
      const list = b.getState(new ListStateDescriptor<string>('l'));
      const map = b.getState(new MapStateDescriptor<string, number>('m'));
      const red = b.getState(new ReducingStateDescriptor<number>('r', (x, y) => x + y));
      const agg = b.getState(
        new AggregatingStateDescriptor('g', {
          createAccumulator: () => ({ n: 0, sum: 0 }),
          add: (v: number, a) => ({ n: a.n + 1, sum: a.sum + v }),
          getResult: (a) => a.sum / a.n,
        }),
      );
      b.setCurrentKey(['composite', 1]);
      list.add('x');
      list.addAll(['y', 'z']);
      expect(list.get()).toEqual(['x', 'y', 'z']);
      list.update(['q']);
      expect(list.get()).toEqual(['q']);
      map.put('a', 1);
      map.put('b', 2);
      map.remove('a');
      expect([...map.entries()]).toEqual([['b', 2]]);
      expect(map.contains('b')).toBe(true);
      expect(map.isEmpty()).toBe(false);
      red.add(3);
      red.add(4);
      expect(red.get()).toBe(7);
      agg.add(2);
      agg.add(4);
      expect(agg.get()).toBe(3);
      b.setCurrentKey(['composite', 2]);
      expect(list.get()).toEqual([]);
      expect(map.get('b')).toBeUndefined();
      expect(red.get()).toBeUndefined();
      expect(agg.get()).toBeUndefined();
      expect([...b.keys('l')]).toEqual([['composite', 1]]);
    });

    test('registering a name twice with different kinds is an error', () => {
      const b = backend();
      b.getState(new ValueStateDescriptor('x'));
      expect(() => b.getState(new ListStateDescriptor('x'))).toThrow(
        /state 'x' is already registered as value state, not list state/,
      );
    });

    test('a key outside the backend key groups is rejected (non-deterministic key selectors)', () => {
      const key = 'k';
      const g = keyGroupFor(key, 16);
      const other = new KeyGroupRange(g === 0 ? 1 : 0, g === 0 ? 1 : 0);
      const b = backend(() => 0, other);
      expect(() => b.setCurrentKey(key)).toThrow(KeyGroupMismatchError);
    });

    test('snapshot and restore per key group, into backends of other ranges (rescaling)', () => {
      const b = backend();
      const v = b.getState(new ValueStateDescriptor<number>('v'));
      const m = b.getState(new MapStateDescriptor<number, string>('m'));
      for (let i = 0; i < 100; i++) {
        b.setCurrentKey(i);
        v.update(i * 10);
        m.put(i, `x${i}`);
      }
      const snap = b.snapshot();
      // Restore into two halves, as at parallelism 2.
      const halves = [0, 1].map((i) => {
        const h = backend(() => 0, KeyGroupRange.forSubtask(i, 2, 16));
        h.restore(snap);
        return h;
      });
      for (let i = 0; i < 100; i++) {
        const owner = halves.find((h) => h.keyGroupRange.contains(keyGroupFor(i, 16)))!;
        owner.setCurrentKey(i);
        expect(owner.getState(new ValueStateDescriptor<number>('v')).value()).toBe(i * 10);
        expect(owner.getState(new MapStateDescriptor<number, string>('m')).get(i)).toBe(`x${i}`);
      }
      expect(halves[0]!.size('v') + halves[1]!.size('v')).toBe(100);
    });

    test('a snapshot is not changed by later writes', () => {
      const b = backend();
      const l = b.getState(new ListStateDescriptor<number>('l'));
      b.setCurrentKey('a');
      l.add(1);
      const snap = b.snapshot();
      l.add(2);
      const r = backend();
      r.restore(snap);
      r.setCurrentKey('a');
      expect(r.getState(new ListStateDescriptor<number>('l')).get()).toEqual([1]);
    });

    test('restoring with another maxParallelism fails clearly', () => {
      const b = backend();
      const groups = new Map([...b.snapshot()].map(([g, state]) => [g, { state, timers: {} }]));
      const taken = {
        operatorId: 'op',
        subtaskIndex: 0,
        parallelism: 1,
        maxParallelism: 16,
        operatorState: {},
      };
      expect(() => restoreForSubtask([{ ...taken, keyGroups: groups }], 0, 1, 32)).toThrow(
        /maxParallelism 16.*maxParallelism 32/,
      );
    });
  });

  describe('state TTL', () => {
    test('expired values are never returned; writes refresh the TTL (OnCreateAndWrite)', () => {
      let now = 1000;
      const b = backend(() => now);
      const v = b.getState(new ValueStateDescriptor<string>('v', { ttl: { ttlMs: 100 } }));
      b.setCurrentKey('a');
      v.update('x');
      now = 1099;
      expect(v.value()).toBe('x');
      now = 1100;
      expect(v.value()).toBeUndefined();
      v.update('y');
      now = 1150;
      v.update('z');
      now = 1249;
      expect(v.value()).toBe('z');
    });

    test('reads refresh with OnReadAndWrite', () => {
      let now = 0;
      const b = backend(() => now);
      const v = b.getState(
        new ValueStateDescriptor<string>('v', { ttl: { ttlMs: 100, updateType: 'OnReadAndWrite' } }),
      );
      b.setCurrentKey('a');
      v.update('x');
      for (now = 50; now < 500; now += 50) expect(v.value()).toBe('x');
    });

    test('ReturnExpiredIfNotCleanedUp may return an expired value', () => {
      let now = 0;
      const b = backend(() => now);
      const v = b.getState(
        new ValueStateDescriptor<string>('v', {
          ttl: { ttlMs: 10, stateVisibility: 'ReturnExpiredIfNotCleanedUp' },
        }),
      );
      b.setCurrentKey('a');
      v.update('x');
      now = 100;
      expect(v.value()).toBe('x');
    });

    test('list elements and map entries expire individually', () => {
      let now = 0;
      const b = backend(() => now);
      const l = b.getState(new ListStateDescriptor<number>('l', { ttl: { ttlMs: 100 } }));
      const m = b.getState(new MapStateDescriptor<string, number>('m', { ttl: { ttlMs: 100 } }));
      b.setCurrentKey('k');
      l.add(1);
      m.put('old', 1);
      now = 60;
      l.add(2);
      m.put('new', 2);
      now = 120;
      expect(l.get()).toEqual([2]);
      expect([...m.entries()]).toEqual([['new', 2]]);
      now = 200;
      expect(l.get()).toEqual([]);
      expect(m.isEmpty()).toBe(true);
      expect(b.size()).toBe(0);
    });

    test('a TTL must be positive', () => {
      expect(() => new ValueStateDescriptor('v', { ttl: { ttlMs: 0 } })).toThrow(/ttlMs must be a positive/);
    });
  });
});

describe('operator state', () => {
  test('split lists are redistributed evenly, union lists whole, on rescale', () => {
    const old = [0, 1, 2].map((i) => {
      const s = new OperatorStateStore('src');
      s.getListState(new ListStateDescriptor<number>('offsets')).addAll([i * 10, i * 10 + 1]);
      s.getUnionListState(new ListStateDescriptor<string>('seen')).add(`s${i}`);
      return s.snapshot();
    });
    const parts = [0, 1].map((i) => redistributeOperatorState(old, i, 2));
    expect(parts.map((p) => p.offsets!.items)).toEqual([
      [0, 1, 10],
      [11, 20, 21],
    ]);
    expect(parts.map((p) => p.seen!.items)).toEqual([
      ['s0', 's1', 's2'],
      ['s0', 's1', 's2'],
    ]);
    const restored = new OperatorStateStore('src');
    restored.restore(parts[1]!);
    expect(restored.getListState(new ListStateDescriptor<number>('offsets')).get()).toEqual([11, 20, 21]);
  });
});

describe('the heap and the LMDB backend take the same snapshots', () => {
  const [heap, lmdb] = BACKENDS;
  const str = (k: unknown) => (typeof k === 'bigint' ? `${k}n` : JSON.stringify(k));
  /** A snapshot as comparable data: per key group, per state, key → value (order left out). */
  function normalized(groups: Map<number, Record<string, { namespaced: boolean; data: unknown[] }>>) {
    const out: Record<string, unknown> = {};
    for (const [g, tables] of groups)
      for (const [name, t] of Object.entries(tables)) {
        const entries: [string, unknown][] = [];
        for (let i = 0; i < t.data.length; ) {
          if (!t.namespaced) {
            entries.push([str(t.data[i]), t.data[i + 1]]);
            i += 2;
          } else {
            const n = t.data[i + 1] as number;
            const inner: [string, unknown][] = [];
            for (let j = 0; j < n; j++) inner.push([str(t.data[i + 2 + 2 * j]), t.data[i + 3 + 2 * j]]);
            entries.push([str(t.data[i]), inner.sort()]);
            i += 2 + 2 * n;
          }
        }
        out[`${g}/${name}`] = entries.sort((a, b) => (a[0] < b[0] ? -1 : 1));
      }
    return out;
  }

  test('the same writes give the same key groups; each restores the other', () => {
    const range = KeyGroupRange.all(16);
    const make = (c: (typeof BACKENDS)[number]) =>
      c.make({ maxParallelism: 16, keyGroupRange: range, now: () => 0, owner: 'op' });
    const both = [make(heap!), make(lmdb!)];
    for (const b of both) {
      const v = b.getState(new ValueStateDescriptor<{ n: number }>('v'));
      const l = b.getState(new ListStateDescriptor<string>('l'));
      const m = b.getState(new MapStateDescriptor<string, number[]>('m'));
      const w = b.getNamespacedState<ReturnType<typeof b.getState<number>>>(
        new ReducingStateDescriptor<number>('w', (x, y) => x + y),
      );
      for (let i = 0; i < 300; i++) {
        const key = i % 3 === 0 ? [`c${i % 7}`, i % 5] : i % 3 === 1 ? BigInt(i % 11) : `s${i % 13}`;
        b.setCurrentKey(key);
        v.update({ n: i });
        l.add(`x${i}`);
        if (i % 4 === 0) m.put(`k${i % 3}`, [i]);
        w.setNamespace(i % 4);
        (w as unknown as { add(x: number): void }).add(i);
        if (i % 17 === 0) l.clear();
      }
    }
    const [h, d] = both.map((b) => b.snapshot());
    expect(normalized(d!)).toEqual(normalized(h!));
    // Each backend's snapshot restored into the other gives the same snapshot again.
    const intoLmdb = make(lmdb!);
    intoLmdb.restore(h!);
    const intoHeap = make(heap!);
    intoHeap.restore(d!);
    expect(normalized(intoLmdb.snapshot())).toEqual(normalized(h!));
    expect(normalized(intoHeap.snapshot())).toEqual(normalized(h!));
    intoLmdb.setCurrentKey(BigInt(1));
    expect(intoLmdb.getState(new ValueStateDescriptor<{ n: number }>('v')).value()).toEqual({ n: 298 });
    expect([...intoLmdb.keys('v')].length).toBe([...intoHeap.keys('v')].length);
  });
});
