import { type StreamExecutionEnvironment, WatermarkStrategy } from 'tidemark';
import { SimulationFailure, simulate } from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

function wordCount(env: StreamExecutionEnvironment) {
  return env
    .fromArray(['a b c', 'b c', 'c', 'd a', 'b b b'], { parallel: true })
    .flatMap((l) => l.split(' '))
    .keyBy((w) => w)
    .map((w) => ({ w, n: 1 }))
    .keyBy((r) => r.w)
    .reduce((a, b) => ({ w: a.w, n: a.n + b.n }))
    .collect();
}

/** Event time with periodic watermarks: the clock's timing decides when timers fire. */
function timed(env: StreamExecutionEnvironment) {
  return env
    .fromGenerator((i) => ({ k: i % 3, t: i * 10 }), {
      count: 60,
      watermarks: WatermarkStrategy.forBoundedOutOfOrderness<{ k: number; t: number }>(
        5,
      ).withTimestampAssigner((e) => e.t),
    })
    .keyBy((e) => e.k)
    .process<string>({
      processElement(e, ctx) {
        ctx.timerService().registerEventTimeTimer(e.t + 100);
      },
      onTimer(ts, ctx, out) {
        out.collect(`${ctx.getCurrentKey()}@${ts} wm<=${ctx.timerService().currentWatermark() >= ts}`);
      },
    })
    .collect();
}

describe('deterministic simulation', () => {
  test('the same seed gives the same execution, to the last decision', async () => {
    for (const seed of [1, 42, 9999]) {
      const a = await simulate(timed, { seed, parallelism: 3, trace: true });
      const b = await simulate(timed, { seed, parallelism: 3, trace: true });
      expect(a.trace.length).toBeGreaterThan(20);
      expect(b.trace).toEqual(a.trace);
      expect(b.built.values).toEqual(a.built.values);
    }
  });

  test('different seeds explore different interleavings, with the same results for a correct job', async () => {
    const traces = new Set<string>();
    let expected: string[] | undefined;
    for (let seed = 1; seed <= 30; seed++) {
      const r = await simulate(wordCount, { seed, parallelism: 3, trace: true });
      traces.add(r.trace.join('\n'));
      const final = new Map<string, number>();
      for (const v of r.built.values) final.set(v.w, v.n);
      const summary = [...final].sort().map(([w, n]) => `${w}=${n}`);
      expected ??= summary;
      expect(summary).toEqual(expected);
    }
    expect(expected).toEqual(['a=2', 'b=5', 'c=3', 'd=1']);
    expect(traces.size).toBeGreaterThan(25);
  });

  test('a failing run names its seed and the call that replays it', async () => {
    const failing = (env: StreamExecutionEnvironment) =>
      env
        .fromArray([1, 2, 3], { parallel: true })
        .map((x) => {
          if (x === 3) throw new Error('three');
          return x;
        })
        .collect();
    const err = await simulate(failing, { seed: 77, parallelism: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SimulationFailure);
    expect((err as Error).message).toMatch(
      /^simulated run failed with seed 77; replay it with simulate\(build, \{ seed: 77, parallelism: 2 \}\)\n/,
    );
    expect((err as Error).message).toContain('user function threw on record 3: three');
  });
});

/** The real clock: `new Date()` is not patched by the simulation, `Date.now()` is. */
// biome-ignore lint/complexity/useDateNow: deliberately not Date.now(), which the simulation replaces
const realNow = (): number => new Date().getTime();

describe('the simulation owns the wall clock', () => {
  /** Reads the clocks in user code: Date.now(), performance.now() and the job's processing time. */
  const readClocks = (env: StreamExecutionEnvironment) =>
    env
      .fromArray([1, 2, 3, 4, 5, 6])
      .keyBy((x) => x % 2)
      .process<[number, number, number]>({
        processElement(_x, ctx, out) {
          out.collect([Date.now(), performance.now(), ctx.timerService().currentProcessingTime()]);
        },
      })
      .collect();

  test('Date.now() and performance.now() follow the simulated clock while the job runs, and only then', async () => {
    const realPerformanceNow = performance.now;
    const r = await simulate(readClocks, {
      seed: 3,
      clockStartMs: 1_700_000_000_000,
      clockJumpSizesMs: [60_000],
      clockJumpProbability: 0.5,
    });
    for (const [date, perf, processing] of r.built.values) {
      expect(date).toBe(processing);
      expect(perf).toBe(processing - 1_700_000_000_000);
    }
    expect(new Set(r.built.values.map((v) => v[0])).size).toBeGreaterThan(1); // the clock jumped
    // Restored: the real clocks, the same functions as before.
    expect(Math.abs(Date.now() - realNow())).toBeLessThan(1000);
    expect(performance.now).toBe(realPerformanceNow);
    expect(Object.hasOwn(performance, 'now')).toBe(false);
    // A function captured during the run answers with the real clock afterwards.
    const captured = await simulate(
      (env) =>
        env
          .fromArray([0])
          .map(() => Date.now)
          .collect(),
      { seed: 1 },
    );
    expect(Math.abs(captured.built.values[0]!() - Date.now())).toBeLessThan(1000);
  });

  test('restored after a failed run; left alone with wallClock: false', async () => {
    const failing = (env: StreamExecutionEnvironment) =>
      env
        .fromArray([1])
        .map(() => {
          throw new Error('boom');
        })
        .collect();
    await expect(simulate(failing, { seed: 1 })).rejects.toThrow(/boom/);
    expect(Math.abs(Date.now() - realNow())).toBeLessThan(1000);
    const r = await simulate(readClocks, { seed: 3, wallClock: false });
    for (const [date, , processing] of r.built.values) {
      expect(processing).toBeLessThan(1_000_000);
      expect(date).toBeGreaterThan(1_600_000_000_000);
    }
  });

  test('simulations run at the same time each see their own clock', async () => {
    const [a, b] = await Promise.all([
      simulate(readClocks, { seed: 1, parallelism: 2, clockStartMs: 1_000_000 }),
      simulate(readClocks, { seed: 2, parallelism: 2, clockStartMs: 9_000_000 }),
    ]);
    for (const [date, , processing] of a!.built.values) expect(date).toBe(processing);
    for (const [date, , processing] of b!.built.values) expect(date).toBe(processing);
    expect(Math.abs(Date.now() - realNow())).toBeLessThan(1000);
  });
});
