// Records are values: strict records (on in every run of tidemark/testing, an option of execute for
// your own) freeze what operators emit, so a function that changes a record in place fails where
// it does, naming its operator, instead of changing the record under the operators after it.
import fc from 'fast-check';
import { type DataStream, StreamExecutionEnvironment } from 'tidemark';
import {
  checkOrderInvariance,
  checkParallelismInvariance,
  eventStreams,
  OperatorHarness,
  simulate,
  type TimedEvent,
} from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { freezeRecord } from '../../operators/records.js';

type Ev = TimedEvent<string, number>;

describe('freezing records', () => {
  test('plain objects and arrays are frozen deeply; other objects are left alone; cycles end', () => {
    class Point {
      constructor(public x: number) {}
    }
    const cyclic: { self?: unknown; list: number[] } = { list: [1, 2] };
    cyclic.self = cyclic;
    const r = freezeRecord({
      a: { b: [{ c: 1 }] },
      point: new Point(1),
      map: new Map([[1, { d: 1 }]]),
      bytes: new Uint8Array(2),
      cyclic,
    });
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.a.b[0])).toBe(true);
    expect(Object.isFrozen(r.cyclic.list)).toBe(true);
    expect(Object.isFrozen(r.point)).toBe(false);
    expect(Object.isFrozen(r.map.get(1))).toBe(false);
    r.bytes[0] = 7; // typed arrays cannot be frozen and are not
    expect(r.bytes[0]).toBe(7);
    expect(freezeRecord(5)).toBe(5);
    expect(freezeRecord(null)).toBe(null);
  });
});

/** The planted bug: a map that doubles the value in place, on one of two branches of a split. */
function doubleInPlace(events: readonly Ev[]) {
  return (env: StreamExecutionEnvironment) => {
    const input = env.fromArray(events, { parallel: true });
    const doubled = input
      .map((r) => {
        r.value *= 2;
        return r;
      })
      .name('double');
    return input.union(doubled).collect();
  };
}

/** The correct version: a changed copy. */
function doubleCopy(events: readonly Ev[]) {
  return (env: StreamExecutionEnvironment) => {
    const input = env.fromArray(events, { parallel: true });
    const doubled = input.map((r) => ({ ...r, value: r.value * 2 })).name('double');
    return input.union(doubled).collect();
  };
}

describe('strict records catch a record changed in place', () => {
  test('without strict records the other branch sees the change; with them the job fails naming the operator', async () => {
    const events = [{ key: 'k', value: 3, timestamp: 0 }];
    const env = new StreamExecutionEnvironment();
    const out = doubleInPlace(events)(env);
    await env.execute();
    // The bug at work: the branch that did not double sees 6.
    expect(out.values.map((e) => e.value)).toEqual([6, 6]);

    const strict = new StreamExecutionEnvironment();
    doubleInPlace([{ key: 'k', value: 3, timestamp: 0 }])(strict);
    await expect(strict.execute({ strictRecords: true })).rejects.toThrow(
      /operator 'double' \(\d+-map\) subtask 1\/1 .*user function threw on record \{"key":"k","value":3,"timestamp":0\}: Cannot assign to read only property 'value'.*a record was mutated in place\. Records are values/,
    );
  });

  test('checkParallelismInvariance: caught with a message naming the operator, counterexample as generated', async () => {
    const started = performance.now();
    const details = await fc.check(
      fc.asyncProperty(eventStreams(), (events) =>
        checkParallelismInvariance(doubleInPlace(events), { parallelisms: [1, 2] }),
      ),
      { numRuns: 50, seed: 7 },
    );
    expect(details.failed).toBe(true);
    const error = String(details.errorInstance);
    expect(error).toMatch(/operator 'double' .*mutated in place/);
    expect(error).not.toMatch(/parallelism/);
    // The counterexample is one event, as generated: the change was refused, so nothing moved.
    const [events] = details.counterexample!;
    expect(events).toHaveLength(1);
    expect(fc.defaultReportMessage(details)).toMatch(/Counterexample: \[k0:0@0\]/);
    expect(performance.now() - started).toBeLessThan(30_000);
  });

  test('the correct version (a changed copy) passes every check', async () => {
    await fc.assert(
      fc.asyncProperty(eventStreams({ maxLength: 20 }), async (events) => {
        await checkParallelismInvariance(doubleCopy(events), { parallelisms: [1, 2] });
        await simulate(doubleCopy(events), { seed: 1, parallelism: 2 });
      }),
      { numRuns: 15 },
    );
  });

  test('simulate and checkOrderInvariance run with strict records; their inputs are copied', async () => {
    const events = [{ key: 'k', value: 3, timestamp: 0 }];
    await expect(simulate(doubleInPlace(events), { seed: 1 })).rejects.toThrow(/mutated in place/);
    await expect(
      simulate(doubleInPlace([{ key: 'k', value: 3, timestamp: 0 }]), { seed: 1, strictRecords: false }),
    ).resolves.toBeDefined();
    const input = [{ key: 'k', value: 3, timestamp: 0 }];
    const job = (env: StreamExecutionEnvironment, xs: readonly Ev[]) => doubleInPlace(xs)(env);
    await expect(checkOrderInvariance(job, [input, input])).rejects.toThrow(/operator 'double'/);
    expect(Object.isFrozen(input[0])).toBe(false); // the check froze its copy, not the caller's input
    expect(input[0]!.value).toBe(3);
  });

  test('the harness freezes what it gives the operator and what the operator emits', () => {
    const build = (s: DataStream<Ev>) =>
      s.map((r) => {
        r.value += 1;
        return r;
      });
    const h = OperatorHarness.forOneInput(build);
    expect(() => h.processElement({ key: 'k', value: 1, timestamp: 0 })).toThrow(/mutated in place/);
    const lax = OperatorHarness.forOneInput(build, { strictRecords: false });
    lax.processElement({ key: 'k', value: 1, timestamp: 0 });
    expect(lax.output()).toEqual([{ key: 'k', value: 2, timestamp: 0 }]);
  });
});
