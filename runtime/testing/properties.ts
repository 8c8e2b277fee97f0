/**
 * Property-testing helpers on fast-check: arbitraries for event streams (bounded disorder, late
 * records, skewed keys, idle periods) and checks that a job's output does not depend on
 * parallelism, on the interleaving of its channels, on the order of its input within the watermark
 * bound, or on rescaling; and a per-key sequence checker. A failing check throws an error with a
 * readable diff of the expected and actual results, so it works with `fc.assert` and with
 * `@fast-check/vitest` alike.
 */
import fc from 'fast-check';
import type { CollectedStream, DataStream } from '../../operators/data-stream.js';
import { InvalidArgumentError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import { StreamExecutionEnvironment } from '../environment.js';
import { OperatorHarness } from './harness.js';
import { SeededRandom } from './random.js';
import { type SimulationOptions, simulate } from './simulation.js';
import { fromTestStream, TestStream } from './test-stream.js';

/** An event with a key, a value and an event timestamp. */
export interface TimedEvent<K = string, V = number> {
  key: K;
  value: V;
  timestamp: number;
}

/**
 * A job's time constants, for arbitraries that look for boundaries: window sizes, slides, session
 * gaps, allowed lateness, the out-of-orderness bound. Streams are biased toward distances equal to
 * each constant and ±1, toward window edges (multiples of each constant, and ±1) and toward equal
 * timestamps, where off-by-one bugs and ties hide.
 */
export interface TimeConstants {
  /** Any constants of the job, in ms (e.g. `[windowSize, gap]`). */
  timeConstants?: readonly number[];
  windowSizeMs?: number;
  slideMs?: number;
  gapMs?: number;
  allowedLatenessMs?: number;
  /**
   * Chance that a step between timestamps (or an arrival delay, or a late record's time) is a
   * boundary case — a tie, a constant ±1, a window edge ±1 — rather than uniform (default 0.5; 0
   * gives the uniform streams of the first edition).
   */
  boundaryBias?: number;
}

/** Options of {@link eventStreams}. */
export interface EventStreamOptions<K, V> extends TimeConstants {
  /** Keys (default: 'k0' .. 'k7'). */
  keys?: fc.Arbitrary<K>;
  /** Values (default: small integers). */
  values?: fc.Arbitrary<V>;
  minLength?: number;
  /** Default 60. */
  maxLength?: number;
  /** First timestamp (default 0). */
  startMs?: number;
  /** Largest uniform step between consecutive timestamps (default 1000). */
  maxGapMs?: number;
  /** Records arrive at most this far behind the largest timestamp seen (default 0: in order). */
  maxDisorderMs?: number;
  /** Chance that an event has the hot key (the first key generated); default 0: no skew. */
  hotKeyProbability?: number;
  /** Chance of an idle period before an event (a time jump); default 0. */
  idleProbability?: number;
  /** Length of an idle period (default 60 s). */
  idleMs?: number;
}

/** The positive, finite, distinct constants of `c` (with the disorder bound), sorted. */
function constantsOf(c: TimeConstants & { maxDisorderMs?: number }): number[] {
  const all = [
    ...(c.timeConstants ?? []),
    c.windowSizeMs,
    c.slideMs,
    c.gapMs,
    c.allowedLatenessMs,
    c.maxDisorderMs,
  ].filter((x): x is number => x !== undefined && Number.isFinite(x) && x > 0);
  for (const x of all)
    if (!Number.isInteger(x))
      throw new InvalidArgumentError(`time constants are whole milliseconds, got ${x}`);
  return [...new Set(all)].sort((a, b) => a - b);
}

/** Weight of a boundary case against a uniform one (fast-check weights are integers). */
function weights(bias: number): { uniform: number; boundary: number } {
  if (!(bias >= 0 && bias <= 1))
    throw new InvalidArgumentError(`boundaryBias must be in [0, 1], got ${bias}`);
  return { uniform: Math.round((1 - bias) * 100), boundary: Math.round(bias * 100) };
}

/**
 * How far the next timestamp is from the previous one: uniform, a tie, a constant ±1, or the next
 * edge (multiple) of a constant ±1.
 */
type Step =
  | { kind: 'uniform'; ms: number }
  | { kind: 'tie' }
  | { kind: 'distance'; constant: number; delta: -1 | 0 | 1 }
  | { kind: 'edge'; constant: number; delta: -1 | 0 | 1 };

const DELTAS = [0, -1, 1] as const;

function stepArbitrary(maxGap: number, constants: readonly number[], bias: number): fc.Arbitrary<Step> {
  const uniform = fc.integer({ min: 0, max: maxGap }).map((ms): Step => ({ kind: 'uniform', ms }));
  const w = weights(bias);
  if (w.boundary === 0) return uniform;
  const boundary: fc.WeightedArbitrary<Step>[] = [
    { arbitrary: fc.constant<Step>({ kind: 'tie' }), weight: 2 },
  ];
  if (constants.length > 0) {
    const pick = fc.record({ constant: fc.constantFrom(...constants), delta: fc.constantFrom(...DELTAS) });
    boundary.push(
      { arbitrary: pick.map((p): Step => ({ kind: 'distance', ...p })), weight: 3 },
      { arbitrary: pick.map((p): Step => ({ kind: 'edge', ...p })), weight: 3 },
    );
  } else
    boundary.push({ arbitrary: fc.constant<Step>({ kind: 'distance', constant: 1, delta: 0 }), weight: 1 });
  const total = boundary.reduce((n, b) => n + b.weight, 0);
  return fc.oneof(
    { arbitrary: uniform, weight: w.uniform * total },
    ...boundary.map((b) => ({ arbitrary: b.arbitrary, weight: b.weight * w.boundary })),
  );
}

/** The timestamp after `t` that `step` gives (never before `t`). */
function applyStep(t: number, step: Step): number {
  switch (step.kind) {
    case 'uniform':
      return t + step.ms;
    case 'tie':
      return t;
    case 'distance':
      return t + Math.max(0, step.constant + step.delta);
    case 'edge': {
      const next = (Math.floor(t / step.constant) + 1) * step.constant + step.delta;
      return Math.max(t, next);
    }
  }
}

/**
 * When an event arrives: `ms` after its time (uniform within the bound), or exactly `lag` behind
 * the largest timestamp before it (the bound, or one less: the latest an event may come and not
 * be late for `forBoundedOutOfOrderness(bound)`).
 */
interface Delay {
  ms: number;
  lag?: number;
}

function delayArbitrary(bound: number, bias: number): fc.Arbitrary<Delay> {
  const uniform = fc.integer({ min: 0, max: bound }).map((ms): Delay => ({ ms }));
  const w = weights(bias);
  if (w.boundary === 0 || bound === 0) return uniform;
  return fc.oneof(
    { arbitrary: uniform, weight: w.uniform },
    {
      arbitrary: fc.constantFrom(bound, bound - 1).map((lag): Delay => ({ ms: lag, lag })),
      weight: w.boundary,
    },
  );
}

/** Renders events compactly for counterexamples: `k0:5@1000 k1:7@1200 ...`. */
export function formatEvents<K, V>(events: readonly TimedEvent<K, V>[]): string {
  return (
    events.map((e) => `${String(e.key)}:${JSON.stringify(e.value)}@${e.timestamp}`).join(' ') || '(none)'
  );
}

function printable<T extends object>(value: T, render: (v: T) => string): T {
  return Object.defineProperty(value, fc.toStringMethod, { value: () => render(value), enumerable: false });
}

/**
 * Event streams in arrival order whose disorder stays within `maxDisorderMs`: every event's
 * timestamp is at least the largest earlier timestamp minus the bound, so with
 * `forBoundedOutOfOrderness(maxDisorderMs)` no event is late. Give it the job's time constants
 * (`windowSizeMs`, `slideMs`, `gapMs`, `allowedLatenessMs`, or `timeConstants: [...]`) and about
 * half the steps hit a boundary: equal timestamps, distances equal to a constant ±1, window edges
 * ±1, and (with `maxDisorderMs`) events exactly the bound, or one less, behind the largest
 * timestamp before them.
 */
export function eventStreams<K = string, V = number>(
  options: EventStreamOptions<K, V> = {},
): fc.Arbitrary<TimedEvent<K, V>[]> {
  const keys =
    options.keys ??
    (fc.constantFrom('k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7') as unknown as fc.Arbitrary<K>);
  const values = options.values ?? (fc.integer({ min: -100, max: 100 }) as unknown as fc.Arbitrary<V>);
  const maxGap = options.maxGapMs ?? 1000;
  const disorder = options.maxDisorderMs ?? 0;
  const hot = options.hotKeyProbability ?? 0;
  const idle = options.idleProbability ?? 0;
  const idleMs = options.idleMs ?? 60_000;
  const bias = options.boundaryBias ?? 0.5;
  const item = fc.record({
    key: keys,
    hot: fc.double({ min: 0, max: 1, noNaN: true }),
    value: values,
    step: stepArbitrary(maxGap, constantsOf(options), bias),
    idle: fc.double({ min: 0, max: 1, noNaN: true }),
    delay: delayArbitrary(disorder, bias),
  });
  return fc
    .array(item, { minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 60 })
    .map((items) => {
      const hotKey = items[0]?.key;
      let t = options.startMs ?? 0;
      const timed = items.map((it, i) => {
        t = applyStep(t, it.step) + (it.idle < idle ? idleMs : 0);
        return {
          event: {
            key: it.hot < hot && hotKey !== undefined ? hotKey : it.key,
            value: it.value,
            timestamp: t,
          },
          order: t + it.delay.ms,
          lag: it.delay.lag,
          i,
        };
      });
      // Arrival order: by timestamp plus a delay within the bound (stable for ties).
      timed.sort((a, b) => a.order - b.order || a.i - b.i);
      // An event with a lag comes exactly that far behind the largest timestamp before it.
      let max = Number.NEGATIVE_INFINITY;
      for (const x of timed) {
        if (x.lag !== undefined && max > Number.NEGATIVE_INFINITY) x.event.timestamp = max - x.lag;
        if (x.event.timestamp > max) max = x.event.timestamp;
      }
      return printable(
        timed.map((x) => x.event),
        formatEvents,
      );
    });
}

/**
 * A permutation of `events` that keeps disorder within `boundMs` (an event never arrives more
 * than `boundMs` behind the largest timestamp before it), for order-invariance checks.
 */
export function boundedPermutations<K, V>(
  events: readonly TimedEvent<K, V>[],
  boundMs: number,
): fc.Arbitrary<TimedEvent<K, V>[]> {
  const sorted = [...events].sort((a, b) => a.timestamp - b.timestamp);
  return fc
    .array(fc.integer({ min: 0, max: boundMs }), { minLength: sorted.length, maxLength: sorted.length })
    .map((delays) =>
      printable(
        sorted
          .map((e, i) => ({ e, order: e.timestamp + delays[i]!, i }))
          .sort((a, b) => a.order - b.order || a.i - b.i)
          .map((x) => x.e),
        formatEvents,
      ),
    );
}

/** The elements and watermarks of a scripted stream with late records. */
export interface LateStream<K, V> {
  /** Steps in order: events, and watermarks that may leave later events behind (late). */
  steps: ({ event: TimedEvent<K, V> } | { watermark: number })[];
  /** The events whose timestamp is at or below a watermark emitted before them. */
  late: TimedEvent<K, V>[];
  /** The steps as a TestStream: elements with their timestamps, and the watermarks. */
  toTestStream(): TestStream<TimedEvent<K, V>>;
}

/** Options of {@link lateStreams}. */
export interface LateStreamOptions<K, V> extends EventStreamOptions<K, V> {
  /** Chance that an event after a watermark is moved back to it or behind it (default 0.2). */
  lateProbability?: number;
  /** How far behind the watermark a late event may be, uniformly (default 5000). */
  maxLatenessMs?: number;
}

/** Where a late (or nearly late) record goes, relative to the watermark `w` before it. */
type Lateness =
  | { kind: 'uniform'; back: number }
  | { kind: 'atWatermark'; delta: -1 | 0 | 1 }
  | { kind: 'allowedLateness'; constant: number; delta: -1 | 0 | 1 };

function latenessArbitrary(
  maxLate: number,
  allowed: readonly number[],
  bias: number,
): fc.Arbitrary<Lateness> {
  const uniform = fc.integer({ min: 1, max: maxLate }).map((back): Lateness => ({ kind: 'uniform', back }));
  const w = weights(bias);
  if (w.boundary === 0) return uniform;
  const delta = fc.constantFrom(...DELTAS);
  const boundary: fc.WeightedArbitrary<Lateness>[] = [
    { arbitrary: delta.map((d): Lateness => ({ kind: 'atWatermark', delta: d })), weight: 1 },
  ];
  if (allowed.length > 0)
    boundary.push({
      arbitrary: fc
        .record({ constant: fc.constantFrom(...allowed), delta })
        .map((p): Lateness => ({ kind: 'allowedLateness', ...p })),
      weight: 2,
    });
  const total = boundary.reduce((n, b) => n + b.weight, 0);
  return fc.oneof(
    { arbitrary: uniform, weight: w.uniform * total },
    ...boundary.map((b) => ({ arbitrary: b.arbitrary, weight: b.weight * w.boundary })),
  );
}

function latenessTimestamp(watermark: number, l: Lateness): number {
  switch (l.kind) {
    case 'uniform':
      return watermark - l.back + 1;
    case 'atWatermark':
      return watermark + l.delta;
    case 'allowedLateness':
      return watermark - l.constant + l.delta;
  }
}

/** Renders a late stream's steps: `k0:5@1000 WM(1999) k1:7@1500 ...`. */
function formatLateStream<K, V>(s: Pick<LateStream<K, V>, 'steps'>): string {
  return s.steps
    .map((x) =>
      'event' in x
        ? `${String(x.event.key)}:${JSON.stringify(x.event.value)}@${x.event.timestamp}`
        : `WM(${x.watermark})`,
    )
    .join(' ');
}

/**
 * Streams with explicit watermarks and late records: a watermark after some events, then events
 * that may be older than it (late, with probability `lateProbability`). With the job's time
 * constants, late records are biased toward the boundaries: exactly at the watermark (late) or
 * one after it (not late), and at `watermark - allowedLateness` ±1 (for each `allowedLatenessMs`
 * or time constant); the events themselves as {@link eventStreams} makes them. `toTestStream()`
 * turns one into a TestStream.
 */
export function lateStreams<K = string, V = number>(
  options: LateStreamOptions<K, V> = {},
): fc.Arbitrary<LateStream<K, V>> {
  const lateP = options.lateProbability ?? 0.2;
  const maxLate = options.maxLatenessMs ?? 5_000;
  const bias = options.boundaryBias ?? 0.5;
  const allowed = constantsOf({
    ...(options.allowedLatenessMs === undefined ? {} : { allowedLatenessMs: options.allowedLatenessMs }),
    ...(options.timeConstants === undefined ? {} : { timeConstants: options.timeConstants }),
  });
  return fc
    .tuple(
      eventStreams<K, V>({ ...options, maxDisorderMs: 0 }),
      fc.array(
        fc.tuple(
          fc.double({ min: 0, max: 1, noNaN: true }),
          latenessArbitrary(maxLate, allowed, bias),
          fc.boolean(),
        ),
        { maxLength: 200 },
      ),
    )
    .map(([events, choices]) => {
      const steps: LateStream<K, V>['steps'] = [];
      const late: TimedEvent<K, V>[] = [];
      let watermark = Number.NEGATIVE_INFINITY;
      events.forEach((e, i) => {
        const [p, lateness, emitWatermark] = choices[i] ?? [1, { kind: 'uniform', back: 1 }, false];
        let event = e;
        if (p < lateP && Number.isFinite(watermark)) {
          event = { ...e, timestamp: latenessTimestamp(watermark, lateness) };
          if (event.timestamp <= watermark) late.push(event);
        }
        steps.push({ event });
        if (emitWatermark && e.timestamp - 1 > watermark) {
          watermark = e.timestamp - 1;
          steps.push({ watermark });
        }
      });
      const stream: LateStream<K, V> = { steps, late, toTestStream: () => TestStream.fromLateStream(stream) };
      Object.defineProperty(stream, 'toTestStream', { enumerable: false });
      return printable(stream, formatLateStream);
    });
}

// ---- checks ----

/** Turns a result into comparable lines: sorted JSON (bigints as strings, object keys sorted). */
export function canonical(values: readonly unknown[]): string[] {
  return values
    .map((v) =>
      JSON.stringify(v, (_k, x: unknown) => {
        if (typeof x === 'bigint') return `${x}n`;
        if (x instanceof Map) return [...x].sort();
        if (x !== null && typeof x === 'object' && !Array.isArray(x))
          return Object.fromEntries(
            Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)),
          );
        return x;
      }),
    )
    .sort();
}

/** A readable diff of two multisets of lines ('' if equal). */
export function diffResults(expected: readonly string[], actual: readonly string[], limit = 20): string {
  const counts = new Map<string, number>();
  for (const e of expected) counts.set(e, (counts.get(e) ?? 0) + 1);
  const unexpected: string[] = [];
  for (const a of actual) {
    const n = counts.get(a) ?? 0;
    if (n > 0) counts.set(a, n - 1);
    else unexpected.push(a);
  }
  const missing = [...counts].flatMap(([k, n]) => Array<string>(n).fill(k));
  if (missing.length === 0 && unexpected.length === 0) return '';
  const show = (xs: string[]) =>
    xs
      .slice(0, limit)
      .map((x) => `    ${x}`)
      .join('\n') + (xs.length > limit ? `\n    … and ${xs.length - limit} more` : '');
  return [
    `  ${expected.length} expected, ${actual.length} actual`,
    missing.length > 0 ? `  missing (expected, not produced) ${missing.length}:\n${show(missing)}` : '',
    unexpected.length > 0
      ? `  unexpected (produced, not expected) ${unexpected.length}:\n${show(unexpected)}`
      : '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}

/** Throws with a readable diff unless the results are equal as multisets. */
export function assertSameResults(
  what: string,
  expected: readonly unknown[],
  actual: readonly unknown[],
): void {
  const diff = diffResults(canonical(expected), canonical(actual));
  if (diff !== '') throw new Error(`${what}:\n${diff}`);
}

/** Builds a job on the environment and returns what to compare (a collected stream). */
export type JobUnderTest<T> = (env: StreamExecutionEnvironment) => CollectedStream<T>;

/** Options of the job checks. */
export interface CheckOptions<T> {
  /** Reduces the collected values to what must be equal (default: all values, as a multiset). */
  normalize?: (values: T[]) => unknown[];
  maxParallelism?: number;
}

/** Runs `job` at every parallelism and checks that the outputs are equal. */
export async function checkParallelismInvariance<T>(
  job: JobUnderTest<T>,
  options: CheckOptions<T> & { parallelisms?: readonly number[] } = {},
): Promise<void> {
  const ps = options.parallelisms ?? [1, 2, 3, 4];
  const normalize = options.normalize ?? ((v: T[]) => v);
  let reference: unknown[] | undefined;
  for (const p of ps) {
    const env = new StreamExecutionEnvironment({
      parallelism: p,
      ...(options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism }),
    });
    const out = job(env);
    await env.execute({ strictRecords: true });
    const got = normalize(out.values);
    if (reference === undefined) reference = got;
    else assertSameResults(`output at parallelism ${p} differs from parallelism ${ps[0]}`, reference, got);
  }
}

/**
 * The timing of a simulated run: processing time and its jumps, the periodic watermark interval,
 * how many events a subtask takes per step.
 */
export type SimulationTiming = Pick<
  SimulationOptions,
  | 'clockStartMs'
  | 'clockTickProbability'
  | 'maxClockTickMs'
  | 'clockJumpProbability'
  | 'maxClockJumpMs'
  | 'clockJumpSizesMs'
  | 'autoWatermarkIntervalMs'
  | 'maxBudget'
>;

const TIMING_KEYS = [
  'clockStartMs',
  'clockTickProbability',
  'maxClockTickMs',
  'clockJumpProbability',
  'maxClockJumpMs',
  'clockJumpSizesMs',
  'autoWatermarkIntervalMs',
  'maxBudget',
] as const;

/** The timing options among `options` (those that are set). */
function timingOf(options: SimulationTiming): SimulationTiming {
  const out: Record<string, unknown> = {};
  for (const k of TIMING_KEYS) if (options[k] !== undefined) out[k] = options[k];
  return out as SimulationTiming;
}

/** `simulate(job, { seed: 1, parallelism: 3, ... })`, the call that replays a run. */
function replayOf(seed: number, parallelism: number, timing: SimulationTiming): string {
  const rest = Object.entries(timing)
    .map(([k, v]) => `, ${k}: ${JSON.stringify(v)}`)
    .join('');
  return `simulate(job, { seed: ${seed}, parallelism: ${parallelism}${rest} })`;
}

/**
 * Runs `job` under the simulation with every seed and checks that the outputs are equal. The
 * timing options go to every run: with `maxClockJumpMs` (or `clockJumpSizesMs`), seeds also
 * differ in large moves of processing time and of the simulated wall clock (`Date.now()`).
 */
export async function checkInterleavingInvariance<T>(
  job: JobUnderTest<T>,
  options: CheckOptions<T> & SimulationTiming & { seeds?: readonly number[]; parallelism?: number } = {},
): Promise<void> {
  const seeds = options.seeds ?? [1, 2, 3, 4, 5, 6, 7, 8];
  const normalize = options.normalize ?? ((v: T[]) => v);
  const parallelism = options.parallelism ?? 3;
  const timing = timingOf(options);
  let reference: unknown[] | undefined;
  for (const seed of seeds) {
    const r = await simulate(job, {
      seed,
      parallelism,
      ...(options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism }),
      ...timing,
    });
    const got = normalize(r.built.values);
    if (reference === undefined) reference = got;
    else
      assertSameResults(
        `output with seed ${seed} differs from seed ${seeds[0]} (replay: ${replayOf(seed, parallelism, timing)})`,
        reference,
        got,
      );
  }
}

/** Options of {@link checkTimingInvariance}. */
export interface TimingInvarianceOptions<T> extends CheckOptions<T> {
  /** Seeds, each run under every timing (default [1, 2]). */
  seeds?: readonly number[];
  /** Default parallelism of the job (default 2). */
  parallelism?: number;
  /** The job's time constants: the clock also jumps by these ±1 (default: jumps up to 60 s). */
  timeConstants?: readonly number[];
}

/** The timings {@link checkTimingInvariance} runs a job under, by name. */
function timings(constants: readonly number[]): [string, SimulationTiming][] {
  const jumps: SimulationTiming =
    constants.length > 0
      ? { clockJumpSizesMs: constants, maxClockJumpMs: 2 * Math.max(...constants) }
      : { maxClockJumpMs: 60_000 };
  return [
    [
      'a watermark after almost every step',
      { autoWatermarkIntervalMs: 1, clockTickProbability: 1, maxClockTickMs: 1, maxBudget: 1 },
    ],
    ['watermarks only at the end', { autoWatermarkIntervalMs: 0, clockTickProbability: 0 }],
    ['periodic watermarks every 200 ms, a clock moving a little', {}],
    [
      'a wall clock at 2023-11-14, jumping by large amounts',
      { clockStartMs: 1_700_000_000_000, clockJumpProbability: 0.1, ...jumps },
    ],
  ];
}

/**
 * Checks that a job's output does not depend on time it should not depend on: it runs the job
 * under the simulation with different timings — a periodic watermark after almost every step,
 * watermarks only at the end, the default cadence, and a wall clock at a real date that jumps by
 * large amounts (the job's time constants ±1) — under each seed, and compares the outputs. Results
 * of event-time logic must be the same; a job that decides by when a watermark arrives, or by
 * `Date.now()`, is caught. (Jobs with processing-time windows or timers legitimately differ: check
 * those with a `normalize` that keeps what must not change.) The job's sources should emit
 * periodic watermarks (a watermark strategy) for the cadence to matter.
 */
export async function checkTimingInvariance<T>(
  job: JobUnderTest<T>,
  options: TimingInvarianceOptions<T> = {},
): Promise<void> {
  const seeds = options.seeds ?? [1, 2];
  const normalize = options.normalize ?? ((v: T[]) => v);
  const parallelism = options.parallelism ?? 2;
  let reference: { got: unknown[]; what: string } | undefined;
  for (const [name, timing] of timings(options.timeConstants ?? [])) {
    for (const seed of seeds) {
      const r = await simulate(job, {
        seed,
        parallelism,
        ...(options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism }),
        ...timing,
      });
      const got = normalize(r.built.values);
      const what = `${name} (seed ${seed})`;
      if (reference === undefined) reference = { got, what };
      else
        assertSameResults(
          `output with ${what} differs from ${reference.what} (replay: ${replayOf(seed, parallelism, timing)})`,
          reference.got,
          got,
        );
    }
  }
}

/** Options of {@link checkWatermarkTimingInvariance}. */
export interface WatermarkTimingOptions<E, T> extends CheckOptions<T> {
  /** An event's timestamp (default: its `timestamp` field). */
  timestampOf?: (event: E) => number;
  /** How far the events are out of order at most (default 0: in order); none may be later. */
  maxOutOfOrdernessMs?: number;
  /** Random cadences besides "after every event" and "only at the end" (default 3). */
  randomCadences?: number;
  /** Seed of the random cadences (default 1). */
  seed?: number;
  /** Default parallelism of the job (default 1). */
  parallelism?: number;
}

/**
 * Checks that a job's output does not depend on when watermarks arrive: it replays `events`
 * through a TestStream with a watermark after every event (the largest timestamp so far minus
 * the bound minus 1, as a bounded-out-of-orderness generator), with no watermark before the end,
 * and with watermarks at random places and heights in between, and compares the outputs. No event
 * is late under any cadence, so event-time results must be equal; a job that reads the current
 * watermark to decide, or counts what came since the last watermark, is caught. The job gets the
 * replayed stream (timestamps set) and returns what to compare.
 */
export async function checkWatermarkTimingInvariance<E, T>(
  job: (env: StreamExecutionEnvironment, input: DataStream<E>) => CollectedStream<T>,
  events: readonly E[],
  options: WatermarkTimingOptions<E, T> = {},
): Promise<void> {
  const timestampOf =
    options.timestampOf ??
    ((e: E) => {
      const t = (e as { timestamp?: unknown }).timestamp;
      if (typeof t !== 'number')
        throw new InvalidArgumentError(
          'checkWatermarkTimingInvariance: the events have no numeric `timestamp`; pass timestampOf',
        );
      return t;
    });
  const lag = options.maxOutOfOrdernessMs ?? 0;
  const normalize = options.normalize ?? ((v: T[]) => v);
  // The highest watermark after each event that leaves no event late.
  const highest: number[] = [];
  let max = Number.NEGATIVE_INFINITY;
  for (const [i, e] of events.entries()) {
    const t = timestampOf(e);
    if (t < max - lag)
      throw new InvalidArgumentError(
        `checkWatermarkTimingInvariance: event ${i} (at ${t}) is ${max - t} ms behind an earlier event, more than maxOutOfOrdernessMs (${lag}): it would be late under some cadences`,
      );
    max = Math.max(max, t);
    highest.push(max - lag - 1);
  }
  const cadences: [string, (number | undefined)[]][] = [
    ['a watermark after every event', highest],
    ['no watermark before the end', highest.map(() => undefined)],
  ];
  const rnd = new SeededRandom(options.seed ?? 1);
  for (let c = 0; c < (options.randomCadences ?? 3); c++) {
    let last = Number.NEGATIVE_INFINITY;
    const marks = highest.map((h) => {
      if (!rnd.chance(0.4) || !(h > last)) return undefined;
      // Anywhere above the last one, up to the highest allowed (often exactly that).
      const low = Number.isFinite(last) ? last + 1 : h - 1000;
      const w = rnd.chance(0.5) ? h : low + rnd.int(h - low + 1);
      last = w;
      return w;
    });
    cadences.push([`random watermarks #${c + 1}`, marks]);
  }
  let reference: { got: unknown[]; what: string } | undefined;
  for (const [name, marks] of cadences) {
    const script = TestStream.create<E>();
    const shown: string[] = [];
    let emitted = Number.NEGATIVE_INFINITY;
    for (const [i, e] of events.entries()) {
      script.addElement(e, timestampOf(e));
      shown.push(`${describeEvent(e)}@${timestampOf(e)}`);
      const w = marks[i];
      if (w !== undefined && w > emitted) {
        script.advanceWatermarkTo(w);
        shown.push(`WM(${w})`);
        emitted = w;
      }
    }
    const env = new StreamExecutionEnvironment({ parallelism: options.parallelism ?? 1 });
    const out = job(env, fromTestStream(env, script));
    await env.execute();
    const got = normalize(out.values);
    const what = `${name} [${shown.join(' ')}]`;
    if (reference === undefined) reference = { got, what };
    else assertSameResults(`output with ${what} differs from ${reference.what}`, reference.got, got);
  }
}

/** An event for a message: `key:value` of a TimedEvent, else its JSON. */
function describeEvent(e: unknown): string {
  if (e !== null && typeof e === 'object' && 'key' in e && 'value' in e)
    return `${String((e as TimedEvent).key)}:${JSON.stringify((e as TimedEvent).value)}`;
  return JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

/** Runs `job` on each input order and checks that the outputs are equal. */
export async function checkOrderInvariance<E, T>(
  job: (env: StreamExecutionEnvironment, input: readonly E[]) => CollectedStream<T>,
  orders: readonly (readonly E[])[],
  options: CheckOptions<T> & { parallelism?: number } = {},
): Promise<void> {
  const normalize = options.normalize ?? ((v: T[]) => v);
  let reference: unknown[] | undefined;
  for (const [i, input] of orders.entries()) {
    const env = new StreamExecutionEnvironment({ parallelism: options.parallelism ?? 1 });
    // NOTE: a copy of the input, so that a counterexample shows what was generated.
    const out = job(env, structuredClone(input));
    await env.execute({ strictRecords: true });
    const got = normalize(out.values);
    if (reference === undefined) reference = got;
    else assertSameResults(`output for input order ${i} differs from order 0`, reference, got);
  }
}

/** One step of input for {@link checkRescaling}. */
export type HarnessStep<IN> = { element: IN; timestamp?: number } | { watermark: number };

/**
 * Checks that an operator gives the same output when its state is snapshotted after
 * `steps[0 .. splitAt)` at parallelism `from` and restored at parallelism `to` for the rest, as
 * when it runs on one subtask throughout. Elements go to the subtask owning their key.
 */
export async function checkRescaling<IN, OUT>(
  build: (input: DataStream<IN>) => DataStream<OUT>,
  steps: readonly HarnessStep<IN>[],
  options: { from: number; to: number; splitAt: number; maxParallelism?: number },
): Promise<void> {
  const maxParallelism = options.maxParallelism ?? 128;
  const drive = (hs: OperatorHarness<IN, OUT>[], part: readonly HarnessStep<IN>[]) => {
    for (const s of part) {
      if ('watermark' in s) for (const h of hs) h.processWatermark(s.watermark);
      else hs.find((h) => h.ownsElement(s.element))!.processElement(s.element, s.timestamp);
    }
  };
  const finish = async (hs: OperatorHarness<IN, OUT>[]) => {
    for (const h of hs) {
      h.processWatermark(Number.POSITIVE_INFINITY);
      await h.endInput();
    }
    return hs.flatMap((h) => h.records());
  };
  const single = [OperatorHarness.forOneInput(build, { maxParallelism })];
  drive(single, steps);
  const expected = await finish(single);

  const first = Array.from({ length: options.from }, (_x, i) =>
    OperatorHarness.forOneInput(build, { parallelism: options.from, subtaskIndex: i, maxParallelism }),
  );
  drive(first, steps.slice(0, options.splitAt));
  const before = first.flatMap((h) => h.records());
  const snapshots = first.map((h) => h.snapshot());
  const second = Array.from({ length: options.to }, (_x, i) =>
    OperatorHarness.forOneInput(build, {
      parallelism: options.to,
      subtaskIndex: i,
      maxParallelism,
      restoreFrom: snapshots,
    }),
  );
  drive(second, steps.slice(options.splitAt));
  const after = await finish(second);
  assertSameResults(
    `output after rescaling from parallelism ${options.from} to ${options.to} at step ${options.splitAt} differs from an unscaled run`,
    expected,
    [...before, ...after],
  );
}

/**
 * Checks that each key's updates arrive as an unbroken +1 sequence (Flink's end-to-end semantics
 * test): `observe(key, n)` expects n = previous + 1 for that key (starting at `start`).
 */
export class KeySequenceChecker<K extends Key = Key> {
  private readonly last = new Map<string, number>();
  private readonly problems: string[] = [];
  constructor(private readonly start = 1) {}

  observe(key: K, n: number): void {
    const k = JSON.stringify(key, (_x, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    const prev = this.last.get(k);
    const want = prev === undefined ? this.start : prev + 1;
    if (n !== want) {
      if (n <= (prev ?? this.start - 1))
        this.problems.push(`key ${k}: ${n} after ${prev} (duplicate or out of order)`);
      else this.problems.push(`key ${k}: ${n} after ${prev ?? 'nothing'} (${n - want} missing)`);
    }
    if (prev === undefined || n > prev) this.last.set(k, n);
  }

  /** A sink function that observes `[key, n]` of every record. */
  sink<T>(extract: (value: T) => readonly [K, number]): (value: T) => void {
    return (v) => {
      const [k, n] = extract(v);
      this.observe(k, n);
    };
  }

  /** Problems seen so far. */
  violations(): readonly string[] {
    return this.problems;
  }

  /** Throws unless no problem was seen and every key reached `expected(key)` (if given). */
  assertValid(expectedLast?: ReadonlyMap<K, number>): void {
    const problems = [...this.problems];
    if (expectedLast !== undefined) {
      for (const [key, n] of expectedLast) {
        const k = JSON.stringify(key);
        const got = this.last.get(k);
        if (got !== n) problems.push(`key ${k}: last update ${got ?? 'none'}, expected ${n}`);
      }
    }
    if (problems.length > 0)
      throw new Error(
        `per-key sequences broken:\n${problems
          .slice(0, 20)
          .map((p) => `  ${p}`)
          .join('\n')}`,
      );
  }
}
