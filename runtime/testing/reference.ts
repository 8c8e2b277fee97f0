/**
 * Reference checks: a job against a simpler job that must give the same output (hand-written
 * sessions against the built-in session windows), and the completeness of late data (every input
 * record is counted in a result or comes out of the late-data side output: none silently dropped).
 */
import fc from 'fast-check';
import type { CollectedStream, DataStream } from '../../operators/data-stream.js';
import { registerErrorClass, TidemarkError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import { ManualClock } from '../clock.js';
import { StreamExecutionEnvironment } from '../environment.js';
import { canonical, diffResults, type LateStream, type TimedEvent } from './properties.js';
import { SimulationPolicy, simulate } from './simulation.js';
import { fromTestStream, TestStream } from './test-stream.js';

/** Options of {@link checkEquivalent} and {@link assertEquivalent}. */
export interface EquivalenceOptions<T> {
  /** Reduces both outputs to what must be equal (default: all values, as a multiset). */
  normalize?: (values: T[]) => unknown[];
  /** Default 2 (both jobs). */
  parallelism?: number;
  /** Interleaving and timing of the simulation (default 1). */
  seed?: number;
}

/** A job of an equivalence check: built on `env` from one input, its output collected. */
export type JobOnInput<I, T> = (env: StreamExecutionEnvironment, input: I) => CollectedStream<T>;

/**
 * Runs `job` and `reference` on `input` under the same seeded simulation and throws unless their
 * outputs are equal (as multisets, after `normalize`): what the reference produced and the job did
 * not is "missing", what the job produced and the reference did not is "unexpected".
 */
export async function assertEquivalent<I, T>(
  job: JobOnInput<I, T>,
  reference: JobOnInput<I, T>,
  input: I,
  options: EquivalenceOptions<T> = {},
): Promise<void> {
  const seed = options.seed ?? 1;
  const parallelism = options.parallelism ?? 2;
  const normalize = options.normalize ?? ((v: T[]) => v);
  // NOTE: each job gets its own copy of the input, so that neither can change what the other (or
  // the counterexample) sees.
  const ref = await simulate((env) => reference(env, structuredClone(input)), { seed, parallelism });
  const got = await simulate((env) => job(env, structuredClone(input)), { seed, parallelism });
  const diff = diffResults(canonical(normalize(ref.built.values)), canonical(normalize(got.built.values)));
  if (diff !== '')
    throw new Error(
      `the job's output differs from the reference's (expected: the reference's; parallelism ${parallelism}, seed ${seed}):\n${diff}`,
    );
}

/**
 * A property: for every input `inputs` generates, `job` gives the output `reference` gives (see
 * {@link assertEquivalent}). Runs fast-check (`parameters`, `numRuns` 100 by default); a failure
 * shrinks the input and throws an error with the counterexample, how to replay it (fast-check's
 * seed and path), and the difference of the two outputs on it.
 */
export async function checkEquivalent<I, T>(
  job: JobOnInput<I, T>,
  reference: JobOnInput<I, T>,
  inputs: fc.Arbitrary<I>,
  options: EquivalenceOptions<T> & { parameters?: fc.Parameters<[I]> } = {},
): Promise<void> {
  const { parameters, ...rest } = options;
  const details = await fc.check(
    fc.asyncProperty(inputs, async (input) => {
      await assertEquivalent(job, reference, input, rest);
    }),
    parameters ?? {},
  );
  if (!details.failed) return;
  if (details.counterexample === null)
    throw new Error(fc.defaultReportMessage(details) ?? 'checkEquivalent failed');
  const cause = details.errorInstance;
  throw new Error(
    `checkEquivalent: the job and the reference differ after ${details.numRuns} run(s), shrunk ${details.numShrinks} time(s)\n` +
      `Counterexample: ${fc.stringify(details.counterexample[0])}\n` +
      `Replay: { seed: ${details.seed}, path: ${JSON.stringify(details.counterexamplePath)} }\n` +
      (cause instanceof Error ? cause.message : String(cause)),
    { cause },
  );
}

// ---- late data ----

/** Options of {@link checkLateDataAccounted}. */
export interface LateDataOptions<K, R, L = TimedEvent<K, unknown>> {
  /** How many input records a result counts (a window's count, a session's clicks). */
  count: (result: R) => number;
  /** The key of a result, to account per key (default: per key if results have a `key` field). */
  keyOf?: (result: R) => K;
  /** The key of a late record (default: its `key` field, as in {@link TimedEvent}). */
  lateKeyOf?: (late: L) => K;
  /** The watermark lags the largest timestamp by this much, for an input of plain events (default 0). */
  maxOutOfOrdernessMs?: number;
  /** Default 2. */
  parallelism?: number;
  /** Default 1. */
  seed?: number;
}

/** The error of a job whose results and late output do not account for its input. */
export class LateDataLostError extends TidemarkError {
  constructor(
    message: string,
    /** Per key: records in the input, counted in results, and in the late output. */
    readonly accounts: { key: Key | null; input: number; counted: number; late: number }[],
  ) {
    super('CHECK_FAILED', message);
    this.name = 'LateDataLostError';
  }
}
registerErrorClass('LateDataLostError', LateDataLostError);

function showEvent(e: TimedEvent<unknown, unknown>): string {
  return `${String(e.key)}:${JSON.stringify(e.value)}@${e.timestamp}`;
}

/**
 * Replays `input` (a {@link LateStream}'s steps with their watermarks, or events with a bounded
 * out-of-orderness watermark) into `job(env, input)`, which returns its results and its late-data
 * side output; then checks, per key, that every input record is counted in a result (`count`) or
 * comes out of the late output, and none twice. Throws {@link LateDataLostError} with the keys
 * whose records do not add up, and the late records (by the input's watermarks) missing from the
 * late output. With `allowedLateness`, a window fires again for each late record it takes: count
 * only the last firing (in `count`, or by making the results an upsert of the window's final count).
 */
export async function checkLateDataAccounted<K, V, R, L = TimedEvent<K, V>>(
  job: (
    env: StreamExecutionEnvironment,
    input: DataStream<TimedEvent<K, V>>,
  ) => { results: DataStream<R>; late: DataStream<L> },
  input: LateStream<K, V> | readonly TimedEvent<K, V>[],
  options: LateDataOptions<K, R, L>,
): Promise<void> {
  const seed = options.seed ?? 1;
  const parallelism = options.parallelism ?? 2;
  let script: TestStream<TimedEvent<K, V>>;
  let events: TimedEvent<K, V>[];
  if ('steps' in input) {
    script = TestStream.create<TimedEvent<K, V>>();
    events = [];
    for (const step of input.steps)
      if ('watermark' in step) script.advanceWatermarkTo(step.watermark);
      else {
        events.push(step.event);
        script.addElement(structuredClone(step.event), step.event.timestamp);
      }
  } else {
    events = [...(input as readonly TimedEvent<K, V>[])];
    script = TestStream.replay(structuredClone(events), (e) => e.timestamp, {
      maxOutOfOrdernessMs: options.maxOutOfOrdernessMs ?? 0,
    });
  }
  const env = new StreamExecutionEnvironment({ parallelism, bufferCapacity: 4 });
  const built = job(env, fromTestStream(env, script));
  const results = built.results.collect();
  const late = built.late.collect();
  const clock = new ManualClock(0);
  await env.execute({
    clock,
    policy: new SimulationPolicy({ seed }, clock),
    timeSliceMs: 1_000_000,
    strictRecords: true,
  });
  const keyOf =
    options.keyOf ??
    ((r: R) => (r !== null && typeof r === 'object' && 'key' in r ? (r as { key: K }).key : undefined));
  const perKey = new Map<string, { key: Key | null; input: number; counted: number; late: number }>();
  const account = (key: unknown) => {
    const id = JSON.stringify(key ?? null);
    let a = perKey.get(id);
    if (a === undefined)
      perKey.set(id, (a = { key: (key ?? null) as Key | null, input: 0, counted: 0, late: 0 }));
    return a;
  };
  const byKey = options.keyOf !== undefined || results.values.every((r) => keyOf(r) !== undefined);
  for (const e of events) account(byKey ? e.key : null).input++;
  for (const r of results.values) account(byKey ? keyOf(r) : null).counted += options.count(r);
  const lateKeyOf = options.lateKeyOf ?? ((l: L) => (l as unknown as TimedEvent<K, V>).key);
  for (const l of late.values) account(byKey ? lateKeyOf(l) : null).late++;
  const wrong = [...perKey.values()].filter((a) => a.counted + a.late !== a.input);
  if (wrong.length === 0) return;
  const lines = wrong.map((a) => {
    const diff = a.input - a.counted - a.late;
    return `  ${a.key === null ? 'all keys' : `key ${JSON.stringify(a.key)}`}: ${a.input} in the input, ${a.counted} counted in results, ${a.late} in the late output: ${diff > 0 ? `${diff} lost` : `${-diff} counted twice`}`;
  });
  const lateOut = new Set(canonical(late.values));
  const missingLate =
    'steps' in input && options.lateKeyOf === undefined
      ? input.late.filter((e) => !lateOut.has(canonical([e])[0]!)).map(showEvent)
      : [];
  throw new LateDataLostError(
    `input records neither counted in a result nor in the late output (parallelism ${parallelism}, seed ${seed}):\n${lines.join('\n')}${missingLate.length === 0 ? '' : `\n  late by the input's watermarks and not in the late output (counted in a window still open, or lost): ${missingLate.slice(0, 10).join(' ')}${missingLate.length > 10 ? ' …' : ''}`}\n  send late records to a side output (sideOutputLateData) and return it as 'late'`,
    wrong,
  );
}
