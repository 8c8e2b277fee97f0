// A restore installs key groups when they are first needed (runtime/operator/operator-runtime.ts,
// deferRestore): these cases touch none or only some keys after a restore and check that what an
// eager restore would give still comes out — timers of untouched groups fire, a checkpoint taken
// before any record holds every group, listing keys sees them, a state of another kind fails.
import {
  type Collector,
  type DataStream,
  type KeyedProcessContext,
  KeyedProcessFunction,
  ListStateDescriptor,
  type OnTimerContext,
  type RuntimeContext,
  TumblingEventTimeWindows,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';

describe.each(BACKENDS)('$name backend', ({ config }) => {
  interface Reading {
    key: number;
    value: number;
  }

  const KEYS = 300;
  const sums = (s: DataStream<Reading>) =>
    s
      .keyBy((r) => r.key)
      .window(TumblingEventTimeWindows.of(1_000))
      .reduce((a, b) => ({ key: a.key, value: a.value + b.value }));

  /** Every key gets a record in window [0, 1000) (value key + 10) and in window [1000, 2000) (value 1). */
  function filled() {
    const h = OperatorHarness.forOneInput(sums, { stateBackend: config() });
    for (let k = 0; k < KEYS; k++) {
      h.processElement({ key: k, value: k + 10 }, 10 + (k % 900));
      h.processElement({ key: k, value: 1 }, 1_500);
    }
    return h;
  }

  const byKey = (a: Reading, b: Reading) => a.key - b.key;

  describe('a restore that installs key groups when needed', () => {
    test('a watermark alone fires the windows of every key group, none of which saw a record', () => {
      const reference = filled();
      reference.processWatermark(999);
      const expected = reference.output().sort(byKey);
      expect(expected).toHaveLength(KEYS);

      const restored = OperatorHarness.forOneInput(sums, {
        stateBackend: config(),
        restoreFrom: [filled().snapshot()],
      });
      restored.processWatermark(999);
      expect(restored.output().sort(byKey)).toEqual(expected);
      // The second windows are still there, in every group.
      restored.processWatermark(1_999);
      expect(restored.output()).toHaveLength(2 * KEYS);
    });

    test('records for some keys after the restore, and the untouched keys still fire', () => {
      const restored = OperatorHarness.forOneInput(sums, {
        stateBackend: config(),
        restoreFrom: [filled().snapshot()],
      });
      for (let k = 0; k < KEYS; k += 7) restored.processElement({ key: k, value: 1_000 }, 500);
      restored.processWatermark(999);
      const out = restored.output().sort(byKey);
      expect(out).toHaveLength(KEYS);
      for (const r of out) expect(r.value).toBe(r.key + 10 + (r.key % 7 === 0 ? 1_000 : 0));
    });

    test('a snapshot taken before any record holds every key group', () => {
      const first = OperatorHarness.forOneInput(sums, {
        stateBackend: config(),
        restoreFrom: [filled().snapshot()],
      });
      const again = first.snapshot(2);
      // Restored at another parallelism from that snapshot: every subtask fires its share.
      const out: Reading[] = [];
      for (let i = 0; i < 3; i++) {
        const h = OperatorHarness.forOneInput(sums, {
          stateBackend: config(),
          restoreFrom: [again],
          parallelism: 3,
          subtaskIndex: i,
        });
        h.processWatermark(1_999);
        out.push(...h.output());
      }
      expect(out).toHaveLength(2 * KEYS);
      expect(out.filter((r) => r.value === 1)).toHaveLength(KEYS);
    });

    test('listing keys and counting timers see key groups no record touched', () => {
      const restored = OperatorHarness.forOneInput(sums, {
        stateBackend: config(),
        restoreFrom: [filled().snapshot()],
      });
      expect(restored.numEventTimeTimers()).toBe(2 * KEYS);
      expect(restored.windows(123).map(String)).toEqual([
        'TimeWindow{start=0, end=1000}',
        'TimeWindow{start=1000, end=2000}',
      ]);
    });
  });

  /** Counts per key; a processing-time timer per key at the key's number (ms) reports the count. */
  class Report extends KeyedProcessFunction<number, Reading, Reading> {
    private count!: ValueState<number>;
    override open(ctx: RuntimeContext): void {
      this.count = ctx.getState(new ValueStateDescriptor<number>('count'));
    }
    processElement(r: Reading, ctx: KeyedProcessContext<number>, _out: Collector<Reading>): void {
      if (this.count.value() === undefined) ctx.timerService().registerProcessingTimeTimer(1_000 + r.key);
      this.count.update((this.count.value() ?? 0) + 1);
    }
    override onTimer(_t: number, ctx: OnTimerContext<number>, out: Collector<Reading>): void {
      out.collect({ key: ctx.getCurrentKey(), value: this.count.value() ?? 0 });
    }
  }

  describe('processing-time timers of key groups installed when needed', () => {
    test('come due with the clock, without a record', () => {
      const build = (s: DataStream<Reading>) => s.keyBy((r) => r.key).process(new Report());
      const h = OperatorHarness.forOneInput(build, { stateBackend: config() });
      for (let k = 0; k < KEYS; k++) for (let n = 0; n <= k % 3; n++) h.processElement({ key: k, value: 0 });
      const restored = OperatorHarness.forOneInput(build, {
        stateBackend: config(),
        restoreFrom: [h.snapshot()],
      });
      restored.setProcessingTime(1_000 + KEYS / 2);
      const half = restored.output();
      expect(half).toHaveLength(KEYS / 2 + 1);
      for (const r of half) expect(r.value).toBe((r.key % 3) + 1);
      restored.setProcessingTime(1_000 + KEYS);
      expect(restored.output()).toHaveLength(KEYS);
    });
  });

  class ListsNotValues extends KeyedProcessFunction<number, Reading, Reading> {
    override open(ctx: RuntimeContext): void {
      ctx.getListState(new ListStateDescriptor<number>('count'));
    }
    processElement(): void {}
  }

  test('a restored state registered as another kind fails when the job registers it', () => {
    const h = OperatorHarness.forOneInput((s: DataStream<Reading>) =>
      s
        .keyBy((r) => r.key)
        .process(new Report())
        .uid('p'),
    );
    h.processElement({ key: 1, value: 0 });
    expect(() =>
      OperatorHarness.forOneInput(
        (s: DataStream<Reading>) =>
          s
            .keyBy((r) => r.key)
            .process(new ListsNotValues())
            .uid('p'),
        { stateBackend: config(), restoreFrom: [h.snapshot()] },
      ),
    ).toThrow(/'count'.*value state/);
  });
});
