// The timer service against a plain model: a list of timers, each firing round picking the earliest
// (timestamp, then registration order) due timer again and again. Over random registrations,
// deletions and moves (of number and array keys), firings that register, re-register, move and
// delete from inside onTimer, and a timer that fired asking again in its round (it waits for the
// next advance of time), the service fires the same timers in the same order and holds the same
// timers in the same order. The service keeps timers in columns and reuses the slot of a timer
// once nothing refers to it; long random runs reuse slots many times over.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { Timer } from '../../operators/contract.js';
import { TimerServiceImpl } from '../../runtime/operator/timers.js';
import type { Key } from '../../state/hash.js';
import { heapBackend } from '../helpers/heap.js';

type OnTimer = 'none' | 'same' | 'later' | 'deleteOther' | 'moveOther';
type Op =
  | { kind: 'register' | 'delete'; key: number; ns: string; time: number; event: boolean }
  | { kind: 'move'; key: number; ns: string; from: number; to: number; event: boolean }
  | { kind: 'fire'; upTo: number; event: boolean; onTimer: OnTimer };

const MAX_PARALLELISM = 4;
const timeArb = fc.nat({ max: 12 });
const nsArb = fc.constantFrom('w1', 'w2');
const keyArb = fc.nat({ max: 7 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constantFrom('register' as const, 'register' as const, 'delete' as const),
      key: keyArb,
      ns: nsArb,
      time: timeArb,
      event: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('move' as const),
      key: keyArb,
      ns: nsArb,
      from: timeArb,
      to: timeArb,
      event: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('fire' as const),
      upTo: timeArb,
      event: fc.boolean(),
      onTimer: fc.constantFrom<OnTimer>('none', 'same', 'later', 'deleteOther', 'moveOther'),
    }),
  },
);

/** Keys 0-3 are numbers, 4-7 arrays (their canonical form is a string, not the key). */
const keyOf = (k: number): Key => (k < 4 ? k : [k, 'k']);

interface ModelTimer {
  key: number;
  ns: string;
  ts: number;
  seq: number;
  /** Put aside by the round at this time: due only in a round of a later time. */
  after: number;
}

/** What a timer service must do, written as plainly as possible. */
class Model {
  readonly timers: [ModelTimer[], ModelTimer[]] = [[], []];
  private seq = 0;
  private find(event: boolean, key: number, ns: string, ts: number): number {
    return this.timers[event ? 0 : 1].findIndex((t) => t.key === key && t.ns === ns && t.ts === ts);
  }
  register(event: boolean, key: number, ns: string, ts: number): void {
    if (this.find(event, key, ns, ts) >= 0) return;
    this.timers[event ? 0 : 1].push({ key, ns, ts, seq: this.seq++, after: Number.NEGATIVE_INFINITY });
  }
  delete(event: boolean, key: number, ns: string, ts: number): void {
    const i = this.find(event, key, ns, ts);
    if (i >= 0) this.timers[event ? 0 : 1].splice(i, 1);
  }
  /** Deleting and registering again (a timer at `to` already: only the delete). */
  move(event: boolean, key: number, ns: string, from: number, to: number): boolean {
    if (this.find(event, key, ns, from) < 0) return false;
    this.delete(event, key, ns, from);
    this.register(event, key, ns, to);
    return true;
  }
  fire(event: boolean, time: number, onTimer: (t: ModelTimer) => void): void {
    const list = this.timers[event ? 0 : 1];
    const roundSeq = this.seq;
    const fired: ModelTimer[] = [];
    for (;;) {
      let next: ModelTimer | undefined;
      for (const t of list)
        if (
          t.ts <= time &&
          t.after < time &&
          (next === undefined || t.ts < next.ts || (t.ts === next.ts && t.seq < next.seq))
        )
          next = t;
      if (next === undefined) return;
      const t = next;
      // A timer registered in this round equal to one that fired in it waits for a later time.
      if (t.seq >= roundSeq && fired.some((f) => f.key === t.key && f.ns === t.ns && f.ts === t.ts)) {
        t.after = time;
        continue;
      }
      list.splice(list.indexOf(t), 1);
      fired.push(t);
      onTimer(t);
    }
  }
  /** The timers in firing order, as [key, ns, ts]. */
  ordered(event: boolean): [Key, string, number][] {
    return [...this.timers[event ? 0 : 1]]
      .sort((a, b) => a.ts - b.ts || a.seq - b.seq)
      .map((t) => [keyOf(t.key), t.ns, t.ts]);
  }
}

/** What onTimer does, on the service (`svc`) or the model, for a timer of key `k`. */
function reactions(
  onTimer: () => OnTimer,
  register: (event: boolean, ns: string, ts: number) => void,
  del: (event: boolean, ns: string, ts: number) => void,
  move: (event: boolean, ns: string, from: number, to: number) => unknown,
) {
  return (event: boolean, ns: string, ts: number): void => {
    const other = ns === 'w1' ? 'w2' : 'w1';
    switch (onTimer()) {
      case 'same':
        register(event, ns, ts);
        break;
      case 'later':
        register(event, other, ts + 1);
        break;
      case 'deleteOther':
        del(event, other, ts);
        del(event, other, ts + 1);
        break;
      case 'moveOther':
        move(event, other, ts + 1, ts);
        move(event, other, ts, ts + 2);
        break;
      case 'none':
        break;
    }
  };
}

describe('timer service against a model', () => {
  test('fires and holds the same timers in the same order', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 20, maxLength: 200 }), (ops) => {
        const backend = heapBackend(MAX_PARALLELISM);
        let onTimer: OnTimer = 'none';
        const firedBySvc: unknown[] = [];
        let svc!: TimerServiceImpl<string>;
        // The service's calls for the current key, by time domain (onTimer's and the ops').
        const register = (e: boolean, ns: string, ts: number) =>
          e ? svc.registerEventTimeTimer(ns, ts) : svc.registerProcessingTimeTimer(ns, ts);
        const del = (e: boolean, ns: string, ts: number) =>
          e ? svc.deleteEventTimeTimer(ns, ts) : svc.deleteProcessingTimeTimer(ns, ts);
        const move = (e: boolean, ns: string, from: number, to: number) =>
          e ? svc.moveEventTimeTimer(ns, from, to) : svc.moveProcessingTimeTimer(ns, from, to);
        const svcReact = reactions(() => onTimer, register, del, move);
        const target = (event: boolean) => (t: Timer<unknown, string>) => {
          firedBySvc.push([event, t.key, t.namespace, t.timestamp]);
          svcReact(event, t.namespace, t.timestamp);
        };
        svc = new TimerServiceImpl<string>(
          'timers',
          backend,
          { onEventTime: target(true), onProcessingTime: target(false) },
          (ns) => ns,
          { now: () => 0, currentWatermark: () => 0, wakeAt: () => {} },
        );
        const model = new Model();
        const firedByModel: unknown[] = [];
        let modelKey = 0;
        const modelReact = reactions(
          () => onTimer,
          (e, ns, ts) => model.register(e, modelKey, ns, ts),
          (e, ns, ts) => model.delete(e, modelKey, ns, ts),
          (e, ns, from, to) => model.move(e, modelKey, ns, from, to),
        );
        const held = (event: boolean): [Key, string, number][] => {
          const heap = event ? svc.eventTimers : svc.processingTimers;
          const out: [Key, string, number][] = [];
          heap.forEach((s) => {
            out.push([heap.keyOf(s), heap.namespaceOf(s), heap.timestampOf(s)]);
          });
          return out;
        };
        for (const op of ops) {
          switch (op.kind) {
            case 'register':
              backend.setCurrentKey(keyOf(op.key));
              register(op.event, op.ns, op.time);
              model.register(op.event, op.key, op.ns, op.time);
              break;
            case 'delete':
              backend.setCurrentKey(keyOf(op.key));
              del(op.event, op.ns, op.time);
              model.delete(op.event, op.key, op.ns, op.time);
              break;
            case 'move':
              backend.setCurrentKey(keyOf(op.key));
              expect(move(op.event, op.ns, op.from, op.to)).toBe(
                model.move(op.event, op.key, op.ns, op.from, op.to),
              );
              break;
            case 'fire':
              onTimer = op.onTimer;
              op.event ? svc.advanceWatermark(op.upTo) : svc.advanceProcessingTime(op.upTo);
              model.fire(op.event, op.upTo, (t) => {
                firedByModel.push([op.event, keyOf(t.key), t.ns, t.ts]);
                modelKey = t.key;
                modelReact(op.event, t.ns, t.ts);
              });
              expect(firedBySvc.splice(0)).toEqual(firedByModel.splice(0));
              break;
          }
          expect(held(true)).toEqual(model.ordered(true));
          expect(held(false)).toEqual(model.ordered(false));
          expect(svc.numEventTimeTimers()).toBe(model.timers[0].length);
          expect(svc.numProcessingTimeTimers()).toBe(model.timers[1].length);
        }
      }),
      { numRuns: 400 },
    );
  });
});
