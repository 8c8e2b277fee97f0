// Timers a checkpoint collects for the key groups it writes whole (`snapshotForCheckpoint`) reuse
// a group's last collection while its timers are unchanged, and are walked later (copy-on-write:
// in later event-loop turns, or before a timer is deleted, moved or fired). Over random sequences
// of timer registrations, deletions, moves, firings (event and processing time, also from inside
// onTimer), event-loop turns and checkpoints of random groups, every collection (in the columns a
// checkpoint writes) encodes to the bytes of a fresh walk of the timers at its checkpoint.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Timer } from '../../operators/contract.js';
import { type CollectedTimers, TimerServiceImpl } from '../../runtime/operator/timers.js';
import { encodeKeyGroupSnapshot, type TimerColumns } from '../../state/snapshot/key-group-codec.js';
import type { TimersSnapshot } from '../../state/snapshot/types.js';
import { heapBackend } from '../helpers/heap.js';

type Op =
  | { kind: 'timer'; remove: boolean; key: number; ns: string; time: number; event: boolean }
  | { kind: 'move'; key: number; ns: string; from: number; to: number }
  | { kind: 'fire'; upTo: number; event: boolean; reRegister: boolean }
  | { kind: 'checkpoint'; groups: number[] }
  | { kind: 'turn' }
  // Asks a pending collection for a group's timers (as a key group's encoding does).
  | { kind: 'get' };

const MAX_PARALLELISM = 8;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('timer' as const),
      remove: fc.boolean(),
      key: fc.nat({ max: 9 }),
      ns: fc.constantFrom('w1', 'w2'),
      time: fc.nat({ max: 15 }),
      event: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('fire' as const),
      upTo: fc.nat({ max: 30 }),
      event: fc.boolean(),
      reRegister: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('move' as const),
      key: fc.nat({ max: 9 }),
      ns: fc.constantFrom('w1', 'w2'),
      from: fc.nat({ max: 15 }),
      to: fc.nat({ max: 15 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'turn' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'get' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('checkpoint' as const),
      groups: fc.uniqueArray(fc.nat({ max: MAX_PARALLELISM - 1 }), { maxLength: MAX_PARALLELISM }),
    }),
  },
);

describe('timer snapshots for checkpoints', () => {
  test('a collection (reused while a group is unchanged, walked later) equals a fresh walk at its checkpoint', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 60 }), fc.boolean(), async (ops, dispose) => {
        const backend = heapBackend(MAX_PARALLELISM);
        let svc!: TimerServiceImpl<string>;
        let reRegister = false;
        // onTimer may register a later timer of the same key (as triggers and process functions do).
        const onTimer = (t: Timer<unknown, string>) => {
          if (reRegister) svc.registerEventTimeTimer(t.namespace, t.timestamp + 100);
        };
        svc = new TimerServiceImpl<string>(
          'timers',
          backend,
          { onEventTime: onTimer, onProcessingTime: onTimer },
          (ns) => ns,
          { now: () => 0, currentWatermark: () => 0, wakeAt: () => {} },
        );
        // The collections under way, with the bytes of a walk at their checkpoint.
        const checks: { collected: CollectedTimers; groups: number[]; expected: unknown }[] = [];
        const bytes = (m: Map<number, TimersSnapshot | TimerColumns>) =>
          [...m]
            .sort(([a], [b]) => a - b)
            .map(([g, t]) => [g, encodeKeyGroupSnapshot({ state: {}, timers: { timers: t } })]);
        const collectedBytes = (c: { collected: CollectedTimers; groups: number[] }) => {
          const m = new Map<number, TimerColumns>();
          for (const g of c.groups) {
            const t = c.collected.get(g);
            if (t !== undefined) m.set(g, t);
          }
          return bytes(m);
        };
        for (const op of ops) {
          if (op.kind === 'turn') await new Promise<void>((resolve) => setImmediate(resolve));
          else if (op.kind === 'get') {
            const c = checks.at(-1);
            if (c !== undefined) expect(collectedBytes(c)).toEqual(c.expected);
          } else if (op.kind === 'move') {
            backend.setCurrentKey(op.key);
            svc.moveEventTimeTimer(op.ns, op.from, op.to);
          } else if (op.kind === 'timer') {
            backend.setCurrentKey(op.key);
            if (!op.remove)
              op.event
                ? svc.registerEventTimeTimer(op.ns, op.time)
                : svc.registerProcessingTimeTimer(op.ns, op.time);
            else
              op.event
                ? svc.deleteEventTimeTimer(op.ns, op.time)
                : svc.deleteProcessingTimeTimer(op.ns, op.time);
          } else if (op.kind === 'fire') {
            reRegister = op.reRegister;
            op.event ? svc.advanceWatermark(op.upTo) : svc.advanceProcessingTime(op.upTo);
          } else {
            const whole = new Uint8Array(MAX_PARALLELISM);
            for (const g of op.groups) whole[g] = 1;
            const collected = svc.snapshotForCheckpoint(whole);
            // The collection is in the columns a checkpoint writes: the bytes of the fresh walk's.
            checks.push({ collected, groups: op.groups, expected: bytes(svc.snapshotByKeyGroup(whole)) });
          }
        }
        // The operator closed: a walk under way is abandoned, with a clear error.
        if (dispose) svc.dispose();
        for (const c of checks) {
          const error = await (c.collected.pending ?? Promise.resolve()).then(
            () => undefined,
            (e: unknown) => e as Error,
          );
          if (error === undefined) expect(collectedBytes(c)).toEqual(c.expected);
          else {
            expect(dispose).toBe(true);
            expect(error.message).toBe("test: the timers were closed during a checkpoint's snapshot");
            expect(() => collectedBytes(c)).toThrow(error.message);
          }
        }
      }),
      {
        numRuns: 300,
        // A timer deleted after a checkpoint and before its walk is still in that checkpoint.
        examples: [
          [
            [
              { kind: 'timer', remove: false, key: 1, ns: 'w1', time: 5, event: true },
              { kind: 'checkpoint', groups: [0, 1, 2, 3, 4, 5, 6, 7] },
              { kind: 'timer', remove: true, key: 1, ns: 'w1', time: 5, event: true },
            ],
            false,
          ],
          // A timer moved later in place after a checkpoint: that checkpoint has its old time.
          [
            [
              { kind: 'timer', remove: false, key: 1, ns: 'w1', time: 5, event: true },
              { kind: 'checkpoint', groups: [0, 1, 2, 3, 4, 5, 6, 7] },
              { kind: 'move', key: 1, ns: 'w1', from: 5, to: 9 },
            ],
            false,
          ],
        ],
      },
    );
  });
});
