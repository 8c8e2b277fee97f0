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
import type { Key } from '../../state/hash.js';
import { StreamExecutionEnvironment } from '../environment.js';
import { OperatorHarness } from './harness.js';
import { simulate } from './simulation.js';

/** An event with a key, a value and an event timestamp. */
export interface TimedEvent<K = string, V = number> {
  key: K;
  value: V;
  timestamp: number;
}

/** Options of {@link eventStreams}. */
export interface EventStreamOptions<K, V> {
  /** Keys (default: 'k0' .. 'k7'). */
  keys?: fc.Arbitrary<K>;
  /** Values (default: small integers). */
  values?: fc.Arbitrary<V>;
  minLength?: number;
  /** Default 60. */
  maxLength?: number;
  /** First timestamp (default 0). */
  startMs?: number;
  /** Largest step between consecutive timestamps (default 1000). */
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
 * `forBoundedOutOfOrderness(maxDisorderMs)` no event is late.
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
  const item = fc.record({
    key: keys,
    hot: fc.double({ min: 0, max: 1, noNaN: true }),
    value: values,
    gap: fc.integer({ min: 0, max: maxGap }),
    idle: fc.double({ min: 0, max: 1, noNaN: true }),
    delay: fc.integer({ min: 0, max: disorder }),
  });
  return fc
    .array(item, { minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 60 })
    .map((items) => {
      const hotKey = items[0]?.key;
      let t = options.startMs ?? 0;
      const timed = items.map((it, i) => {
        t += it.gap + (it.idle < idle ? idleMs : 0);
        return {
          event: {
            key: it.hot < hot && hotKey !== undefined ? hotKey : it.key,
            value: it.value,
            timestamp: t,
          },
          order: t + it.delay,
          i,
        };
      });
      // Arrival order: by timestamp plus a delay within the bound (stable for ties).
      timed.sort((a, b) => a.order - b.order || a.i - b.i);
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
}

/**
 * Streams with explicit watermarks and late records: a watermark after some events, then events
 * that may be older than it (late, with probability `lateProbability`).
 */
export function lateStreams<K = string, V = number>(
  options: EventStreamOptions<K, V> & { lateProbability?: number; maxLatenessMs?: number } = {},
): fc.Arbitrary<LateStream<K, V>> {
  const lateP = options.lateProbability ?? 0.2;
  const maxLate = options.maxLatenessMs ?? 5_000;
  return fc
    .tuple(
      eventStreams<K, V>({ ...options, maxDisorderMs: 0 }),
      fc.array(
        fc.tuple(
          fc.double({ min: 0, max: 1, noNaN: true }),
          fc.integer({ min: 1, max: maxLate }),
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
        const [p, back, emitWatermark] = choices[i] ?? [1, 1, false];
        let event = e;
        if (p < lateP && Number.isFinite(watermark)) {
          event = { ...e, timestamp: watermark - back + 1 };
          if (event.timestamp <= watermark) late.push(event);
        }
        steps.push({ event });
        if (emitWatermark && e.timestamp - 1 > watermark) {
          watermark = e.timestamp - 1;
          steps.push({ watermark });
        }
      });
      return printable({ steps, late }, (s) =>
        s.steps
          .map((x) =>
            'event' in x
              ? `${String(x.event.key)}:${JSON.stringify(x.event.value)}@${x.event.timestamp}`
              : `WM(${x.watermark})`,
          )
          .join(' '),
      );
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

/** Runs `job` under the simulation with every seed and checks that the outputs are equal. */
export async function checkInterleavingInvariance<T>(
  job: JobUnderTest<T>,
  options: CheckOptions<T> & { seeds?: readonly number[]; parallelism?: number } = {},
): Promise<void> {
  const seeds = options.seeds ?? [1, 2, 3, 4, 5, 6, 7, 8];
  const normalize = options.normalize ?? ((v: T[]) => v);
  let reference: unknown[] | undefined;
  for (const seed of seeds) {
    const r = await simulate(job, {
      seed,
      parallelism: options.parallelism ?? 3,
      ...(options.maxParallelism === undefined ? {} : { maxParallelism: options.maxParallelism }),
    });
    const got = normalize(r.built.values);
    if (reference === undefined) reference = got;
    else
      assertSameResults(
        `output with seed ${seed} differs from seed ${seeds[0]} (replay: simulate(job, { seed: ${seed}, parallelism: ${options.parallelism ?? 3} }))`,
        reference,
        got,
      );
  }
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
