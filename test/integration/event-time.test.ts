import {
  type Collector,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type KeyedProcessFunctionLike,
  type OnTimerContext,
  type RuntimeContext,
  StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  type ValueState,
  ValueStateDescriptor,
  WatermarkStrategy,
} from 'tidemark';
import { fromTestStream, ManualClock, TestStream } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';
import { waitFor, watched } from '../helpers/jobs.js';

interface Ev {
  key: string;
  ts: number;
}

/** Emits, per element, the watermark it saw; registers an event-time timer at ts + 10. */
class TimerProbe extends KeyedProcessFunction<string, Ev, string> {
  private count!: ValueState<number>;
  override open(ctx: RuntimeContext) {
    this.count = ctx.getState(new ValueStateDescriptor<number>('count', { defaultValue: 0 }));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, out: Collector<string>) {
    this.count.update(this.count.value()! + 1);
    ctx.timerService().registerEventTimeTimer(e.ts + 10);
    out.collect(`el ${e.key}@${e.ts} wm=${ctx.timerService().currentWatermark()}`);
  }
  override onTimer(ts: number, ctx: OnTimerContext<string>, out: Collector<string>) {
    out.collect(
      `timer ${ctx.getCurrentKey()}@${ts} ${ctx.timeDomain()} count=${this.count.value()} ts=${ctx.timestamp()}`,
    );
  }
}

describe('event-time timers', () => {
  test('fire in timestamp order, once per key and timestamp, with the key and its state in scope', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const script = TestStream.create<Ev>()
      .addElement({ key: 'a', ts: 5 }, 5)
      .addElement({ key: 'b', ts: 1 }, 1)
      .addElement({ key: 'a', ts: 5 }, 5) // same timer (a, 15): registered once
      .advanceWatermarkTo(11) // fires b@11
      .addElement({ key: 'a', ts: 20 }, 20)
      .advanceWatermarkTo(14) // nothing
      .advanceWatermarkTo(15); // fires a@15; a@30 fires at the end (final watermark)
    const out = fromTestStream(env, script)
      .keyBy((e) => e.key)
      .process(new TimerProbe())
      .setParallelism(1)
      .collect();
    out.sink.setParallelism(1);
    await env.execute();
    expect(out.values).toEqual([
      'el a@5 wm=-Infinity',
      'el b@1 wm=-Infinity',
      'el a@5 wm=-Infinity',
      'timer b@11 EVENT_TIME count=1 ts=11',
      'el a@20 wm=11',
      'timer a@15 EVENT_TIME count=3 ts=15',
      'timer a@30 EVENT_TIME count=3 ts=30',
    ]);
  });

  test('deleted timers do not fire', async () => {
    const env = new StreamExecutionEnvironment();
    const out = fromTestStream(env, TestStream.create<number>().addElement(1, 1).addElement(2, 2))
      .keyBy(() => 'k')
      .process<string>({
        processElement(v, ctx) {
          if (v === 1) ctx.timerService().registerEventTimeTimer(100);
          else ctx.timerService().deleteEventTimeTimer(100);
          ctx.timerService().registerEventTimeTimer(200);
        },
        onTimer(ts, _ctx, out) {
          out.collect(`fired ${ts}`);
        },
      })
      .collect();
    await env.execute();
    expect(out.values).toEqual(['fired 200']);
  });

  test('processing-time timers follow the manual clock', async () => {
    const clock = new ManualClock(1000);
    const env = new StreamExecutionEnvironment();
    const script = TestStream.create<string>()
      .addElement('x')
      .advanceProcessingTime(50)
      .addElement('y')
      .advanceProcessingTime(100)
      .keepOpen();
    const out = fromTestStream(env, script)
      .keyBy((v) => v)
      .process<string>({
        processElement(v, ctx, out) {
          const now = ctx.timerService().currentProcessingTime();
          ctx.timerService().registerProcessingTimeTimer(now + 60);
          out.collect(`${v} at ${now}`);
        },
        onTimer(ts, ctx, out) {
          out.collect(`timer ${ctx.getCurrentKey()} ${ts} ${ctx.timeDomain()} ts=${ctx.timestamp()}`);
        },
      })
      .collect();
    const job = watched(env.executeAsync({ clock }));
    // NOTE: the four records below (what the script leads to), however long a loaded machine takes.
    await waitFor(() => job.metrics().sinkRecords >= 4, 'four records', { job, pollMs: 1 });
    job.cancel();
    const values = (await job.result).results.get(out.id) as string[];
    expect(values).toEqual([
      'x at 1000',
      'y at 1050',
      'timer x 1060 PROCESSING_TIME ts=null',
      'timer y 1110 PROCESSING_TIME ts=null',
    ]);
  });
});

describe('watermark propagation', () => {
  test('an operator takes the minimum over its inputs and never goes back', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 2 });
    const fast = TestStream.create<string>()
      .advanceWatermarkTo(10)
      .advanceWatermarkTo(20)
      .addElement('f', 20)
      .advanceWatermarkTo(30);
    const slow = TestStream.create<string>()
      .advanceWatermarkTo(5)
      .addElement('s', 5)
      .advanceWatermarkTo(3)
      .keepOpen();
    const seen = fromTestStream(env, [fast, slow])
      .rebalance()
      .process<[string, number]>({
        processElement(v, ctx, out) {
          out.collect([v, ctx.timerService().currentWatermark()]);
        },
      })
      .setParallelism(1)
      .collect();
    const job = watched(env.executeAsync());
    await waitFor(() => job.metrics().sinkRecords >= 2, 'both records', { job, pollMs: 1 });
    job.cancel();
    const values = (await job.result).results.get(seen.id) as [string, number][];
    const wm = new Map(values);
    // The slow input (still open, at watermark 5; its 3 is dropped) holds the minimum back.
    expect(wm.get('f')).toBeLessThanOrEqual(5);
    expect(wm.get('s')).toBeLessThanOrEqual(5);
    expect(values.length).toBe(2);
  });

  test('watermarks seen downstream never decrease, for any interleaving', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      let s = seed;
      const rnd = (n: number) => {
        s = (s * 1103515245 + 12345) & 0x7fffffff;
        return s % n;
      };
      const scripts = [0, 1, 2].map((i) => {
        const t = TestStream.create<number>();
        let w = 0;
        for (let k = 0; k < 20; k++) {
          w += rnd(5) - 1; // sometimes backwards: must be dropped
          t.addElement(i, w).advanceWatermarkTo(w);
        }
        return t;
      });
      const env = new StreamExecutionEnvironment({ parallelism: 3 });
      const seen = fromTestStream(env, scripts)
        .keyBy((v) => v)
        .process<[number, number]>({
          subtask: -1,
          open(ctx: RuntimeContext) {
            this.subtask = ctx.taskInfo.subtaskIndex;
          },
          processElement(_v, ctx, out) {
            out.collect([this.subtask, ctx.timerService().currentWatermark()]);
          },
        } as KeyedProcessFunctionLike<number, number, [number, number]> & { subtask: number })
        .setParallelism(2)
        .collect();
      seen.sink.setParallelism(2);
      await env.execute({
        policy: {
          chooseTask: (ts) => rnd(ts.length),
          budget: () => 1 + rnd(3),
          chooseChannel: (_t, n) => rnd(n),
        },
      });
      expect(seen.values.length).toBe(60);
      // Values of one subtask arrive in order (one sink subtask per process subtask, chained).
      for (const subtask of [0, 1]) {
        const wms = seen.values.filter(([s]) => s === subtask).map(([, w]) => w);
        for (let i = 1; i < wms.length; i++) expect(wms[i]!).toBeGreaterThanOrEqual(wms[i - 1]!);
      }
    }
  });
});

describe('bounded out-of-orderness', () => {
  test('watermark = max timestamp - bound - 1, emitted periodically on the processing-time clock', async () => {
    const clock = new ManualClock(0);
    const env = new StreamExecutionEnvironment({ autoWatermarkIntervalMs: 100 });
    const script = TestStream.create<number>()
      .addElement(1000, 1000)
      .addElement(1500, 1500)
      .addElement(1200, 1200)
      .advanceProcessingTime(100)
      .addElement(1600, 1600)
      .advanceProcessingTime(100)
      .addElement(0, 0);
    const seen = fromTestStream(env, script, WatermarkStrategy.forBoundedOutOfOrderness<number>(300))
      .process<string>({
        processElement(v, ctx, out) {
          out.collect(`${v}:${ctx.timerService().currentWatermark()}`);
        },
      })
      .collect();
    await env.execute({ clock });
    // Before the first periodic emit: -Infinity; then 1500-300-1; then 1600-300-1.
    expect(seen.values).toEqual([
      '1000:-Infinity',
      '1500:-Infinity',
      '1200:-Infinity',
      '1600:1199',
      '0:1299',
    ]);
  });

  test('timestamps from an assigner; the final watermark fires everything at the end of a bounded input', async () => {
    const env = new StreamExecutionEnvironment({ parallelism: 3 });
    const events = Array.from({ length: 100 }, (_x, i) => ({ key: `k${i % 7}`, ts: i * 10 }));
    const out = env
      .fromArray(events, {
        parallel: true,
        watermarks: WatermarkStrategy.forBoundedOutOfOrderness<Ev>(50).withTimestampAssigner((e) => e.ts),
      })
      .keyBy((e) => e.key)
      .process(new TimerProbe())
      .collect();
    await env.execute();
    const timers = out.values.filter((v) => v.startsWith('timer'));
    expect(timers.length).toBe(100);
  });
});

describe('idleness', () => {
  function job(idle: boolean) {
    const clock = new ManualClock(0);
    const env = new StreamExecutionEnvironment({ parallelism: 2, autoWatermarkIntervalMs: 100 });
    const busy = TestStream.create<Ev>();
    for (let i = 0; i < 10; i++)
      busy.addElement({ key: `k${i % 3}`, ts: i * 100 }, i * 100).advanceProcessingTime(100);
    busy.keepOpen();
    const silent = TestStream.create<Ev>().keepOpen();
    let strategy = WatermarkStrategy.forBoundedOutOfOrderness<Ev>(0);
    if (idle) strategy = strategy.withIdleness(300);
    const fired = fromTestStream(env, [busy, silent], strategy)
      .keyBy((e) => e.key)
      .window(TumblingEventTimeWindows.of(300))
      .process<string>({
        process: (key, ctx, elements, out) =>
          out.collect(`timer ${key} [${ctx.window.start}, ${ctx.window.end}) ${[...elements].length}`),
      })
      .collect();
    return { env, clock, fired };
  }

  /** Runs until the busy split was read whole and `firings` windows fired, and 30 ms more. */
  async function run(idle: boolean, firings: number): Promise<string[]> {
    const { env, clock, fired } = job(idle);
    const client = watched(env.executeAsync({ clock }));
    await waitFor(
      () =>
        clock.now() >= 1000 &&
        client.metrics().sourceRecords >= 10 &&
        client.metrics().sinkRecords >= firings,
      `the busy split and ${firings} firings`,
      { job: client, pollMs: 1 },
    );
    // Time for a window that must not fire to do so.
    await new Promise((r) => setTimeout(r, 30));
    client.cancel();
    const result = await client.result;
    return ((result.results.get(fired.id) ?? []) as string[]).filter((v) => v.startsWith('timer'));
  }

  test('a silent source split holds event time back without idleness: no window fires', async () => {
    expect(await run(false, 0)).toEqual([]);
  });

  test('with idleness the silent split is left out and the windows fire', async () => {
    // The windows [0, 300) and [300, 600) of k0, k1 and k2 fire at least (six firings).
    const fired = await run(true, 6);
    // Elements at 0, 100, ..., 900 (keys k0..k2); the busy split's watermark passes 600 at least.
    expect(fired).toEqual(
      expect.arrayContaining([
        'timer k0 [0, 300) 1',
        'timer k1 [0, 300) 1',
        'timer k2 [0, 300) 1',
        'timer k0 [300, 600) 1',
      ]),
    );
  });
});

describe('idleness and reactivation', () => {
  test('an input that comes back aligned counts at once: the watermark does not wait for its next one', async () => {
    // Three sources into one operator, stepped in phases (a processing-time step waits until the
    // job is idle, so every phase is processed before the next begins):
    //   1: a=5, b=20, c=8 (out 5)   2: b idle   3: a idle (out 8)   4: a active, behind (8)
    //   5: c idle (no aligned input left)   6: b active again, its 20 counts (out 20)
    //   7: a record on a: the operator's watermark is 20 by then.
    const phases = (steps: Record<number, (s: TestStream<string>) => void>) => {
      const s = TestStream.create<string>();
      for (let p = 1; p <= 7; p++) {
        steps[p]?.(s);
        s.advanceProcessingTime(1);
      }
      return s.keepOpen();
    };
    const a = phases({
      1: (s) => s.advanceWatermarkTo(5),
      3: (s) => s.markIdle(),
      4: (s) => s.markActive(),
      7: (s) => s.addElement('probe', 6),
    });
    const b = phases({
      1: (s) => s.advanceWatermarkTo(20),
      2: (s) => s.markIdle(),
      6: (s) => s.markActive(),
    });
    const c = phases({ 1: (s) => s.advanceWatermarkTo(8), 5: (s) => s.markIdle() });
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    const seen = fromTestStream(env, a)
      .union(fromTestStream(env, b), fromTestStream(env, c))
      .process<[string, number]>({
        processElement(v, ctx, out) {
          out.collect([v, ctx.timerService().currentWatermark()]);
        },
      })
      .collect();
    const clock = new ManualClock(0);
    const job = watched(env.executeAsync({ clock }));
    await waitFor(() => job.metrics().sinkRecords >= 1, 'the probe', { job, pollMs: 1 });
    job.cancel();
    expect((await job.result).results.get(seen.id)).toEqual([['probe', 20]]);
  });
});

describe('watermark alignment', () => {
  async function maxLead(aligned: boolean): Promise<number> {
    const env = new StreamExecutionEnvironment({ parallelism: 1 });
    const log: [string, number][] = [];
    // Per-event watermarks (ts - 1) make the run deterministic.
    const perEvent = () =>
      WatermarkStrategy.forGenerator<number>(() => ({
        onEvent: (_e, ts, out) => out.emitWatermark(ts - 1),
        onPeriodicEmit: () => {},
      })).withTimestampAssigner((v) => v);
    const strategy = () => (aligned ? perEvent().withWatermarkAlignment('g', 50) : perEvent());
    const fast = env
      .fromGenerator((i) => i * 10, { count: 3000, watermarks: strategy() })
      .map((v) => {
        log.push(['fast', v]);
        return v;
      });
    const slow = env
      .fromGenerator((i) => i, { count: 30000, watermarks: strategy() })
      .map((v) => {
        log.push(['slow', v]);
        return v;
      });
    fast.union(slow).addSink(() => {});
    await env.execute();
    let slowTs = -1;
    let lead = 0;
    for (const [src, ts] of log) {
      if (src === 'slow') slowTs = ts;
      else if (slowTs >= 0) lead = Math.max(lead, ts - slowTs);
    }
    expect(log.length).toBe(33000);
    return lead;
  }

  test('a source ahead of its group by more than the max drift pauses', async () => {
    expect(await maxLead(false)).toBeGreaterThan(1000);
    // Paused while its watermark (ts - 1) is more than 50 ahead of the slow one (ts - 1).
    expect(await maxLead(true)).toBeLessThanOrEqual(50 + 10);
  });
});
