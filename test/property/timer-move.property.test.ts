// Moving a timer (`moveEventTimeTimer`, `moveProcessingTimeTimer`) is the same as deleting it and
// registering it at the new time, only cheaper. Over random registrations, deletions, moves (later,
// earlier, onto an existing timer, of timers that do not exist), firings (also moving timers from
// inside onTimer, and timers put aside in a round) and checkpoints, a service that moves and one
// that deletes and registers fire the same timers in the same order and hold the same timers
// (snapshots, incremental collections and counts).
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Timer } from '../../operators/contract.js';
import { TimerServiceImpl } from '../../runtime/operator/timers.js';
import { canonicalKey } from '../../state/key-codec.js';
import { heapBackend } from '../helpers/heap.js';

type Op =
  | { kind: 'register' | 'delete'; key: number; ns: string; time: number; event: boolean }
  | { kind: 'move'; key: number; ns: string; from: number; to: number; event: boolean; pick: number }
  | { kind: 'fire'; upTo: number; event: boolean; onTimer: 'none' | 'move' | 'same' | 'both' }
  | { kind: 'checkpoint'; groups: number[] };

const MAX_PARALLELISM = 4;

const timeArb = fc.nat({ max: 14 });
const nsArb = fc.constantFrom('w1', 'w2');
const keyArb = fc.nat({ max: 6 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constantFrom('register' as const, 'delete' as const),
      key: keyArb,
      ns: nsArb,
      time: timeArb,
      event: fc.boolean(),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('move' as const),
      key: keyArb,
      ns: nsArb,
      from: timeArb,
      to: timeArb,
      event: fc.boolean(),
      // Most moves move an existing timer (the pick-th), the others key, ns and from as drawn.
      pick: fc.nat({ max: 12 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('fire' as const),
      upTo: timeArb,
      event: fc.boolean(),
      onTimer: fc.constantFrom('none' as const, 'move' as const, 'same' as const, 'both' as const),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('checkpoint' as const),
      groups: fc.uniqueArray(fc.nat({ max: MAX_PARALLELISM - 1 }), { maxLength: MAX_PARALLELISM }),
    }),
  },
);

/** A timer service, and what it fired; `moves` says whether it moves timers or deletes and registers. */
function service(moves: boolean) {
  const backend = heapBackend(MAX_PARALLELISM);
  const fired: unknown[] = [];
  let onTimer: 'none' | 'move' | 'same' | 'both' = 'none';
  let svc!: TimerServiceImpl<string>;
  const exists = (event: boolean, key: number, ns: string, time: number): boolean => {
    const heap = event ? svc.eventTimers : svc.processingTimers;
    for (let e = heap.head(canonicalKey(key)); e !== -1; e = heap.nextOf(e))
      if (heap.namespaceOf(e) === ns && heap.timestampOf(e) === time) return true;
    return false;
  };
  const move = (event: boolean, key: number, ns: string, from: number, to: number): boolean => {
    if (moves)
      return event ? svc.moveEventTimeTimer(ns, from, to) : svc.moveProcessingTimeTimer(ns, from, to);
    if (!exists(event, key, ns, from)) return false;
    if (event) {
      svc.deleteEventTimeTimer(ns, from);
      svc.registerEventTimeTimer(ns, to);
    } else {
      svc.deleteProcessingTimeTimer(ns, from);
      svc.registerProcessingTimeTimer(ns, to);
    }
    return true;
  };
  const target = (event: boolean) => (t: Timer<unknown, string>) => {
    fired.push([event, t.key, t.namespace, t.timestamp]);
    // From inside onTimer: move the key's other namespace's timer (later, or back to now), or
    // re-register this one at its time, or both: re-register this one and move the other's timer
    // at this time (one put aside in this round, if it fired and asked again) later.
    const other = t.namespace === 'w1' ? 'w2' : 'w1';
    if (onTimer === 'move') {
      fired.push(move(event, t.key as number, other, t.timestamp + 1, t.timestamp + 3));
      fired.push(move(event, t.key as number, other, t.timestamp + 2, t.timestamp));
    }
    if (onTimer === 'same' || onTimer === 'both')
      event
        ? svc.registerEventTimeTimer(t.namespace, t.timestamp)
        : svc.registerProcessingTimeTimer(t.namespace, t.timestamp);
    if (onTimer === 'both') fired.push(move(event, t.key as number, other, t.timestamp, t.timestamp + 1));
  };
  svc = new TimerServiceImpl<string>(
    'timers',
    backend,
    { onEventTime: target(true), onProcessingTime: target(false) },
    (ns) => ns,
    { now: () => 0, currentWatermark: () => 0, wakeAt: () => {} },
  );
  const apply = (op: Op): unknown => {
    switch (op.kind) {
      case 'register':
        backend.setCurrentKey(op.key);
        op.event
          ? svc.registerEventTimeTimer(op.ns, op.time)
          : svc.registerProcessingTimeTimer(op.ns, op.time);
        return undefined;
      case 'delete':
        backend.setCurrentKey(op.key);
        op.event ? svc.deleteEventTimeTimer(op.ns, op.time) : svc.deleteProcessingTimeTimer(op.ns, op.time);
        return undefined;
      case 'move':
        backend.setCurrentKey(op.key);
        return move(op.event, op.key, op.ns, op.from, op.to);
      case 'fire':
        onTimer = op.onTimer;
        op.event ? svc.advanceWatermark(op.upTo) : svc.advanceProcessingTime(op.upTo);
        return fired.splice(0);
      case 'checkpoint': {
        const whole = new Uint8Array(MAX_PARALLELISM);
        for (const g of op.groups) whole[g] = 1;
        const collected = svc.snapshotForCheckpoint(whole);
        return [...op.groups].sort((a, b) => a - b).map((g) => [g, collected.get(g)]);
      }
    }
  };
  const state = () => ({
    all: [...svc.snapshotByKeyGroup()].sort(([a], [b]) => a - b),
    event: svc.numEventTimeTimers(),
    processing: svc.numProcessingTimeTimers(),
    next: svc.nextProcessingTime(),
  });
  /** The timers as [event, key, ns, timestamp]. */
  const timers = (): [boolean, number, string, number][] => {
    const out: [boolean, number, string, number][] = [];
    for (const [, t] of svc.snapshotByKeyGroup()) {
      for (let i = 0; i < t.event.length; i += 3)
        out.push([true, t.event[i] as number, t.event[i + 1] as string, t.event[i + 2] as number]);
      for (let i = 0; i < t.processing.length; i += 3)
        out.push([
          false,
          t.processing[i] as number,
          t.processing[i + 1] as string,
          t.processing[i + 2] as number,
        ]);
    }
    return out;
  };
  return { apply, state, timers };
}

describe('moving timers', () => {
  test('moving a timer is deleting it and registering it at the new time', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const moving = service(true);
        const plain = service(false);
        for (let op of ops) {
          if (op.kind === 'move') {
            const existing = moving.timers();
            const t = existing[op.pick];
            if (t !== undefined) op = { ...op, event: t[0], key: t[1], ns: t[2], from: t[3] };
          }
          expect(moving.apply(op)).toEqual(plain.apply(op));
          expect(moving.state()).toEqual(plain.state());
        }
      }),
      {
        numRuns: 500,
        examples: [
          // Once found by CI: a timer put aside by a round (it re-registered itself at its passed
          // time) and then moved later is a new registration, due at its new time.
          [
            [
              { kind: 'register', key: 0, ns: 'w1', time: 0, event: false },
              { kind: 'fire', upTo: 1, event: false, onTimer: 'same' },
              { kind: 'move', key: 0, ns: 'w1', from: 0, to: 1, event: false, pick: 0 },
              { kind: 'fire', upTo: 1, event: false, onTimer: 'none' },
            ],
          ],
        ],
      },
    );
  });
});

describe('moving a timer put aside in a firing round', () => {
  test('it is queued once, at its new time, when the round ends', () => {
    const backend = heapBackend(1);
    const fired: string[] = [];
    let svc!: TimerServiceImpl<string>;
    svc = new TimerServiceImpl<string>(
      'timers',
      backend,
      {
        onEventTime: (t) => {
          fired.push(`${t.namespace}@${t.timestamp}`);
          // 'a' asks again for its own (passed) time: put aside until time advances; 'b' then
          // registers 'c', which, firing after 'a' was put aside, moves 'a' later.
          if (t.namespace === 'a' && fired.length === 1) svc.registerEventTimeTimer('a', t.timestamp);
          if (t.namespace === 'b') svc.registerEventTimeTimer('c', t.timestamp);
          if (t.namespace === 'c')
            expect(svc.moveEventTimeTimer('a', t.timestamp, t.timestamp + 5)).toBe(true);
        },
        onProcessingTime: () => {},
      },
      (ns) => ns,
      { now: () => 0, currentWatermark: () => 0, wakeAt: () => {} },
    );
    backend.setCurrentKey(1);
    svc.registerEventTimeTimer('a', 10);
    svc.registerEventTimeTimer('b', 10);
    svc.advanceWatermark(10);
    expect(fired).toEqual(['a@10', 'b@10', 'c@10']);
    expect(svc.numEventTimeTimers()).toBe(1);
    svc.advanceWatermark(100);
    expect(fired).toEqual(['a@10', 'b@10', 'c@10', 'a@15']);
    expect(svc.numEventTimeTimers()).toBe(0);
  });
});
