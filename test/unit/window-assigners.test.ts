// Window assigners and TimeWindow, checked against Flink's definitions (TimeWindow,
// getWindowStartWithOffset, Tumbling/Sliding/Session assigners) computed independently here.
import fc from 'fast-check';
import {
  EventTimeSessionWindows,
  GlobalWindow,
  GlobalWindows,
  InvalidArgumentError,
  NO_TIMESTAMP,
  ProcessingTimeSessionWindows,
  SlidingEventTimeWindows,
  SlidingProcessingTimeWindows,
  TimeWindow,
  TumblingEventTimeWindows,
  TumblingProcessingTimeWindows,
} from 'tidemark';
import { describe, expect, test } from 'vitest';

const noContext = { getCurrentProcessingTime: () => 0 };
const at = (now: number) => ({ getCurrentProcessingTime: () => now });
const pairs = (ws: readonly TimeWindow[]) => ws.map((w) => [w.start, w.end]);

/** Reference: the window start is the largest `offset + k * size` that is <= ts. */
function referenceStart(ts: number, offset: number, size: number): number {
  return offset + Math.floor((ts - offset) / size) * size;
}

/** Reference: every `[s, s + size)` with `s = offset + k * slide` that holds ts, latest first. */
function referenceSliding(ts: number, size: number, slide: number, offset: number): [number, number][] {
  const out: [number, number][] = [];
  for (let k = Math.floor((ts - offset) / slide); ; k--) {
    const s = offset + k * slide;
    if (s + size <= ts) break;
    if (s <= ts) out.push([s, s + size]);
  }
  return out;
}

const sizeAndOffset = fc
  .integer({ min: 1, max: 1000 })
  .chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: -(size - 1), max: size - 1 })));

describe('TimeWindow (Flink semantics)', () => {
  test('[start, end): maxTimestamp = end - 1', () => {
    const w = new TimeWindow(10, 20);
    expect(w.maxTimestamp()).toBe(19);
    expect(w.namespace()).toBe('10:20');
    expect(String(w)).toBe('TimeWindow{start=10, end=20}');
  });

  test('intersects is start <= other.end && end >= other.start: touching windows intersect', () => {
    const a = new TimeWindow(0, 5);
    expect(a.intersects(new TimeWindow(5, 10))).toBe(true); // touching
    expect(new TimeWindow(5, 10).intersects(a)).toBe(true);
    expect(a.intersects(new TimeWindow(6, 10))).toBe(false); // a gap of one millisecond
    expect(a.intersects(new TimeWindow(-3, 0))).toBe(true);
    expect(a.cover(new TimeWindow(3, 9))).toEqual(new TimeWindow(0, 9));
  });

  test('mergeWindows groups overlapping or touching windows, sorted by start', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: -50, max: 50 }), fc.integer({ min: 1, max: 10 })), {
          maxLength: 12,
        }),
        (raw) => {
          const windows = raw.map(([s, len]) => new TimeWindow(s, s + len));
          const groups: [TimeWindow[], TimeWindow][] = [];
          TimeWindow.mergeWindows(windows, (toBeMerged, result) => groups.push([toBeMerged, result]));
          // Reference: connected components of the "intersects" relation, merged by cover.
          const sorted = windows.slice().sort((a, b) => a.start - b.start);
          const components: TimeWindow[][] = [];
          for (const w of sorted) {
            const last = components[components.length - 1];
            const end = last === undefined ? Number.NEGATIVE_INFINITY : Math.max(...last.map((x) => x.end));
            if (last !== undefined && w.start <= end) last.push(w);
            else components.push([w]);
          }
          const expected = components.filter((c) => c.length > 1);
          expect(groups.length).toBe(expected.length);
          groups.forEach(([members, result], i) => {
            expect(pairs(members).sort()).toEqual(pairs(expected[i]!).sort());
            expect(result.start).toBe(Math.min(...members.map((m) => m.start)));
            expect(result.end).toBe(Math.max(...members.map((m) => m.end)));
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('one assigner over a sequence of timestamps (it reuses the windows of the last one)', () => {
  // Timestamps near each other (the same window again, its boundaries) and far apart, negative
  // and at epoch-millisecond magnitudes.
  const timestamps = fc.array(
    fc.oneof(
      fc.integer({ min: -50, max: 50 }),
      fc.integer({ min: -1_000_000, max: 1_000_000 }),
      fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_100 }),
    ),
    { minLength: 1, maxLength: 40 },
  );
  const slidingParams = fc
    .tuple(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 60 }))
    .chain(([size, slide]) =>
      fc.tuple(fc.constant(size), fc.constant(slide), fc.integer({ min: -(slide - 1), max: slide - 1 })),
    );

  test('tumbling: every timestamp gets its own window', () => {
    fc.assert(
      fc.property(timestamps, sizeAndOffset, (tss, [size, offset]) => {
        const a = TumblingEventTimeWindows.of(size, offset);
        for (const ts of tss) {
          const start = referenceStart(ts, offset, size);
          expect(pairs(a.assignWindows(null, ts))).toEqual([[start, start + size]]);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('sliding: every timestamp gets exactly the windows that hold it', () => {
    fc.assert(
      fc.property(timestamps, slidingParams, (tss, [size, slide, offset]) => {
        const a = SlidingEventTimeWindows.of(size, slide, offset);
        for (const ts of tss)
          expect(pairs(a.assignWindows(null, ts))).toEqual(referenceSliding(ts, size, slide, offset));
      }),
      { numRuns: 300 },
    );
  });
});

describe('tumbling windows', () => {
  test('start = ts - ((ts - offset) % size + size) % size, for negative timestamps and offsets too', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1_000_000, max: 1_000_000 }), sizeAndOffset, (ts, [size, offset]) => {
        const ws = TumblingEventTimeWindows.of(size, offset).assignWindows(null, ts);
        const start = referenceStart(ts, offset, size);
        expect(pairs(ws)).toEqual([[start, start + size]]);
        expect(ws[0]!.start <= ts && ts < ws[0]!.end).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  test('an element at end - 1 is in the window, one at end in the next', () => {
    const a = TumblingEventTimeWindows.of(10);
    expect(pairs(a.assignWindows(null, 9))).toEqual([[0, 10]]);
    expect(pairs(a.assignWindows(null, 10))).toEqual([[10, 20]]);
    expect(pairs(a.assignWindows(null, -1))).toEqual([[-10, 0]]);
    expect(pairs(a.assignWindows(null, -10))).toEqual([[-10, 0]]);
    expect(pairs(a.assignWindows(null, -11))).toEqual([[-20, -10]]);
  });

  test('offsets shift the windows (positive and negative)', () => {
    expect(pairs(TumblingEventTimeWindows.of(10, 3).assignWindows(null, 2))).toEqual([[-7, 3]]);
    expect(pairs(TumblingEventTimeWindows.of(10, 3).assignWindows(null, 3))).toEqual([[3, 13]]);
    expect(pairs(TumblingEventTimeWindows.of(10, -3).assignWindows(null, 7))).toEqual([[7, 17]]);
    expect(pairs(TumblingEventTimeWindows.of(10, -3).assignWindows(null, 6))).toEqual([[-3, 7]]);
  });

  test('processing-time windows use the current processing time, not the element timestamp', () => {
    const a = TumblingProcessingTimeWindows.of(100);
    expect(pairs(a.assignWindows(null, 5, at(1234)))).toEqual([[1200, 1300]]);
    expect(pairs(a.assignWindows(null, NO_TIMESTAMP, at(99)))).toEqual([[0, 100]]);
    expect(a.isEventTime()).toBe(false);
    expect(String(a.getDefaultTrigger())).toBe('ProcessingTimeTrigger()');
    expect(TumblingEventTimeWindows.of(5).isEventTime()).toBe(true);
    expect(String(TumblingEventTimeWindows.of(5).getDefaultTrigger())).toBe('EventTimeTrigger()');
  });

  test('invalid arguments are InvalidArgumentErrors (Flink: size > 0, |offset| < size)', () => {
    expect(() => TumblingEventTimeWindows.of(0)).toThrow(InvalidArgumentError);
    expect(() => TumblingEventTimeWindows.of(-5)).toThrow(/size must be a positive integer/);
    expect(() => TumblingEventTimeWindows.of(10, 10)).toThrow(/abs\(offset\) < size/);
    expect(() => TumblingEventTimeWindows.of(10, -10)).toThrow(InvalidArgumentError);
    expect(() => TumblingProcessingTimeWindows.of(1.5)).toThrow(InvalidArgumentError);
  });
});

describe('sliding windows', () => {
  test('every window [start, start + size) holding ts, latest start first', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -100_000, max: 100_000 }),
        fc.integer({ min: 1, max: 60 }),
        fc
          .integer({ min: 1, max: 30 })
          .chain((slide) => fc.tuple(fc.constant(slide), fc.integer({ min: -(slide - 1), max: slide - 1 }))),
        (ts, size, [slide, offset]) => {
          const ws = SlidingEventTimeWindows.of(size, slide, offset).assignWindows(null, ts);
          expect(pairs(ws)).toEqual(referenceSliding(ts, size, slide, offset));
          const p = SlidingProcessingTimeWindows.of(size, slide, offset).assignWindows(null, 0, at(ts));
          expect(pairs(p)).toEqual(referenceSliding(ts, size, slide, offset));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('overlapping windows, also when the size is not a multiple of the slide', () => {
    const a = SlidingEventTimeWindows.of(10, 5);
    expect(pairs(a.assignWindows(null, 7))).toEqual([
      [5, 15],
      [0, 10],
    ]);
    // Consecutive elements share the cached windows only when they have the same windows.
    const b = SlidingEventTimeWindows.of(10, 4);
    expect(pairs(b.assignWindows(null, 8))).toEqual(referenceSliding(8, 10, 4, 0));
    expect(pairs(b.assignWindows(null, 11))).toEqual(referenceSliding(11, 10, 4, 0));
    expect(pairs(b.assignWindows(null, 8))).toEqual(referenceSliding(8, 10, 4, 0));
  });

  test('invalid arguments are InvalidArgumentErrors (Flink: size > 0, slide > 0, |offset| < slide)', () => {
    expect(() => SlidingEventTimeWindows.of(0, 5)).toThrow(InvalidArgumentError);
    expect(() => SlidingEventTimeWindows.of(10, 0)).toThrow(/slide must be a positive integer/);
    expect(() => SlidingEventTimeWindows.of(10, 5, 5)).toThrow(/abs\(offset\) < slide/);
    expect(() => SlidingProcessingTimeWindows.of(10, -1)).toThrow(InvalidArgumentError);
  });
});

describe('session windows', () => {
  test('each element opens [ts, ts + gap); dynamic gaps come from the element', () => {
    expect(pairs(EventTimeSessionWindows.withGap(30).assignWindows(null, -5))).toEqual([[-5, 25]]);
    const dyn = EventTimeSessionWindows.withDynamicGap<{ gap: number }>((e) => e.gap);
    expect(pairs(dyn.assignWindows({ gap: 7 }, 100, noContext))).toEqual([[100, 107]]);
    expect(() => dyn.assignWindows({ gap: 0 }, 100, noContext)).toThrow(/0 < gap/);
    const p = ProcessingTimeSessionWindows.withGap(10);
    expect(pairs(p.assignWindows(null, 3, at(500)))).toEqual([[500, 510]]);
    const pd = ProcessingTimeSessionWindows.withDynamicGap<number>((e) => e);
    expect(pairs(pd.assignWindows(4, NO_TIMESTAMP, at(500)))).toEqual([[500, 504]]);
  });

  test('invalid gaps are InvalidArgumentErrors (Flink: gap > 0)', () => {
    expect(() => EventTimeSessionWindows.withGap(0)).toThrow(/session gap must be a positive integer/);
    expect(() => ProcessingTimeSessionWindows.withGap(-1)).toThrow(InvalidArgumentError);
  });
});

describe('event-time assigners on records without a timestamp', () => {
  test('throw a clear error, as Flink does (did you forget assignTimestampsAndWatermarks?)', () => {
    for (const a of [
      TumblingEventTimeWindows.of(10),
      SlidingEventTimeWindows.of(10, 5),
      EventTimeSessionWindows.withGap(10),
    ])
      expect(() => a.assignWindows(null, NO_TIMESTAMP, noContext)).toThrow(
        /Record has no timestamp.*assignTimestampsAndWatermarks/,
      );
  });
});

describe('global windows', () => {
  test('one window per key that never ends; the default trigger never fires', () => {
    const g = GlobalWindows.create();
    const ws = g.assignWindows();
    expect(ws).toEqual([GlobalWindow.get()]);
    expect(ws[0]!.maxTimestamp()).toBe(Number.POSITIVE_INFINITY);
    expect(String(g.getDefaultTrigger())).toBe('NeverTrigger()');
    expect(g.isEventTime()).toBe(false);
  });
});

describe('windows as plain data (snapshots hold windows by their toJSON form)', () => {
  test('assigners restore the windows they assign from their plain-data form', () => {
    const tw = new TimeWindow(-20, 10);
    const restored = SlidingEventTimeWindows.of(30, 10).restoreWindow(JSON.parse(JSON.stringify(tw)));
    expect(restored).toBeInstanceOf(TimeWindow);
    expect(restored.equals(tw)).toBe(true);
    expect(restored.namespace()).toBe(tw.namespace());
    expect(EventTimeSessionWindows.withGap(5).restoreWindow(tw)).toBe(tw);
    const g = GlobalWindows.create().restoreWindow(JSON.parse(JSON.stringify(GlobalWindow.get())));
    expect(g).toBe(GlobalWindow.get());
    expect(() => TumblingEventTimeWindows.of(5).restoreWindow({ start: 'x' })).toThrow(/not a TimeWindow/);
  });
});
