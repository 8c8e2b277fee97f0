// The live tail's pieces (runtime/observe/tail.ts): records as JSON text, the subtask's token
// bucket, and each listener's throttle with its counts of skipped records.
import { describe, expect, test } from 'vitest';
import {
  MAX_TAIL_VALUE,
  type TailRecord,
  TailThrottle,
  tailTap,
  tailText,
} from '../../runtime/observe/tail.js';

const record = (skipped = 0, value = '1'): TailRecord => ({
  vertexId: 1,
  subtaskIndex: 0,
  timestamp: 5,
  value,
  skipped,
});

describe('the live tail', () => {
  test('records as JSON text: bigint, Map, Set, cycles and long values never throw', () => {
    expect(tailText({ a: 1n, m: new Map([['k', 1]]), s: new Set([2]) })).toBe(
      '{"a":"1","m":{"k":1},"s":[2]}',
    );
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(JSON.parse(tailText(cyclic))).toBe('[object Object]');
    expect(tailText(undefined)).toBe('"undefined"');
    const long = tailText('x'.repeat(10_000));
    expect(long.length).toBeLessThan(MAX_TAIL_VALUE + 10);
    expect(JSON.parse(long)).toMatch(/…$/);
  });

  test('a subtask captures at most its rate, a second at once, and counts the others', () => {
    const got: TailRecord[] = [];
    const tap = tailTap(3, 1, 5, (r) => got.push(r));
    for (let i = 0; i < 100; i++) tap({ i }, i === 0 ? Number.NEGATIVE_INFINITY : 1000 + i);
    expect(got.map((r) => JSON.parse(r.value).i)).toEqual([0, 1, 2, 3, 4]);
    expect(got[0]).toMatchObject({ vertexId: 3, subtaskIndex: 1, timestamp: null, skipped: 0 });
    expect(got[1]!.timestamp).toBe(1001);
  });

  test('a listener gets at most `rate` events a second; the dropped add to the next one', () => {
    const t = new TailThrottle(2);
    expect(t.offer(record(3), 0)).toBe('{"subtaskIndex":0,"timestamp":5,"skipped":3,"value":1}');
    expect(t.offer(record(0), 10)).toBeDefined();
    expect(t.offer(record(4), 20)).toBeUndefined();
    t.drop(record(1));
    const next = t.offer(record(2, '{"a":[1]}'), 1000);
    expect(JSON.parse(next!)).toEqual({
      subtaskIndex: 0,
      timestamp: 5,
      skipped: 5 + 2 + 2,
      value: { a: [1] },
    });
  });
});
