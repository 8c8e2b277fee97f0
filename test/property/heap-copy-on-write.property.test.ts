// The heap backend takes a checkpoint's snapshots of whole key groups copy-on-write
// (snapshotWholeLater): a group whose entries only a write can change is taken before its next
// write or in a later event-loop turn, the others at once. Over random writes, clears, merges,
// states with and without namespaces, values that are objects changed in place by the job,
// checkpoints and event-loop turns, every key group's snapshot is byte for byte what it would have
// been had it been taken at the checkpoint, and it is taken by the time the checkpoint's promise resolves (a backend disposed
// meanwhile abandons it: the promise rejects with a clear error).
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { ReducingStateDescriptor, type ValueState, ValueStateDescriptor } from '../../state/descriptors.js';
import { keyGroupFor } from '../../state/key-groups.js';
import { encodeKeyGroupSnapshot } from '../../state/snapshot/key-group-codec.js';
import { heapBackend } from '../helpers/heap.js';

// NOTE: many key groups and keys, few namespaces: groups with a key in several namespaces (a Map,
// taken at once) stay rare enough that deferred groups holding objects come up.
const MAX_PARALLELISM = 16;
const GROUPS = Array.from({ length: MAX_PARALLELISM }, (_, g) => g);

type Op =
  | { kind: 'add'; key: number; ns: number; value: number }
  | { kind: 'clear'; key: number; ns: number }
  | { kind: 'merge'; key: number; target: number; sources: number[] }
  // An object value: stored, or changed in place without a write (as a user function may).
  | { kind: 'object'; key: number; ns: number; value: number }
  | { kind: 'mutate'; key: number; ns: number; value: number }
  // A state without namespaces (a process function's): a number, or an object changed in place.
  | { kind: 'count'; key: number; value: number }
  | { kind: 'plainObject'; key: number; value: number }
  | { kind: 'plainMutate'; key: number; value: number }
  | { kind: 'checkpoint' }
  | { kind: 'turn' };

const key = fc.nat({ max: 39 });
const ns = fc.nat({ max: 1 });
// Objects under a few keys, so that the job changes some in place after a checkpoint.
const objectKey = fc.nat({ max: 3 });
const value = fc.integer({ min: -9, max: 9 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('add' as const), key, ns, value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('clear' as const), key, ns }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('merge' as const),
      key,
      target: ns,
      sources: fc.uniqueArray(ns, { maxLength: 2 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('object' as const), key: objectKey, ns, value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('mutate' as const), key: objectKey, ns, value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('count' as const), key, value }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('plainObject' as const), key: objectKey, value }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('plainMutate' as const), key: objectKey, value }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'checkpoint' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'turn' as const }) },
);

type Namespaced<T> = {
  setNamespace(ns: number): void;
  get?(): T | undefined;
  value?(): T | undefined;
  add?(v: T): void;
  update?(v: T): void;
  clear(): void;
};

const sums = new ReducingStateDescriptor<number>('sums', (a, b) => a + b);
const objects = new ValueStateDescriptor<{ n: number }>('objects');
const counts = new ValueStateDescriptor<number>('counts');
const plainObjects = new ValueStateDescriptor<{ n: number }>('plain-objects');

const make = () => heapBackend(MAX_PARALLELISM);

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('copy-on-write snapshots of the heap backend', () => {
  test('a deferred snapshot holds exactly the state at its checkpoint', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 120 }), fc.boolean(), async (ops, dispose) => {
        const backend = make();
        const sum = backend.getNamespacedState<Namespaced<number>>(sums);
        const obj = backend.getNamespacedState<Namespaced<{ n: number }>>(objects);
        const count = backend.getState(counts) as ValueState<number>;
        const plainObject = backend.getState(plainObjects) as ValueState<{ n: number }>;
        const checks: {
          expected: Map<number, Uint8Array>;
          got: Map<number, Uint8Array>;
          done: Promise<void>;
        }[] = [];
        const snapshotNow = (g: number) =>
          encodeKeyGroupSnapshot({ state: backend.snapshotKeyGroupForCheckpoint(g), timers: {} });
        let deferredSome = false;
        for (const op of ops) {
          if (op.kind === 'checkpoint') {
            const expected = new Map<number, Uint8Array>();
            for (const g of GROUPS) expected.set(g, snapshotNow(g));
            const got = new Map<number, Uint8Array>();
            const pending = backend.snapshotWholeLater(GROUPS, (g) => got.set(g, snapshotNow(g)));
            if (pending !== undefined && got.size < GROUPS.length) deferredSome = true;
            checks.push({ expected, got, done: pending ?? Promise.resolve() });
            continue;
          }
          if (op.kind === 'turn') {
            await turn();
            continue;
          }
          backend.setCurrentKey(op.key);
          if (op.kind === 'add') {
            sum.setNamespace(op.ns);
            sum.add!(op.value);
          } else if (op.kind === 'clear') {
            sum.setNamespace(op.ns);
            sum.clear();
          } else if (op.kind === 'merge') backend.mergeNamespaces(sums, op.target, op.sources);
          else if (op.kind === 'count') count.update((count.value() ?? 0) + op.value);
          else if (op.kind === 'plainObject') plainObject.update({ n: op.value });
          else if (op.kind === 'plainMutate') {
            const o = plainObject.value();
            if (o !== undefined) o.n += op.value;
          } else if (op.kind === 'object') {
            obj.setNamespace(op.ns);
            obj.update!({ n: op.value });
          } else {
            obj.setNamespace(op.ns);
            const o = obj.value!();
            if (o !== undefined) o.n += op.value;
          }
        }
        if (dispose) backend.dispose();
        for (const c of checks) {
          // Disposed (the operator closed) with groups still to take: the snapshot is abandoned,
          // with a clear error, and nothing taken differs from the state at its checkpoint.
          const error = await c.done.then(
            () => undefined,
            (e: unknown) => e as Error,
          );
          if (error !== undefined) {
            expect(dispose).toBe(true);
            expect(error.message).toBe('test: the state backend was closed during a snapshot');
            for (const [g, bytes] of c.got) expect(bytes).toEqual(c.expected.get(g));
          } else expect(c.got).toEqual(c.expected);
        }
        return deferredSome || !ops.some((o) => o.kind === 'checkpoint');
      }),
      {
        numRuns: 300,
        // An object stored, a checkpoint, the object changed in place: its group must be taken at
        // once (found by this property about one run in two when groups with objects were deferred).
        examples: [
          [
            [
              { kind: 'object', key: 0, ns: 0, value: 0 },
              { kind: 'checkpoint' },
              { kind: 'mutate', key: 0, ns: 0, value: -1 },
            ],
            false,
          ],
          [
            [
              { kind: 'plainObject', key: 1, value: 0 },
              { kind: 'checkpoint' },
              { kind: 'plainMutate', key: 1, value: 2 },
            ],
            false,
          ],
        ],
      },
    );
  });

  test('groups are deferred when only writes can change them, and taken before the next write', async () => {
    const backend = make();
    const sum = backend.getNamespacedState<Namespaced<number>>(sums);
    for (let k = 0; k < 40; k++) {
      backend.setCurrentKey(k);
      sum.setNamespace(0);
      sum.add!(k);
    }
    const taken: number[] = [];
    const pending = backend.snapshotWholeLater(GROUPS, (g) => taken.push(g));
    // Nothing taken in the synchronous part.
    expect(pending).toBeDefined();
    expect(taken).toEqual([]);
    // A write to key 7's group takes that group first, and only that one.
    const g7 = keyGroupFor(7, MAX_PARALLELISM);
    backend.setCurrentKey(7);
    sum.setNamespace(0);
    expect(taken).toEqual([]);
    sum.add!(1);
    expect(taken).toEqual([g7]);
    await pending;
    expect([...taken].sort((a, b) => a - b)).toEqual(GROUPS);

    // An object value anywhere in a group: that group is taken at once.
    const obj = backend.getNamespacedState<Namespaced<{ n: number }>>(objects);
    backend.setCurrentKey(7);
    obj.setNamespace(0);
    obj.update!({ n: 1 });
    const now: number[] = [];
    const later = backend.snapshotWholeLater(GROUPS, (g) => now.push(g));
    expect(now).toEqual([g7]);
    await later;
    expect([...now].sort((a, b) => a - b)).toEqual(GROUPS);
  });
});
