import {
  type Collector,
  CountEvictor,
  CountTrigger,
  type DataStream,
  EventTimeSessionWindows,
  GlobalWindow,
  GlobalWindows,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type OnTimerContext,
  OutputTag,
  type RuntimeContext,
  TimeWindow,
  TumblingEventTimeWindows,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import { assertOutputEqualsSorted, type HarnessEvent, OperatorHarness } from 'tidemark/testing';
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

describe('operator harness: ordered output, watermark status, channels, state by descriptor', () => {
  type T2 = [string, number];
  const sumT2 = (a: T2, b: T2): T2 => [a[0], a[1] + b[1]];
  const tumbling = (s: DataStream<T2>) =>
    s
      .keyBy((t) => t[0])
      .window(TumblingEventTimeWindows.of(10))
      .reduce(sumT2);

  test('one ordered list of records, watermarks and statuses', () => {
    const h = OperatorHarness.forOneInput(tumbling);
    h.processElement(['a', 1], 3).processElement(['a', 2], 12).processWatermark(9);
    h.processWatermarkStatus('IDLE').processWatermarkStatus('ACTIVE').processWatermark(19);
    expect(h.events()).toEqual([
      { record: ['a', 1], timestamp: 9 },
      { watermark: 9 },
      { watermarkStatus: 'IDLE' },
      { watermarkStatus: 'ACTIVE' },
      { record: ['a', 2], timestamp: 19 },
      { watermark: 19 },
    ]);
    // The older views stay as they were.
    expect(h.watermarks()).toEqual([9, 19]);
    expect(h.output()).toEqual([
      ['a', 1],
      ['a', 2],
    ]);
    expect(h.clearOutput().events()).toEqual([]);
  });

  test('without channels every watermark reaches the operator, as in Flink; it fires nothing twice', () => {
    const h = OperatorHarness.forOneInput(tumbling);
    h.processElement(['a', 1], 3).processWatermark(9).processWatermark(9).processWatermark(5);
    expect(h.events()).toEqual([
      { record: ['a', 1], timestamp: 9 },
      { watermark: 9 },
      { watermark: 9 },
      { watermark: 5 },
    ]);
    // A timer registered at a time already passed fires on the next watermark, even an equal one.
    const late = OperatorHarness.forOneInput((s: DataStream<T2>) =>
      s
        .keyBy((t) => t[0])
        .process<string>({
          processElement(e, ctx) {
            ctx.timerService().registerEventTimeTimer(e[1]);
          },
          onTimer(ts, _ctx, out) {
            out.collect(`timer ${ts}`);
          },
        }),
    );
    late.processWatermark(10).processElement(['a', 4], 4).processWatermark(10);
    expect(late.events()).toEqual([
      { watermark: 10 },
      { record: 'timer 4', timestamp: 4 },
      { watermark: 10 },
    ]);
    // Through a valve (inputChannels), a watermark that does not advance is dropped, as in a task.
    const valved = OperatorHarness.forOneInput(tumbling, { inputChannels: 1 });
    valved.processWatermark(9).processWatermark(9).processWatermark(5);
    expect(valved.events()).toEqual([{ watermark: 9 }]);
  });

  test('several input channels combined by the runtime valve, with idleness', () => {
    const h = OperatorHarness.forOneInput(tumbling, { inputChannels: 3 });
    h.processElement(['a', 1], 3);
    h.processWatermark(20, { channel: 0 }).processWatermark(15, { channel: 1 });
    expect(h.events()).toEqual([]); // channel 2 holds the minimum back
    h.processWatermarkStatus('IDLE', { channel: 2 });
    expect(h.events()).toEqual([{ record: ['a', 1], timestamp: 9 }, { watermark: 15 }]);
    h.processWatermarkStatus('IDLE', { channel: 1 }).processWatermarkStatus('IDLE', { channel: 0 });
    // Every channel idle: the maximum goes out, then the operator is idle.
    expect(h.events().slice(2)).toEqual([{ watermark: 20 }, { watermarkStatus: 'IDLE' }]);
    h.processWatermarkStatus('ACTIVE', { channel: 1 });
    expect(h.events().slice(4)).toEqual([{ watermarkStatus: 'ACTIVE' }]);
    // Without a channel: every channel in turn.
    h.processWatermark(30);
    expect(h.events().slice(5)).toEqual([{ watermark: 30 }]);
    expect(() => h.processWatermark(40, { channel: 3 })).toThrow(
      /input 1 has 3 channels \(0\.\.2\), not channel 3/,
    );
    expect(() => h.processWatermark1(40)).toThrow(/processWatermark1 is for two-input operators/);
    expect(() => OperatorHarness.forOneInput(tumbling, { inputChannels: 0 })).toThrow(/inputChannels/);
  });

  test('two inputs: one valve over both inputs, idleness included', () => {
    const h = OperatorHarness.forTwoInputs<string, number, string>((a, b) =>
      a.connect(b).map({ map1: (x) => x, map2: (x) => String(x) }),
    );
    h.processWatermark1(10);
    expect(h.events()).toEqual([]);
    h.processWatermarkStatus2('IDLE');
    expect(h.events()).toEqual([{ watermark: 10 }]);
    h.processWatermarkStatus1('IDLE');
    expect(h.events()).toEqual([{ watermark: 10 }, { watermarkStatus: 'IDLE' }]);
    h.processWatermarkStatus('ACTIVE').processWatermark(12);
    expect(h.events().slice(2)).toEqual([{ watermarkStatus: 'ACTIVE' }, { watermark: 12 }]);
    expect(() => h.processWatermark(13, { channel: 0 })).toThrow(/processWatermark1 or processWatermark2/);
  });

  test('assertOutputEqualsSorted: watermarks by position, records as a set between them', () => {
    const out: HarnessEvent<string>[] = [
      { record: 'b', timestamp: 1 },
      { record: 'a', timestamp: 2 },
      { watermark: 5 },
      { record: 'c', timestamp: 6 },
    ];
    assertOutputEqualsSorted(
      [
        { record: 'a', timestamp: 2 },
        { record: 'b', timestamp: 1 },
        { watermark: 5 },
        { record: 'c', timestamp: 6 },
      ],
      out,
    );
    // A record on the wrong side of a watermark.
    expect(() =>
      assertOutputEqualsSorted(
        [
          { record: 'a', timestamp: 2 },
          { watermark: 5 },
          { record: 'b', timestamp: 1 },
          { record: 'c', timestamp: 6 },
        ],
        out,
      ),
    ).toThrow(
      /before WM\(5\):\n {2}1 expected, 2 actual\n {2}unexpected \(produced, not expected\) 1:\n {4}\{"record":"b","timestamp":1\}/,
    );
    expect(() => assertOutputEqualsSorted([{ watermark: 4 }], out)).toThrow(
      /watermarks and statuses are \[WM\(5\)\], expected \[WM\(4\)\]\n {2}expected: WM\(4\)\n {2}actual: {3}"b"@1 "a"@2 WM\(5\) "c"@6/,
    );
    expect(() =>
      assertOutputEqualsSorted(
        [{ record: 'c', timestamp: 6 }, { watermarkStatus: 'IDLE' }],
        [{ record: 'c', timestamp: 6 }],
      ),
    ).toThrow(/watermarks and statuses are \[\], expected \[IDLE\]/);
    // With a comparator, records are equal when it says so (here: by first letter only).
    const byInitial = (x: string, y: string) => x[0]!.localeCompare(y[0]!);
    assertOutputEqualsSorted([{ record: 'cat', timestamp: 6 }], [{ record: 'cow', timestamp: 6 }], byInitial);
    expect(() =>
      assertOutputEqualsSorted(
        [{ record: 'cat', timestamp: 6 }],
        [{ record: 'cow', timestamp: 7 }],
        byInitial,
      ),
    ).toThrow(/in the records: records \["cow"@7\], expected \["cat"@6\]/);
  });

  test('state by descriptor: keys, per-window state, window contents, windows, timers of a key', () => {
    const SEEN = new ValueStateDescriptor<number>('seen-in-window');
    const FIRES = new ValueStateDescriptor<number>('fires');
    const h = OperatorHarness.forOneInput((s: DataStream<T2>) =>
      s
        .keyBy((t) => t[0])
        .window(TumblingEventTimeWindows.of(10))
        .allowedLateness(100)
        .process<string>({
          process(k, ctx, elements, out) {
            const seen = ctx.windowState().getState(SEEN);
            seen.update((seen.value() ?? 0) + 1);
            const fires = ctx.globalState().getState(FIRES);
            fires.update((fires.value() ?? 0) + 1);
            out.collect(`${k} ${[...elements].length}`);
          },
          clear(ctx) {
            ctx.windowState().getState(SEEN).clear();
          },
        }),
    );
    // Nothing yet: reading registers nothing and reads as empty.
    expect(h.state(FIRES, 'a')).toBeUndefined();
    expect(h.keys(FIRES)).toEqual([]);
    h.processElement(['a', 1], 3).processElement(['a', 2], 4).processElement(['b', 5], 14);
    const w0 = new TimeWindow(0, 10);
    const w1 = new TimeWindow(10, 20);
    expect(h.windowContents('a', w0)).toEqual([
      ['a', 1],
      ['a', 2],
    ]);
    expect(h.windowContents('a', w1)).toBeUndefined();
    expect(h.windows('a').map(String)).toEqual([w0].map(String));
    expect(h.windows('b').map(String)).toEqual([w1].map(String));
    expect(h.timers({ key: 'a' }).map((t) => t.timestamp)).toEqual([9, 109]);
    expect(h.timers({ window: w1, domain: 'EVENT_TIME' }).map((t) => [t.key, t.timestamp])).toEqual([
      ['b', 19],
      ['b', 119],
    ]);
    h.processWatermark(9);
    expect(h.state(SEEN, 'a', w0)).toBe(1);
    expect(h.state(FIRES, 'a')).toBe(1);
    expect(h.keys(SEEN)).toEqual(['a']);
    expect(h.keys(FIRES)).toEqual(['a']);
    expect(() => h.state(SEEN, 'a')).toThrow(
      /kept per window: read it with state\(descriptor, key, window\)/,
    );
    expect(() => h.state(FIRES, 'a', w0)).toThrow(/not kept per window/);
    // Late but allowed: fires again, the window's state counts it.
    h.processElement(['a', 3], 5);
    expect(h.state(SEEN, 'a', w0)).toBe(2);
    h.processWatermark(200);
    expect(h.windows('a')).toEqual([]);
    expect(h.keys(SEEN)).toEqual([]); // cleared by the function's clear()
    expect(h.keys(FIRES)).toEqual(['a', 'b']); // kept across windows
    expect(() => OperatorHarness.forOneInput(build).windows('a')).toThrow(/is not one/);
  });

  test('window contents of merged sessions and of evicting windows', () => {
    const sessions = OperatorHarness.forOneInput((s: DataStream<T2>) =>
      s
        .keyBy((t) => t[0])
        .window(EventTimeSessionWindows.withGap(10))
        .reduce(sumT2),
    );
    sessions.processElement(['a', 1], 0).processElement(['a', 2], 15);
    expect(sessions.windows('a').map(String)).toEqual(
      [new TimeWindow(0, 10), new TimeWindow(15, 25)].map(String),
    );
    sessions.processElement(['a', 4], 8); // bridges the two sessions
    expect(sessions.windows('a').map(String)).toEqual([new TimeWindow(0, 25)].map(String));
    expect(sessions.windowContents('a', new TimeWindow(0, 25))).toEqual(['a', 7]);
    const evicting = OperatorHarness.forOneInput((s: DataStream<T2>) =>
      s
        .keyBy((t) => t[0])
        .window(GlobalWindows.create())
        .trigger(CountTrigger.of(100))
        .evictor(CountEvictor.of(2))
        .reduce(sumT2),
    );
    evicting.processElement(['a', 1], 0).processElement(['a', 2], 1);
    expect(evicting.windows('a').map(String)).toEqual([GlobalWindow.get()].map(String));
    expect(evicting.windowContents('a', GlobalWindow.get())).toEqual([
      ['a', 1],
      ['a', 2],
    ]);
  });
});
