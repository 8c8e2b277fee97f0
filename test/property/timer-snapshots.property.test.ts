// Timers a checkpoint collects for the key groups it writes whole (`snapshotForCheckpoint`) reuse
// a group's last collection while its timers are unchanged. Over random sequences of timer
// registrations, deletions, firings (event and processing time, also from inside onTimer) and
// checkpoints of random groups, every collection (in the columns a checkpoint writes) encodes to
// the bytes of a fresh walk of the timers.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Timer } from '../../operators/contract.js';
import { TimerServiceImpl } from '../../runtime/operator/timers.js';
import { HeapKeyedStateBackend } from '../../state/heap-backend.js';
import { KeyGroupRange } from '../../state/key-groups.js';
import { encodeKeyGroupSnapshot, type TimerColumns } from '../../state/snapshot/key-group-codec.js';
import type { TimersSnapshot } from '../../state/snapshot/types.js';

type Op =
  | { kind: 'timer'; remove: boolean; key: number; ns: string; time: number; event: boolean }
  | { kind: 'fire'; upTo: number; event: boolean; reRegister: boolean }
  | { kind: 'checkpoint'; groups: number[] };

const MAX_PARALLELISM = 8;

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('timer' as const),
      remove: fc.boolean(),
      key: fc.nat({ max: 20 }),
      ns: fc.constantFrom('w1', 'w2'),
      time: fc.nat({ max: 30 }),
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
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('checkpoint' as const),
      groups: fc.uniqueArray(fc.nat({ max: MAX_PARALLELISM - 1 }), { maxLength: MAX_PARALLELISM }),
    }),
  },
);

describe('timer snapshots for checkpoints', () => {
  test('a collection reused while a group is unchanged equals a fresh walk of the timers', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const backend = new HeapKeyedStateBackend({
          maxParallelism: MAX_PARALLELISM,
          keyGroupRange: KeyGroupRange.all(MAX_PARALLELISM),
          now: () => 0,
          owner: 'test',
        });
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
        for (const op of ops) {
          if (op.kind === 'timer') {
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
            const fresh = svc.snapshotByKeyGroup(whole);
            // The collection is in the columns a checkpoint writes: the bytes of the fresh walk's.
            const bytes = (m: Map<number, TimersSnapshot | TimerColumns>) =>
              [...m]
                .sort(([a], [b]) => a - b)
                .map(([g, t]) => [g, encodeKeyGroupSnapshot({ state: {}, timers: { timers: t } })]);
            expect(bytes(collected)).toEqual(bytes(fresh));
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
