// Checks against a reference job, of state left behind, of late data, and of the failure plans'
// vocabulary, each with a job that has the bug and fails, and its fixed version that passes.
// Run it with the project's tests (`npm test`) or alone: npx vitest run examples/testing
import {
  type Collector,
  type DataStream,
  type KeyedProcessContext,
  KeyedProcessFunction,
  MemoryCheckpointStorage,
  OutputTag,
  RichMapFunction,
  type RuntimeContext,
  type StreamExecutionEnvironment,
  TumblingEventTimeWindows,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import {
  assertEquivalent,
  CheckNotExercisedError,
  checkEquivalent,
  checkJobRescaling,
  checkLateDataAccounted,
  checkStateCleanup,
  describeFailure,
  eventStreams,
  FAILURE_SITES,
  LateDataLostError,
  StateNotCleanedError,
  type TimedEvent,
} from 'tidemark/testing';
import { expect, test } from 'vitest';

type Ev = TimedEvent<string, number>;

// ---- a job against a simpler reference ----

/** The even values, with a filter (the reference) ... */
const evens = (env: StreamExecutionEnvironment, events: Ev[]) =>
  env
    .fromArray(events)
    .filter((e) => e.value % 2 === 0)
    .collect();

/** ... and with flatMap, as a job might; `bug` also drops negative values. */
const evensByFlatMap = (bug: boolean) => (env: StreamExecutionEnvironment, events: Ev[]) =>
  env
    .fromArray(events)
    .flatMap((e: Ev) => (e.value % 2 === 0 && (!bug || e.value >= 0) ? [e] : []))
    .collect();

test('checkEquivalent: a job gives the reference job’s output on every generated input', async () => {
  await checkEquivalent(evensByFlatMap(false), evens, eventStreams({ maxLength: 20 }), {
    parameters: { numRuns: 30 },
  });
  // The bug is found and shrunk to one event.
  const error = await checkEquivalent(evensByFlatMap(true), evens, eventStreams({ maxLength: 20 }), {
    parameters: { numRuns: 100, seed: 7 },
  }).catch((e: unknown) => e as Error);
  expect(error).toBeInstanceOf(Error);
  expect(error?.message).toMatch(/differs from the reference/);
});

test('assertEquivalent: the same for one input', async () => {
  const input: Ev[] = [
    { key: 'a', value: 2, timestamp: 0 },
    { key: 'a', value: -4, timestamp: 1 },
  ];
  await assertEquivalent(evensByFlatMap(false), evens, input);
  await expect(assertEquivalent(evensByFlatMap(true), evens, input)).rejects.toThrow(/missing/);
});

// ---- state left behind ----

const TTL = 5_000;

/** Each key's first event per TTL; `clears: false` is the bug: the flag stays for ever. */
class Dedup extends KeyedProcessFunction<string, Ev, string> {
  private seen!: ValueState<boolean>;
  constructor(private readonly clears: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.seen = ctx.getState(new ValueStateDescriptor<boolean>('seen'));
  }
  processElement(e: Ev, ctx: KeyedProcessContext<string>, out: Collector<string>) {
    if (this.seen.value() === true) return;
    this.seen.update(true);
    out.collect(`${e.key}@${e.timestamp}`);
    if (this.clears) ctx.timerService().registerEventTimeTimer(e.timestamp + TTL);
  }
  override onTimer() {
    this.seen.clear();
  }
}

const dedup = (clears: boolean) => (_env: StreamExecutionEnvironment, input: DataStream<Ev>) =>
  input
    .keyBy((e) => e.key)
    .process(new Dedup(clears))
    .collect();

test('checkStateCleanup: no keyed state or timer outlives the horizon; StateNotCleanedError names what did', async () => {
  const events: Ev[] = [{ key: 'k', value: 1, timestamp: 0 }];
  await checkStateCleanup(dedup(true), events, { horizonMs: TTL });
  const error = await checkStateCleanup(dedup(false), events, { horizonMs: TTL }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(StateNotCleanedError);
  expect((error as StateNotCleanedError).message).toMatch(/seen/);
});

// ---- late data ----

const late = new OutputTag<Ev>('late');

/** Counts per 1 s window; `sidesLate: false` is the bug: late records vanish. */
const windowCounts = (sidesLate: boolean) => (_env: StreamExecutionEnvironment, input: DataStream<Ev>) => {
  const windowed = input.keyBy((e) => e.key).window(TumblingEventTimeWindows.of(1_000));
  const results = (sidesLate ? windowed.sideOutputLateData(late) : windowed).aggregate({
    createAccumulator: () => 0,
    add: (_e: Ev, n: number) => n + 1,
    getResult: (n: number) => n,
    merge: (a: number, b: number) => a + b,
  });
  return { results, late: results.getSideOutput(late) };
};

test('checkLateDataAccounted: every record is counted or comes out late; LateDataLostError otherwise', async () => {
  // A watermark of 2000 passes before the record at 500 arrives: it is late.
  const events: Ev[] = [
    { key: 'k', value: 1, timestamp: 0 },
    { key: 'k', value: 2, timestamp: 2_000 },
    { key: 'k', value: 3, timestamp: 500 },
  ];
  await checkLateDataAccounted(windowCounts(true), events, { count: (n) => n });
  await expect(checkLateDataAccounted(windowCounts(false), events, { count: (n) => n })).rejects.toThrow(
    LateDataLostError,
  );
});

// ---- the failure plans' vocabulary ----

test('FAILURE_SITES and describeFailure: where failures strike, in words', () => {
  expect(FAILURE_SITES).toContain('sink-commit');
  expect(describeFailure({ at: 'source', afterCheckpoint: 1, nth: 2 })).toBe(
    'the 2nd record read by a source after 1 completed checkpoint',
  );
});

/** A running count per key, in keyed state. */
class CountInState extends RichMapFunction<Ev, string> {
  private count!: ValueState<number>;
  override open(ctx: RuntimeContext) {
    this.count = ctx.getState(new ValueStateDescriptor<number>('count'));
  }
  map(e: Ev): string {
    const n = (this.count.value() ?? 0) + 1;
    this.count.update(n);
    return `${e.key}:${n}`;
  }
}

test('CheckNotExercisedError: a rescaling check whose job ended before its stop fails, saying so', async () => {
  const few: Ev[] = [
    { key: 'k0', value: 1, timestamp: 0 },
    { key: 'k1', value: 1, timestamp: 0 },
  ];
  const job = (env: StreamExecutionEnvironment) =>
    env
      .fromArray(few, { parallel: true })
      .keyBy((e) => e.key)
      .map(new CountInState())
      .collectCommitted();
  const error = await checkJobRescaling(job, {
    from: 2,
    to: 3,
    storage: () => new MemoryCheckpointStorage(),
    stopAfterCheckpoints: 3,
  }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CheckNotExercisedError);
});
