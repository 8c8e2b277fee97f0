// The failure checks of tidemark/testing exercise checkpoints: checkpoints are taken by records
// read, failures strike after completed checkpoints, and the restarts restore from them. Jobs with
// the bugs users write — state in a field, operator state never snapshotted, a sink that is not
// transactional — are caught and shrink to a couple of events; their correct versions pass; a run
// that restored from no checkpoint, or a rescaling whose job ended before its stop, fails instead
// of passing.
import fc from 'fast-check';
import {
  type ListState,
  ListStateDescriptor,
  MemoryCheckpointStorage,
  type ReaderOutput,
  RichMapFunction,
  type RuntimeContext,
  type Source,
  type SourceReader,
  type StreamExecutionEnvironment,
  type TransactionContext,
  TwoPhaseCommitSink,
  type ValueState,
  ValueStateDescriptor,
} from 'tidemark';
import {
  CheckNotExercisedError,
  checkExactlyOnce,
  checkJobRescaling,
  eventStreams,
  failurePlans,
  type TimedEvent,
} from 'tidemark/testing';
import { describe, expect, test } from 'vitest';

type Ev = TimedEvent<string, number>;
const storage = () => new MemoryCheckpointStorage();
const timings: Record<string, number> = {};
/** Events in each shrunk counterexample. */
const sizes: Record<string, number> = {};

/** Runs a property that must fail; returns the shrunk counterexample and the error. */
async function counterexample<T>(arb: fc.Arbitrary<T>, check: (v: T) => Promise<unknown>, name: string) {
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(arb, async (v) => {
      await check(v);
    }),
    { numRuns: 60, seed: 42 },
  );
  timings[name] = Math.round(performance.now() - started);
  expect(details.failed).toBe(true);
  const shrunk = details.counterexample?.[0];
  if (Array.isArray(shrunk)) sizes[name] = shrunk.length;
  const error =
    details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return { value: details.counterexample![0], error, report: fc.defaultReportMessage(details) ?? '' };
}

/** Checks that must pass on arbitrary inputs (long enough to take checkpoints). */
async function passes(check: (events: Ev[]) => Promise<unknown>, name: string): Promise<void> {
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(eventStreams({ minLength: 8, maxLength: 40 }), async (events) => {
      await check(events);
    }),
    { numRuns: 15 },
  );
  timings[name] = Math.round(performance.now() - started);
  expect(fc.defaultReportMessage(details) ?? '').toBe('');
  // Not one input skipped: with a few records per source subtask, every run restores.
  expect(details.numSkips).toBe(0);
}

// ---- state kept in a field instead of managed state ----

/** Bug: counts per key in a map held by the function object, which no checkpoint holds. */
class CountInField extends RichMapFunction<Ev, string> {
  private readonly counts = new Map<string, number>();
  map(e: Ev): string {
    const n = (this.counts.get(e.key) ?? 0) + 1;
    this.counts.set(e.key, n);
    return `${e.key}:${n}`;
  }
}

/** Correct: the count in keyed state. */
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

const counting =
  (events: readonly Ev[], fn: () => RichMapFunction<Ev, string>) => (env: StreamExecutionEnvironment) =>
    env
      .fromArray(events, { parallel: true })
      .keyBy((e) => e.key)
      .map(fn())
      .collectCommitted();

/** Bug: counts per key in a `Map` of the job's closure, shared by every restart. */
const countingInClosure = (events: readonly Ev[]) => (env: StreamExecutionEnvironment) => {
  const counts = new Map<string, number>();
  return env
    .fromArray(events, { parallel: true })
    .keyBy((e) => e.key)
    .map((e) => {
      const n = (counts.get(e.key) ?? 0) + 1;
      counts.set(e.key, n);
      return `${e.key}:${n}`;
    })
    .collectCommitted();
};

// ---- operator state never snapshotted: a source's position ----

interface ListSplit {
  splitId: string;
  /** Next index to read. */
  next: number;
  end: number;
}

/** A source of a list, one split per subtask; `snapshotsPosition: false` is the bug. */
class ListSource implements Source<Ev, ListSplit> {
  readonly boundedness = 'bounded' as const;
  constructor(
    private readonly items: readonly Ev[],
    private readonly snapshotsPosition: boolean,
  ) {}
  createSplits(parallelism: number): ListSplit[] {
    return Array.from({ length: parallelism }, (_x, i) => ({
      splitId: `part-${i}`,
      next: Math.floor((i * this.items.length) / parallelism),
      end: Math.floor(((i + 1) * this.items.length) / parallelism),
    }));
  }
  createReader(): SourceReader<Ev, ListSplit> {
    const { items, snapshotsPosition } = this;
    let splits: ListSplit[] = [];
    let assigned: ListSplit[] = [];
    return {
      addSplits(s) {
        assigned = s.map((x) => ({ ...x }));
        splits = s.map((x) => ({ ...x }));
      },
      pollNext(out: ReaderOutput<Ev>) {
        const split = splits.find((s) => s.next < s.end);
        if (split === undefined) return 2; // END_OF_INPUT
        out.collect(items[split.next++]!);
        return 0; // MORE_AVAILABLE
      },
      // Bug: the splits as they were assigned, not where the reader is.
      snapshotState: () => (snapshotsPosition ? splits : assigned).map((s) => ({ ...s })),
    };
  }
}

const fromList = (events: readonly Ev[], snapshotsPosition: boolean) => (env: StreamExecutionEnvironment) =>
  env
    .fromSource(new ListSource(events, snapshotsPosition))
    .map((e) => `${e.key}:${e.value}@${e.timestamp}`)
    .collectCommitted();

// ---- operator state never snapshotted: a function's (Flink's ListCheckpointed) ----

/** Numbers the records of its subtask; keeps the number in operator state, or forgets to. */
class Numbering extends RichMapFunction<Ev, string> {
  private n = 0;
  private state!: ListState<number>;
  constructor(private readonly snapshots: boolean) {
    super();
  }
  override open(ctx: RuntimeContext) {
    this.state = ctx.getOperatorListState(new ListStateDescriptor<number>('numbered'));
    this.n = [...this.state.get()].reduce((a, b) => a + b, 0);
  }
  map(e: Ev): string {
    return `${e.key}#${++this.n}`;
  }
  snapshotState(): void {
    if (this.snapshots) this.state.update([this.n]); // the bug is to leave this out
  }
}

const numbering = (events: readonly Ev[], snapshots: boolean) => (env: StreamExecutionEnvironment) =>
  env.fromArray(events, { parallel: true }).map(new Numbering(snapshots)).collectCommitted();

// ---- a sink that is not transactional, used as if it were ----

interface Store {
  rows: string[];
  committed: Set<string>;
}
interface Txn {
  id: string;
  rows: string[];
}

/** A two-phase-commit sink; `direct` writes every record at once (the bug), else on commit. */
class StoreSink extends TwoPhaseCommitSink<string, Txn> {
  constructor(
    private readonly store: Store,
    private readonly direct: boolean,
  ) {
    super();
  }
  protected beginTransaction(ctx: TransactionContext): Txn {
    return { id: ctx.uniqueName, rows: [] };
  }
  protected invoke(txn: Txn, value: string): void {
    if (this.direct) this.store.rows.push(value);
    else txn.rows.push(value);
  }
  protected preCommit(): void {}
  protected commit(txn: Txn): void {
    if (this.direct || this.store.committed.has(txn.id)) return;
    this.store.committed.add(txn.id); // idempotent: a restore commits pending transactions again
    this.store.rows.push(...txn.rows);
  }
  protected abort(): void {}
}

const toStore = (events: readonly Ev[], direct: boolean) => (env: StreamExecutionEnvironment) => {
  const store: Store = { rows: [], committed: new Set() };
  env
    .fromArray(events, { parallel: true })
    .map((e) => `${e.key}:${e.value}@${e.timestamp}`)
    .sinkTo({ name: 'store', create: () => new StoreSink(store, direct) });
  return { values: store.rows };
};

describe('checkExactlyOnce catches what it used to miss', () => {
  test('state in a field: caught after a restore from a checkpoint, two events of one key', async () => {
    const { value, error, report } = await counterexample(
      eventStreams(),
      (events) =>
        checkExactlyOnce(
          counting(events, () => new CountInField()),
          { storage },
        ),
      'field state caught',
    );
    expect(value).toHaveLength(2);
    expect(value[0]!.key).toBe(value[1]!.key);
    expect(report).toMatch(/Counterexample: \[k\d:-?\d+@\d+ k\d:-?\d+@\d+\]/);
    expect(error).toMatch(
      /^committed output differs from the failure-free run \(\d+ injected failures?, \d+ restarts?, restored from checkpoints? \d+.*; a checkpoint every 1 record read, seed 1\):\n {2}failures:\n {4}source 'fromArray' after reading a record \(the 1st record read by a source after 1 completed checkpoint\)\n/,
    );
    expect(error).toMatch(/missing \(expected, not produced\) 1:\n {4}"k\d:2"/);
    expect(error).toMatch(
      /replay: checkExactlyOnce\(job, \{ seed: 1, parallelism: 2, checkpointEveryRecords: 1, storage \}\)$/,
    );
  });

  test('state in a closure variable: caught, two events of one key', async () => {
    const { value, error } = await counterexample(
      eventStreams(),
      (events) => checkExactlyOnce(countingInClosure(events), { storage }),
      'closure state caught',
    );
    expect(value).toHaveLength(2);
    expect(value[0]!.key).toBe(value[1]!.key);
    expect(error).toMatch(/^committed output differs from the failure-free run/);
  });

  test('a source that does not snapshot its position: caught, one or two events', async () => {
    const { value, error } = await counterexample(
      eventStreams(),
      (events) => checkExactlyOnce(fromList(events, false), { storage }),
      'source position caught',
    );
    // One record suffices: a checkpoint after it (the other source subtask, finished at once, no
    // longer stops checkpoints), a failure, and the restored source reads it again.
    expect(value.length).toBeGreaterThanOrEqual(1);
    expect(value.length).toBeLessThanOrEqual(2);
    expect(error).toMatch(/unexpected \(produced, not expected\) \d+:/);
  });

  test('a function whose operator state is never written: caught, small', async () => {
    const { value, error } = await counterexample(
      eventStreams(),
      (events) => checkExactlyOnce(numbering(events, false), { storage }),
      'operator state caught',
    );
    // Two records on each source subtask: one before the checkpoint, one after the restore.
    expect(value.length).toBeLessThanOrEqual(4);
    expect(error).toMatch(/^committed output differs from the failure-free run/);
  });

  test('a sink that writes at once, not on commit: caught, two events', async () => {
    const { value, error } = await counterexample(
      eventStreams(),
      (events) => checkExactlyOnce(toStore(events, true), { storage }),
      'direct sink caught',
    );
    expect(value).toHaveLength(2);
    expect(error).toMatch(/unexpected \(produced, not expected\) \d+:/);
  });

  test('the correct versions pass, and every run restored from a checkpoint', async () => {
    const restored = (r: { restoredFrom: number[] }) => expect(r.restoredFrom.length).toBeGreaterThan(0);
    await passes(
      async (events) =>
        restored(
          await checkExactlyOnce(
            counting(events, () => new CountInState()),
            { storage },
          ),
        ),
      'keyed state passes',
    );
    await passes(
      async (events) => restored(await checkExactlyOnce(fromList(events, true), { storage })),
      'source passes',
    );
    await passes(
      async (events) => restored(await checkExactlyOnce(numbering(events, true), { storage })),
      'numbering passes',
    );
    await passes(
      async (events) => restored(await checkExactlyOnce(toStore(events, false), { storage })),
      'sink passes',
    );
  });

  test('arbitrary failure plans, seeds and parallelisms: the correct jobs pass', async () => {
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(
        eventStreams({ minLength: 8, maxLength: 30 }),
        failurePlans(),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 1, max: 3 }),
        async (events, failures, seed, parallelism) => {
          await checkExactlyOnce(
            counting(events, () => new CountInState()),
            { storage, failures, seed, parallelism },
          );
          await checkExactlyOnce(toStore(events, false), { storage, failures, seed, parallelism });
        },
      ),
      { numRuns: 25 },
    );
    timings['arbitrary plans pass'] = Math.round(performance.now() - started);
  });

  test('a run that restored from no checkpoint fails, saying so', async () => {
    // No input: no checkpoint before the end. (With one record a checkpoint follows it, and the
    // restore from it is a real one.)
    const none: Ev[] = [];
    const error = await checkExactlyOnce(
      counting(none, () => new CountInField()),
      { storage },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckNotExercisedError);
    expect(String(error)).toMatch(
      /checkExactlyOnce restored from no checkpoint, so it checked nothing of the job's checkpoints: the run completed 0 checkpoints before its end \(the sources read 0 records, a checkpoint every 1;/,
    );
  });
});

describe('checkJobRescaling', () => {
  test('fails when the job finishes before its stop', async () => {
    const few = [
      { key: 'k0', value: 1, timestamp: 0 },
      { key: 'k1', value: 1, timestamp: 0 },
    ];
    const job = (env: StreamExecutionEnvironment) =>
      env
        .fromArray(few, { parallel: true })
        .keyBy((e) => e.key)
        .map(new CountInState())
        .collectCommitted();
    await expect(
      checkJobRescaling(job, { from: 2, to: 3, storage, stopAfterCheckpoints: 3 }),
    ).rejects.toThrow(
      /checkJobRescaling: the job finished before its stop after 3 checkpoints \(it completed \d before its end/,
    );
    // In a property, such inputs are skipped; a property with nothing but them fails.
    const details = await fc.check(
      fc.asyncProperty(eventStreams({ maxLength: 1 }), async (events) => {
        await checkJobRescaling(
          counting(events, () => new CountInState()),
          { from: 2, to: 1, storage },
        );
      }),
      { numRuns: 5, maxSkipsPerRun: 2 },
    );
    expect(details.failed).toBe(true);
    expect(details.numSkips).toBeGreaterThan(0);
  });

  test('state in a field is caught across a rescale; keyed state passes', async () => {
    await passes(
      (events) =>
        checkJobRescaling(
          counting(events, () => new CountInState()),
          { from: 2, to: 3, storage },
        ),
      'rescaling passes',
    );
    const { value } = await counterexample(
      eventStreams(),
      (events) =>
        checkJobRescaling(
          counting(events, () => new CountInField()),
          { from: 2, to: 3, storage },
        ),
      'rescaling field state caught',
    );
    expect(value.length).toBeLessThanOrEqual(4);
  });

  test('timings', () => {
    console.log('failure-check timings (ms):', JSON.stringify(timings));
    console.log('shrunk counterexamples (events):', JSON.stringify(sizes));
  });
});
