import {
  type Collector,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  OutputTag,
  type RuntimeContext,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { OperatorHarness } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

interface Click {
  user: string;
  ts: number;
}

const COUNT = new ValueStateDescriptor<number>('count');
const tooMany = new OutputTag<string>('too-many');

/** Counts clicks per user; after 10 s of event time without clicks, emits the count and resets. */
class SessionCount extends KeyedProcessFunction<string, Click, string> {
  private count!: ValueState<number>;
  override open(ctx: RuntimeContext) {
    this.count = ctx.getState(COUNT);
  }
  processElement(c: Click, ctx: KeyedProcessContext<string>, _out: Collector<string>) {
    const n = (this.count.value() ?? 0) + 1;
    this.count.update(n);
    if (n === 3) ctx.output(tooMany, c.user);
    ctx.timerService().registerEventTimeTimer(c.ts + 10_000);
    ctx.timerService().registerProcessingTimeTimer(ctx.timerService().currentProcessingTime() + 500);
  }
  override onTimer(ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
    if (ctx.timeDomain() === 'PROCESSING_TIME') {
      out.collect(`tick ${ctx.getCurrentKey()} ${ts}`);
      return;
    }
    const n = this.count.value();
    if (n !== undefined && ts >= 10_000) {
      out.collect(`${ctx.getCurrentKey()}: ${n}`);
      this.count.clear();
    }
  }
}

const build = (s: import('tidemark').DataStream<Click>) => s.keyBy((c) => c.user).process(new SessionCount());

describe('operator harness', () => {
  test('drives a keyed process function: elements, state, timers, watermarks, side outputs', () => {
    const h = OperatorHarness.forOneInput(build);
    h.processElement({ user: 'a', ts: 1000 }, 1000)
      .processElement({ user: 'a', ts: 2000 }, 2000)
      .processElement({ user: 'b', ts: 3000 }, 3000)
      .processElement({ user: 'a', ts: 4000 }, 4000);
    expect(h.state(COUNT, 'a')).toBe(3);
    expect(h.state(COUNT, 'b')).toBe(1);
    expect(h.sideOutput(tooMany)).toEqual(['a']);
    expect(h.numEventTimeTimers()).toBe(4);
    expect(h.numProcessingTimeTimers()).toBe(2); // (a, 500) and (b, 500): one per key and time
    h.processWatermark(11_000);
    expect(h.records()).toEqual([{ value: 'a: 3', timestamp: 11_000 }]);
    h.processWatermark(13_000);
    expect(h.output()).toEqual(['a: 3', 'b: 1']);
    expect(h.state(COUNT, 'a')).toBeUndefined();
    expect(h.watermarks()).toEqual([11_000, 13_000]);
    h.clearOutput().setProcessingTime(499);
    expect(h.output()).toEqual([]);
    h.setProcessingTime(500);
    expect(
      h
        .records()
        .map((r) => r.value)
        .sort(),
    ).toEqual(['tick a 500', 'tick b 500']);
    expect(h.records()[0]!.timestamp).toBeNull();
    h.close();
  });

  test('snapshot at parallelism 1, restore at parallelism 3: state and timers move by key group', () => {
    const users = Array.from({ length: 30 }, (_x, i) => `user-${i}`);
    const h = OperatorHarness.forOneInput(build);
    users.forEach((u, i) => {
      for (let k = 0; k <= i % 3; k++) h.processElement({ user: u, ts: 100 * i }, 100 * i);
    });
    const snap = h.snapshot();
    const restored = [0, 1, 2].map((i) =>
      OperatorHarness.forOneInput(build, { restoreFrom: [snap], parallelism: 3, subtaskIndex: i }),
    );
    for (const u of users) {
      const owners = restored.filter((r) => r.ownsKey(u));
      expect(owners.length).toBe(1);
      const i = users.indexOf(u);
      expect(owners[0]!.state(COUNT, u)).toBe((i % 3) + 1);
      for (const other of restored) if (other !== owners[0]) expect(other.keys('count')).not.toContain(u);
    }
    expect(restored.reduce((n, r) => n + r.keys('count').length, 0)).toBe(users.length);
    for (const r of restored) {
      // Timers moved with their key groups.
      for (const t of r.timers()) expect(r.ownsKey(t.key)).toBe(true);
    }
    // Every event-time timer fires on exactly one subtask, with the restored state.
    for (const r of restored) r.processWatermark(100_000);
    const fired = restored.flatMap((r) => r.output()).sort();
    expect(fired).toEqual(users.map((u, i) => `${u}: ${(i % 3) + 1}`).sort());
    // And back to one subtask from three.
    const snaps = restored.map((r) => r.snapshot());
    const back = OperatorHarness.forOneInput(build, { restoreFrom: snaps });
    expect(back.keys('count')).toEqual([]);
  });

  test('restoring with another maxParallelism is refused', () => {
    const h = OperatorHarness.forOneInput(build);
    h.processElement({ user: 'a', ts: 1 }, 1);
    expect(() =>
      OperatorHarness.forOneInput(build, { restoreFrom: [h.snapshot()], maxParallelism: 64 }),
    ).toThrow(/maxParallelism 128, but the job runs it with maxParallelism 64/);
  });

  test('two-input operators: the operator sees the minimum of both watermarks', () => {
    const h = OperatorHarness.forTwoInputs<Click, Click, string>((a, b) =>
      a
        .keyBy((c) => c.user)
        .intervalJoin(b.keyBy((c) => c.user))
        .between(-5, 5)
        .process({
          processElement: (l, r, ctx, out) => out.collect(`${l.ts}-${r.ts}@${ctx.getTimestamp()}`),
        }),
    );
    h.processElement1({ user: 'x', ts: 10 }, 10)
      .processElement2({ user: 'x', ts: 14 }, 14)
      .processElement2({ user: 'x', ts: 16 }, 16);
    expect(h.output()).toEqual(['10-14@14']);
    h.processWatermark1(100);
    expect(h.watermarks()).toEqual([]);
    h.processWatermark2(50);
    expect(h.watermarks()).toEqual([50]);
  });

  test('the harness drives exactly one operator', () => {
    expect(() =>
      OperatorHarness.forOneInput<number, number>((s) => s.map((x) => x).filter(() => true)),
    ).toThrow(/exactly one operator, but the function added 2: map, filter/);
  });
});
