// Arbitraries that find boundaries: given a job's time constants, eventStreams and lateStreams
// hit equal timestamps, distances equal to a constant ±1, window edges ±1 and late-by-one
// records. Each planted bug below hides at such a boundary: the boundary-biased arbitrary catches
// it with fast-check's default 100 runs and shrinks it to a few events, the uniform one of the
// first edition (`boundaryBias: 0`) seldom does. The detection rates over seeds 1..SEEDS are
// measured and printed.
import fc from 'fast-check';
import {
  type Collector,
  type DataStream,
  type KeyedProcessContext,
  KeyedProcessFunction,
  type ListState,
  ListStateDescriptor,
  type MapState,
  MapStateDescriptor,
  type OnTimerContext,
  type RuntimeContext,
  StreamExecutionEnvironment,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import {
  assertSameResults,
  eventStreams,
  fromTestStream,
  type LateStream,
  lateStreams,
  OperatorHarness,
  TestStream,
  type TimedEvent,
} from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

type Ev = TimedEvent<string, number>;

const SEEDS = 10;

/**
 * Runs a keyed process function on events in arrival order, each followed by the watermark a
 * bounded-out-of-orderness generator gives (largest timestamp - bound - 1), then the final one.
 */
function run<OUT>(fn: () => KeyedProcessFunction<string, Ev, OUT>, events: readonly Ev[], bound = 0): OUT[] {
  const h = OperatorHarness.forOneInput((s: DataStream<Ev>) => s.keyBy((e) => e.key).process(fn()));
  let max = Number.NEGATIVE_INFINITY;
  for (const e of events) {
    h.processElement(e, e.timestamp);
    if (e.timestamp > max) {
      max = e.timestamp;
      h.processWatermark(max - bound - 1);
    }
  }
  h.processWatermark(Number.POSITIVE_INFINITY);
  return h.output();
}

/** Checks a property with fast-check's defaults (100 runs) under `seed`; the shrunk counterexample if it failed. */
function check<T>(arb: fc.Arbitrary<T>, predicate: (v: T) => void | Promise<void>, seed: number) {
  return fc.check(
    fc.asyncProperty(arb, async (v) => predicate(v)),
    { seed },
  );
}

/** How many of seeds 1..SEEDS find a failure, and the shrunk counterexamples of those that do. */
async function detection<T>(arb: fc.Arbitrary<T>, predicate: (v: T) => void | Promise<void>) {
  const found: T[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = await check(arb, predicate, seed);
    if (r.failed) found.push(r.counterexample![0]);
  }
  return found;
}

/** Prints a measurement for the closing note of the suite. */
function report(bug: string, biased: number, uniform: number, sizes: number[]) {
  console.log(
    `${bug}: caught under ${biased}/${SEEDS} seeds with boundaries, ${uniform}/${SEEDS} uniform; counterexample sizes ${sizes.join(', ')}`,
  );
}

// ---- planted bug 1: a user's own tumbling window, its timer logic `<` instead of `<=` ----

const SIZE = 60_000;

/** Counts per key and 60 s window by hand: buffers timestamps, a timer at each window's last ms. */
class HandTumblingCount extends KeyedProcessFunction<string, Ev, string> {
  private buffer!: ListState<number>;
  constructor(private readonly strict: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.buffer = ctx.getListState(new ListStateDescriptor<number>('buffer'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>) {
    this.buffer.add(e.timestamp);
    ctx.timerService().registerEventTimeTimer(Math.floor(e.timestamp / SIZE) * SIZE + SIZE - 1);
  }
  override onTimer(t: number, ctx: OnTimerContext<string>, out: Collector<string>) {
    // BUG (strict): an element at the window's last millisecond is left for the next window.
    const due = (ts: number) => (this.strict ? ts < t : ts <= t);
    const all = this.buffer.get();
    const n = all.filter(due).length;
    if (n > 0) out.collect(`${ctx.getCurrentKey()} [${t + 1 - SIZE}, ${t + 1}) ${n}`);
    this.buffer.update(all.filter((ts) => !due(ts)));
  }
}

/** What a tumbling window count gives (the specification). */
function tumblingCounts(events: readonly Ev[]): string[] {
  const n = new Map<string, number>();
  for (const e of events) {
    const start = Math.floor(e.timestamp / SIZE) * SIZE;
    const k = `${e.key} [${start}, ${start + SIZE}) `;
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].map(([k, c]) => `${k}${c}`);
}

// ---- planted bug 2: a user's own sessions, the gap off by one ----

const GAP = 30_000;

/** Sessions per key by hand: an event within the gap of the last one extends the session. */
class HandSessions extends KeyedProcessFunction<string, Ev, string> {
  private session!: ValueState<{ start: number; last: number; n: number }>;
  constructor(private readonly offByOne: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.session = ctx.getState(new ValueStateDescriptor('session'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, out: Collector<string>) {
    const s = this.session.value();
    const timers = ctx.timerService();
    if (s !== undefined) timers.deleteEventTimeTimer(s.last + GAP - 1);
    // BUG (offByOne): sessions that touch ([a, a + gap) and [a + gap, ...)) merge; this splits them.
    const joins =
      s !== undefined && (this.offByOne ? e.timestamp - s.last < GAP : e.timestamp - s.last <= GAP);
    let next = { start: e.timestamp, last: e.timestamp, n: 1 };
    if (joins) next = { start: s.start, last: Math.max(s.last, e.timestamp), n: s.n + 1 };
    else if (s !== undefined) out.collect(`${ctx.getCurrentKey()} [${s.start}, ${s.last + GAP}) ${s.n}`);
    this.session.update(next);
    timers.registerEventTimeTimer(next.last + GAP - 1);
  }
  override onTimer(t: number, ctx: OnTimerContext<string>, out: Collector<string>) {
    const s = this.session.value();
    if (s === undefined || s.last + GAP - 1 !== t) return;
    out.collect(`${ctx.getCurrentKey()} [${s.start}, ${s.last + GAP}) ${s.n}`);
    this.session.clear();
  }
}

/** What event-time session windows give (touching windows merge). */
function sessions(events: readonly Ev[]): string[] {
  const byKey = new Map<string, number[]>();
  for (const e of events) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e.timestamp]);
  const out: string[] = [];
  for (const [k, ts] of byKey) {
    ts.sort((a, b) => a - b);
    let start = ts[0]!;
    let n = 0;
    for (let i = 0; i < ts.length; i++) {
      n++;
      if (i === ts.length - 1 || ts[i + 1]! - ts[i]! > GAP) {
        out.push(`${k} [${start}, ${ts[i]! + GAP}) ${n}`);
        if (i < ts.length - 1) start = ts[i + 1]!;
        n = 0;
      }
    }
  }
  return out;
}

// ---- planted bug 3: the first event per key and window, ties broken wrongly ----

/** Per key and 60 s window, the earliest event; on equal timestamps, the smallest value. */
class FirstPerWindow extends KeyedProcessFunction<string, Ev, string> {
  private best!: MapState<number, Ev>;
  constructor(private readonly ignoresTies: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.best = ctx.getMapState(new MapStateDescriptor<number, Ev>('best'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>) {
    const start = Math.floor(e.timestamp / SIZE) * SIZE;
    const b = this.best.get(start);
    // BUG (ignoresTies): on equal timestamps the first to arrive wins, whatever its value.
    const better =
      b === undefined ||
      e.timestamp < b.timestamp ||
      (!this.ignoresTies && e.timestamp === b.timestamp && e.value < b.value);
    if (better) this.best.put(start, e);
    ctx.timerService().registerEventTimeTimer(start + SIZE - 1);
  }
  override onTimer(t: number, ctx: OnTimerContext<string>, out: Collector<string>) {
    const start = t + 1 - SIZE;
    const b = this.best.get(start)!;
    out.collect(`${ctx.getCurrentKey()} [${start}) ${b.value}@${b.timestamp}`);
    this.best.remove(start);
  }
}

function firstPerWindow(events: readonly Ev[]): string[] {
  const best = new Map<string, Ev>();
  for (const e of events) {
    const start = Math.floor(e.timestamp / SIZE) * SIZE;
    const k = `${e.key} [${start})`;
    const b = best.get(k);
    if (b === undefined || e.timestamp < b.timestamp || (e.timestamp === b.timestamp && e.value < b.value))
      best.set(k, e);
  }
  return [...best].map(([k, e]) => `${k} ${e.value}@${e.timestamp}`);
}

// ---- planted bug 4: a user's own allowed lateness, off by one ----

const ALLOWED_LATENESS = 1_000;

/** Drops records later than the allowed lateness (as a window operator would), by hand. */
class DropTooLate extends KeyedProcessFunction<string, Ev, Ev> {
  constructor(private readonly offByOne: boolean) {
    super();
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, out: Collector<Ev>) {
    const wm = ctx.timerService().currentWatermark();
    // BUG (offByOne): a record exactly `allowedLateness` behind the watermark is too late already.
    const tooLate = this.offByOne
      ? e.timestamp + ALLOWED_LATENESS < wm
      : e.timestamp + ALLOWED_LATENESS <= wm;
    if (!tooLate) out.collect(e);
  }
}

/** The records that are not later than allowed, from the steps. */
function notTooLate(s: LateStream<string, number>): Ev[] {
  let wm = Number.NEGATIVE_INFINITY;
  const out: Ev[] = [];
  for (const step of s.steps) {
    if ('watermark' in step) wm = Math.max(wm, step.watermark);
    else if (step.event.timestamp + ALLOWED_LATENESS > wm) out.push(step.event);
  }
  return out;
}

/** The late-stream job: the steps as a TestStream in one call, through a real job. */
async function dropTooLate(s: LateStream<string, number>, offByOne: boolean): Promise<Ev[]> {
  const env = new StreamExecutionEnvironment();
  const out = fromTestStream(env, s.toTestStream())
    .keyBy((e) => e.key)
    .process(new DropTooLate(offByOne))
    .collect();
  await env.execute();
  return out.values;
}

// ---- the properties ----

const cases = [
  {
    bug: 'timer `<` instead of `<=` (60 s tumbling window)',
    arb: (boundaryBias: number) => eventStreams({ windowSizeMs: SIZE, boundaryBias }),
    property: (strict: boolean) => (events: Ev[]) =>
      assertSameResults(
        'counts per window',
        tumblingCounts(events),
        run(() => new HandTumblingCount(strict), events),
      ),
    size: (events: Ev[]) => events.length,
  },
  {
    bug: 'session gap off by one (30 s gap)',
    arb: (boundaryBias: number) => eventStreams({ gapMs: GAP, maxGapMs: 40_000, boundaryBias }),
    property: (offByOne: boolean) => (events: Ev[]) =>
      assertSameResults(
        'sessions',
        sessions(events),
        run(() => new HandSessions(offByOne), events),
      ),
    size: (events: Ev[]) => events.length,
  },
  {
    bug: 'tie broken by arrival, not by value (60 s window)',
    arb: (boundaryBias: number) => eventStreams({ windowSizeMs: SIZE, boundaryBias }),
    property: (ignoresTies: boolean) => (events: Ev[]) =>
      assertSameResults(
        'first per window',
        firstPerWindow(events),
        run(() => new FirstPerWindow(ignoresTies), events),
      ),
    size: (events: Ev[]) => events.length,
  },
] as const;

describe('boundary-biased arbitraries catch bugs the uniform ones miss', () => {
  for (const c of cases)
    test(c.bug, async () => {
      // The correct function passes.
      const ok = await check(c.arb(0.5), c.property(false), 1);
      expect(ok.failed).toBe(false);
      const biased = await detection(c.arb(0.5), c.property(true));
      const uniform = await detection(c.arb(0), c.property(true));
      const sizes = biased.map(c.size);
      report(c.bug, biased.length, uniform.length, sizes);
      expect(biased.length).toBe(SEEDS);
      expect(uniform.length).toBeLessThanOrEqual(SEEDS / 2);
      for (const n of sizes) expect(n).toBeLessThanOrEqual(3);
    });

  test('allowed lateness off by one (lateStreams; also through toTestStream() and a real job)', async () => {
    const arb = (boundaryBias: number) =>
      lateStreams({ allowedLatenessMs: ALLOWED_LATENESS, lateProbability: 0.3, boundaryBias, maxLength: 20 });
    const onHarness = (offByOne: boolean) => (s: LateStream<string, number>) => {
      const h = OperatorHarness.forOneInput((x: DataStream<Ev>) =>
        x.keyBy((e) => e.key).process(new DropTooLate(offByOne)),
      );
      for (const step of s.steps)
        if ('event' in step) h.processElement(step.event, step.event.timestamp);
        else h.processWatermark(step.watermark);
      assertSameResults('records kept', notTooLate(s), h.output());
    };
    const biased = await detection(arb(0.5), onHarness(true));
    const uniform = await detection(arb(0), onHarness(true));
    const sizes = biased.map((s) => s.steps.filter((x) => 'event' in x).length);
    report('allowed lateness off by one (1 s)', biased.length, uniform.length, sizes);
    expect(biased.length).toBe(SEEDS);
    expect(uniform.length).toBeLessThanOrEqual(SEEDS / 2);
    for (const n of sizes) expect(n).toBeLessThanOrEqual(3);
    // As a user would write it: the steps as a TestStream in one call, in a real job.
    const inJob = (offByOne: boolean) => async (s: LateStream<string, number>) =>
      assertSameResults('records kept', notTooLate(s), await dropTooLate(s, offByOne));
    expect((await check(arb(0.5), inJob(false), 1)).failed).toBe(false);
    const found = await check(arb(0.5), inJob(true), 1);
    expect(found.failed).toBe(true);
    // A readable counterexample: an event, a watermark, and one exactly `allowedLateness` behind it.
    const ce = found.counterexample![0];
    expect(fc.stringify(ce)).toMatch(/^k\d:-?\d+@-?\d+ WM\(-?\d+\) k\d:-?\d+@-?\d+$/);
    const [, wm, last] = ce.steps;
    expect(wm !== undefined && 'watermark' in wm && last !== undefined && 'event' in last).toBe(true);
    expect((last as { event: Ev }).event.timestamp + ALLOWED_LATENESS).toBe(
      (wm as { watermark: number }).watermark,
    );
  });
});

describe('the arbitraries hold their promises at the boundaries', () => {
  test('event streams hit ties, constant distances ±1, window edges ±1, and the disorder bound', () => {
    const [events] = fc.sample(
      eventStreams({ windowSizeMs: 1000, gapMs: 300, minLength: 200, maxLength: 200 }),
      {
        seed: 7,
        numRuns: 1,
      },
    );
    const ts = events!.map((e) => e.timestamp);
    const gaps = ts.slice(1).map((t, i) => t - ts[i]!);
    expect(gaps.filter((g) => g === 0).length).toBeGreaterThan(5);
    for (const c of [299, 300, 301]) expect(gaps).toContain(c);
    for (const r of [999, 0, 1]) expect(ts.some((t) => t > 0 && t % 1000 === r)).toBe(true);
    // With disorder: never beyond the bound, often exactly at it or one inside.
    const [disordered] = fc.sample(eventStreams({ maxDisorderMs: 50, minLength: 200, maxLength: 200 }), {
      seed: 7,
      numRuns: 1,
    });
    let max = Number.NEGATIVE_INFINITY;
    const lags = new Map<number, number>();
    for (const e of disordered!) {
      expect(e.timestamp).toBeGreaterThanOrEqual(max - 50);
      lags.set(max - e.timestamp, (lags.get(max - e.timestamp) ?? 0) + 1);
      max = Math.max(max, e.timestamp);
    }
    expect(lags.get(50)).toBeGreaterThan(5);
    expect(lags.get(49)).toBeGreaterThan(5);
  });

  test('late streams hit the watermark and the allowed lateness ±1; toTestStream replays the steps', () => {
    const samples = fc.sample(lateStreams({ allowedLatenessMs: 1000, lateProbability: 0.5, minLength: 20 }), {
      seed: 3,
      numRuns: 30,
    });
    const offsets = new Set<number>();
    for (const s of samples) {
      let wm = Number.NEGATIVE_INFINITY;
      const late: Ev[] = [];
      for (const step of s.steps) {
        if ('watermark' in step) wm = step.watermark;
        else {
          if (Number.isFinite(wm)) offsets.add(step.event.timestamp - wm);
          if (step.event.timestamp <= wm) late.push(step.event);
        }
      }
      expect(late).toEqual(s.late);
      const script = s.toTestStream();
      expect(script).toBeInstanceOf(TestStream);
      expect(script.steps).toEqual(
        s.steps.map((x) =>
          'event' in x
            ? { kind: 'element', value: x.event, timestamp: x.event.timestamp }
            : { kind: 'watermark', watermark: x.watermark },
        ),
      );
      expect(TestStream.fromLateStream(s).steps).toEqual(script.steps);
    }
    for (const o of [-1, 0, 1, -1001, -1000, -999]) expect(offsets).toContain(o);
  });

  test('boundaryBias 0 gives the uniform streams of the first edition', () => {
    const [events] = fc.sample(
      eventStreams({ windowSizeMs: 1000, boundaryBias: 0, minLength: 100, maxLength: 100 }),
      {
        seed: 1,
        numRuns: 1,
      },
    );
    const ts = events!.map((e) => e.timestamp);
    expect(ts.slice(1).filter((t, i) => t === ts[i]).length).toBeLessThan(5);
    expect(() => fc.sample(eventStreams({ boundaryBias: 2 }), 1)).toThrow(/boundaryBias must be in \[0, 1\]/);
    expect(() => fc.sample(eventStreams({ windowSizeMs: 0.5 }), 1)).toThrow(/whole milliseconds/);
  });
});
