/**
 * Exactly-once checks: run a job with failures injected at planned points — in its sources (after
 * a record was read), its functions (`injector.point()`), its sinks (at a checkpoint's barrier,
 * before they pre-commit; after they committed a completed checkpoint) and its checkpoint storage
 * (writing a chunk, before the commit, after the commit with the reply lost) — restoring from the
 * latest checkpoint each time, and compare the committed output with a failure-free run: nothing
 * lost, nothing twice. Rescaling checks stop a job after some checkpoints and restore it at
 * another parallelism.
 *
 * NOTE: checkpoints are taken by progress, not by time: one every `checkpointEveryRecords` records
 * read by the sources (a source subtask's step stops at that boundary), so that a run of a few
 * dozen records completes several, whatever the seed. Failures are placed relative to completed
 * checkpoints ("the 3rd record read after checkpoint 1"), so they restore from one: a failure
 * before any checkpoint restarts from scratch, which a job keeping state outside managed state
 * survives. A run that restored from no checkpoint fails the check ({@link CheckNotExercisedError}).
 */
import fc from 'fast-check';
import type { CollectedStream } from '../../operators/data-stream.js';
import type { SourceOperator } from '../../operators/sources/source.js';
import type {
  OperatorFactory,
  OperatorTransformation,
  SourceTransformation,
} from '../../operators/transformation.js';
import { registerErrorClass, TidemarkError } from '../../state/errors.js';
import type {
  CheckpointInfo,
  CheckpointStorage,
  CommitOptions,
} from '../../state/storage/checkpoint-storage.js';
import { StorageError } from '../../state/storage/checkpoint-storage.js';
import { ManualClock } from '../clock.js';
import { StreamExecutionEnvironment } from '../environment.js';
import { ResultCollector } from '../execution/results.js';
import type { ProgressCheckpoints } from '../execution/scheduler.js';
import type { RunnerEvent } from '../job-runner.js';
import { RestartStrategies } from '../restart-strategies.js';
import { FINAL_CHECKPOINT_ID, type Task } from '../task/task.js';
import { CheckNotExercisedError } from './not-exercised.js';
import { assertSameResults, canonical, diffResults } from './properties.js';
import { type SimulationOptions, SimulationPolicy } from './simulation.js';

/** The error an injected failure throws (in a user function, which wraps it as its own failure). */
export class InjectedFailure extends TidemarkError {
  constructor(readonly at: string) {
    super('INJECTED_FAILURE', `injected failure at ${at}`);
    this.name = 'InjectedFailure';
  }
}
registerErrorClass('InjectedFailure', InjectedFailure);

/** Where a planned failure strikes. */
export type FailureSite =
  /** A call of `injector.point()` in your functions. */
  | 'function'
  /** A source subtask, right after it read (and emitted) a record. */
  | 'source'
  /** A sink at a checkpoint's barrier, before it pre-commits (its `snapshotState`). */
  | 'sink-pre-commit'
  /** A sink right after it committed a completed checkpoint (the restore commits it again). */
  | 'sink-commit'
  /** The checkpoint storage writing a chunk (the checkpoint fails). */
  | 'storage-write'
  /** The checkpoint storage, before it commits a checkpoint (the checkpoint fails). */
  | 'storage-commit'
  /** The checkpoint storage, after it committed a checkpoint, the reply lost (an ambiguous commit). */
  | 'storage-commit-lost';

/** Every failure site. */
export const FAILURE_SITES: readonly FailureSite[] = [
  'function',
  'source',
  'sink-pre-commit',
  'sink-commit',
  'storage-write',
  'storage-commit',
  'storage-commit-lost',
];

/** One failure of a plan: at the `nth` occasion at `at` once `afterCheckpoint` checkpoints completed. */
export interface PlannedFailure {
  at: FailureSite;
  /**
   * Strikes only once this many checkpoints completed in the run, restarts included (default 0:
   * from the start). The job's final checkpoint does not count.
   */
  afterCheckpoint?: number;
  /** At the n-th occasion at its site from then on (default 1), over all subtasks and restarts. */
  nth?: number;
}

const SITE_WORDS: Record<FailureSite, string> = {
  function: 'call of injector.point()',
  source: 'record read by a source',
  'sink-pre-commit': 'sink pre-commit',
  'sink-commit': 'sink commit',
  'storage-write': 'chunk write',
  'storage-commit': 'checkpoint commit',
  'storage-commit-lost': 'checkpoint commit',
};

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/** A planned failure in words: `the 2nd record read by a source after 1 completed checkpoint`. */
export function describeFailure(f: PlannedFailure): string {
  const after = f.afterCheckpoint ?? 0;
  return `the ${ordinal(f.nth ?? 1)} ${SITE_WORDS[f.at]} ${after === 0 ? 'from the start' : `after ${plural(after, 'completed checkpoint')}`}`;
}

/** Options of {@link failurePlans}. */
export interface FailurePlanOptions {
  /** Where failures may strike (default: every site but `function`). */
  sites?: readonly FailureSite[];
  /** At most this many failures (default 3; at least 1). */
  maxFailures?: number;
  /** `afterCheckpoint` from 1 to this (default 3). */
  maxCheckpoint?: number;
  /** `nth` from 1 to this (default 8). */
  maxNth?: number;
}

/**
 * Arbitrary failure plans for {@link checkExactlyOnce}: one to `maxFailures` failures, each after a
 * completed checkpoint (so that it restores from one), printed readably in counterexamples.
 */
export function failurePlans(options: FailurePlanOptions = {}): fc.Arbitrary<PlannedFailure[]> {
  const sites = options.sites ?? FAILURE_SITES.filter((s) => s !== 'function');
  const failure = fc.record({
    at: fc.constantFrom(...sites),
    afterCheckpoint: fc.integer({ min: 1, max: options.maxCheckpoint ?? 3 }),
    nth: fc.integer({ min: 1, max: options.maxNth ?? 8 }),
  });
  return fc.array(failure, { minLength: 1, maxLength: Math.max(1, options.maxFailures ?? 3) }).map((plan) =>
    Object.defineProperty(plan, fc.toStringMethod, {
      value: () => plan.map(describeFailure).join('; '),
      enumerable: false,
    }),
  );
}

/** The failures of one run, as they strike. */
class FailurePlan {
  private readonly entries: { failure: PlannedFailure; seen: number; struck: boolean }[];
  private readonly completed = new Set<number>();
  /** What struck, in order. */
  readonly struck: string[] = [];
  constructor(failures: readonly PlannedFailure[]) {
    this.entries = failures.map((failure) => ({ failure, seen: 0, struck: false }));
  }
  /** Checkpoints (not the final one) completed so far. */
  get checkpoints(): number {
    return this.completed.size;
  }
  /** Checkpoint `id` completed (told by whoever sees it first). */
  noteCheckpoint(id: number): void {
    this.completed.add(id);
  }
  /** True if a failure is planned at `site` (occasions elsewhere need no hook). */
  has(site: FailureSite): boolean {
    return this.entries.some((e) => e.failure.at === site);
  }
  /** An occasion at `site`: throws {@link InjectedFailure} if a planned failure strikes here. */
  occasion(site: FailureSite, what: string): void {
    for (const e of this.entries) {
      if (e.struck || e.failure.at !== site || this.completed.size < (e.failure.afterCheckpoint ?? 0))
        continue;
      if (++e.seen < (e.failure.nth ?? 1)) continue;
      e.struck = true;
      const at = `${what} (${describeFailure(e.failure)})`;
      this.struck.push(at);
      throw new InjectedFailure(at);
    }
  }
}

/**
 * Call `point()` from user functions where a failure may strike; it throws at the planned calls:
 * those given here (call numbers over the whole run, restarts included), and those of the check's
 * failure plan (`{ at: 'function' }`).
 */
export class FailureInjector {
  private calls = 0;
  private plan: FailurePlan;
  /** Failures thrown so far. */
  thrown = 0;
  constructor(failAtCalls: Iterable<number> = []) {
    this.plan = new FailurePlan([...failAtCalls].map((n) => ({ at: 'function' as const, nth: n })));
  }
  /** Throws {@link InjectedFailure} if this call is planned to fail. */
  point(label = 'user function'): void {
    const n = ++this.calls;
    try {
      this.plan.occasion('function', `${label} (call ${n})`);
    } catch (e) {
      this.thrown++;
      throw e;
    }
  }
  /** Calls so far. */
  get count(): number {
    return this.calls;
  }
  /** @internal the check's plan takes over. */
  usePlan(plan: FailurePlan): this {
    this.plan = plan;
    return this;
  }
}

/** Failures of a {@link FaultyStorage}, by call number of each operation (counted from 1). */
export interface StorageFaults {
  /** `writeChunk` calls that fail (nothing written). */
  writeChunk?: number[];
  /** `commit` calls that fail before committing. */
  commitBefore?: number[];
  /** `commit` calls that commit, then fail as if the reply was lost (an ambiguous commit). */
  commitAfter?: number[];
}

/** A checkpoint storage that fails on purpose (wraps a real one). */
export class FaultyStorage implements CheckpointStorage {
  private writes = 0;
  private commits = 0;
  /** Faults injected so far. */
  injected = 0;
  constructor(
    readonly inner: CheckpointStorage,
    private readonly faults: StorageFaults,
  ) {}
  get description(): string {
    return `faulty(${this.inner.description})`;
  }
  open(): Promise<void> {
    return this.inner.open();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  newEpoch(jobId: string): Promise<number> {
    return this.inner.newEpoch(jobId);
  }
  currentEpoch(jobId: string): Promise<number> {
    return this.inner.currentEpoch(jobId);
  }
  async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    if (this.faults.writeChunk?.includes(++this.writes)) {
      this.injected++;
      throw new StorageError(`injected failure writing chunk ${chunkId}`, { jobName: jobId });
    }
    return this.inner.writeChunk(jobId, chunkId, data);
  }
  readChunk(jobId: string, chunkId: string): Promise<Uint8Array> {
    return this.inner.readChunk(jobId, chunkId);
  }
  async commit(
    jobId: string,
    epoch: number,
    checkpointId: number,
    metadata: Uint8Array,
    chunkIds: readonly string[],
    options?: CommitOptions,
  ): Promise<void> {
    const n = ++this.commits;
    if (this.faults.commitBefore?.includes(n)) {
      this.injected++;
      throw new StorageError(`injected failure before committing checkpoint ${checkpointId}`, {
        jobName: jobId,
        checkpointId,
      });
    }
    await this.inner.commit(jobId, epoch, checkpointId, metadata, chunkIds, options);
    if (this.faults.commitAfter?.includes(n)) {
      this.injected++;
      throw new StorageError(`injected failure after committing checkpoint ${checkpointId} (reply lost)`, {
        jobName: jobId,
        checkpointId,
      });
    }
  }
  latest(jobId: string): Promise<number | undefined> {
    return this.inner.latest(jobId);
  }
  list(jobId: string): Promise<CheckpointInfo[]> {
    return this.inner.list(jobId);
  }
  readMetadata(jobId: string, checkpointId: number): Promise<Uint8Array> {
    return this.inner.readMetadata(jobId, checkpointId);
  }
  delete(jobId: string, checkpointId: number): Promise<void> {
    return this.inner.delete(jobId, checkpointId);
  }
  listJobs(): Promise<string[]> {
    return this.inner.listJobs();
  }
}

/** A faulty storage whose failures are also those of a failure plan. */
class PlannedStorage extends FaultyStorage {
  constructor(
    inner: CheckpointStorage,
    faults: StorageFaults,
    private readonly plan: FailurePlan,
  ) {
    super(inner, faults);
  }
  override async writeChunk(jobId: string, chunkId: string, data: Uint8Array): Promise<void> {
    this.plan.occasion('storage-write', `writing chunk ${chunkId}`);
    return super.writeChunk(jobId, chunkId, data);
  }
  override async commit(
    jobId: string,
    epoch: number,
    checkpointId: number,
    metadata: Uint8Array,
    chunkIds: readonly string[],
    options?: CommitOptions,
  ): Promise<void> {
    this.plan.occasion('storage-commit', `committing checkpoint ${checkpointId}`);
    await super.commit(jobId, epoch, checkpointId, metadata, chunkIds, options);
    this.plan.occasion(
      'storage-commit-lost',
      `committing checkpoint ${checkpointId} (committed, reply lost)`,
    );
  }
}

/**
 * The simulation's seeded schedule, which also takes a checkpoint every `everyRecords` records
 * read by the sources, at most `ceil(everyRecords / source subtasks)` by each: a source subtask's
 * step stops at those bounds, the checkpoint is triggered (if every task still runs: a checkpoint
 * is only taken then; once one is declined, the sources go on freely), and the sources read
 * nothing while it is in flight, so that what follows a checkpoint's completion is the same
 * whatever the seed (a failure planned "after checkpoint 1" strikes at the records after the first
 * bound), and no source subtask runs far ahead of the others and finishes early (which would end
 * the checkpoints). Counting starts again with each attempt. It also notes how many records each
 * source subtask read in all, for the defaults of the checks.
 */
class ProgressPolicy extends SimulationPolicy {
  private tasks: readonly Task[] | undefined;
  private sources: Task[] = [];
  /** Records each source subtask had read at the last checkpoint. */
  private baselines = new Map<Task, number>();
  private quota = 0;
  private declined = false;
  private inFlight = false;
  /** The last checkpoint this policy triggered (or adopted). */
  private own = 0;
  /** Records read by each source subtask, once every task finished. */
  readBySubtask: number[] = [];
  constructor(
    options: SimulationOptions,
    clock: ManualClock,
    private readonly everyRecords: number,
  ) {
    super(options, clock);
  }
  /**
   * Whether every source subtask ended its input: a checkpoint completed then (FLIP-147 takes them
   * after tasks finish) restores a run with nothing left to read, so it exercises nothing.
   */
  sourcesEnded(): boolean {
    return (
      this.sources.length > 0 && this.sources.every((t) => t.status !== 'created' && t.status !== 'running')
    );
  }
  private readBy(t: Task): number {
    return t.members[0]!.metrics.numRecordsOut.count;
  }
  private since(t: Task): number {
    return this.readBy(t) - (this.baselines.get(t) ?? 0);
  }
  private sinceAll(): number {
    let n = 0;
    for (const t of this.sources) n += this.since(t);
    return n;
  }
  /** What `task` may read now (infinite if it is not held to a bound). */
  private allowance(task: Task): number {
    if (!task.isSource || this.tasks === undefined || this.declined) return Number.POSITIVE_INFINITY;
    if (this.inFlight) return 0;
    return Math.max(0, Math.min(this.everyRecords - this.sinceAll(), this.quota - this.since(task)));
  }
  override budget(task?: Task): number {
    const b = super.budget();
    // NOTE: a step with no budget still injects a pending barrier.
    return task === undefined ? b : Math.min(b, this.allowance(task));
  }
  holds(task: Task, now: number): boolean {
    return (
      task.isSource && task.pendingTrigger === undefined && task.wakeTime > now && this.allowance(task) === 0
    );
  }
  checkpoint(tasks: readonly Task[], checkpoints: ProgressCheckpoints): void {
    if (tasks !== this.tasks) {
      this.tasks = tasks;
      this.sources = tasks.filter((t) => t.isSource);
      this.baselines = new Map();
      this.quota = Math.ceil(this.everyRecords / Math.max(1, this.sources.length));
      this.declined = false;
      this.own = 0;
    }
    // NOTE: only a checkpoint of its own holds the sources back (one triggered by time, when
    // asked for as well, does not: time passes while they wait, and they would starve).
    this.inFlight = checkpoints.busy && checkpoints.lastCompleted < this.own;
    if (this.declined || this.inFlight) return;
    const due =
      this.sinceAll() >= this.everyRecords ||
      this.sources.every((t) => t.status !== 'running' || this.since(t) >= this.quota);
    if (!due) return;
    if (checkpoints.busy) {
      // One triggered by time is in flight: it stands for the one due (else the sources, held at
      // their bounds, would wait for a gap between time-triggered checkpoints that never comes).
      this.adopt(checkpoints.lastTriggered);
      return;
    }
    const id = checkpoints.trigger();
    if (id === undefined) this.declined = true;
    else this.adopt(id);
  }
  private adopt(id: number): void {
    for (const t of this.sources) this.baselines.set(t, this.readBy(t));
    this.own = id;
    this.inFlight = true;
  }
  allFinished(tasks: readonly Task[]): void {
    this.readBySubtask = tasks.filter((t) => t.isSource).map((t) => this.readBy(t));
  }
}

/** The records a job writes: a collected stream (`collectCommitted()`), or your own sink's. */
export interface JobOutput<T> {
  /** The records, read once the run ended (for your own sink: what it made visible). */
  readonly values: readonly T[];
}

/** Options of {@link checkExactlyOnce}. */
export interface ExactlyOnceOptions<T> {
  /** A fresh storage for each run (both runs get their own). */
  storage: () => CheckpointStorage;
  /**
   * Where failures strike. Default: the 1st call of `injector.point()` after checkpoint 1 (if the
   * job calls it), a record read by a source half-way between checkpoints 1 and 2, a sink at the
   * next checkpoint's barrier (before it pre-commits), a sink's commit after checkpoint 2, and the
   * storage's commit after checkpoint 3 with its reply lost.
   * See {@link failurePlans} for arbitrary plans.
   */
  failures?: readonly PlannedFailure[];
  /** Calls of `injector.point()` that throw (call numbers over the whole run; instead of the default plan). */
  failAtCalls?: number[];
  /** Storage failures by call number (instead of the default plan). */
  storageFaults?: StorageFaults;
  /**
   * A checkpoint every this many records read by the sources, at most `ceil(n / source subtasks)`
   * by each (default: a quarter of the records the failure-free run read, fewer if the source
   * subtask that read the fewest would otherwise finish before the 3rd checkpoint; at least 1).
   */
  checkpointEveryRecords?: number;
  /** Interleaving and timing (default 1). */
  seed?: number;
  /** Default 2. */
  parallelism?: number;
  /** Also take a checkpoint every this much (simulated) processing time (default: only by records). */
  checkpointIntervalMs?: number;
  /** Checkpoint failures tolerated before a restart (default 0: a failed checkpoint restarts the job). */
  tolerableCheckpointFailures?: number;
  normalize?: (values: T[]) => unknown[];
}

/** What happened in the faulty run. */
export interface ExactlyOnceReport {
  restarts: number;
  injectedFailures: number;
  /** Checkpoints that completed in the faulty run (the final one included). */
  completedCheckpoints: number;
  /** The checkpoints the restarts restored from, in order. */
  restoredFrom: number[];
  /** The failures that struck, in words. */
  failures: string[];
  /** Records read by the sources between checkpoints. */
  checkpointEveryRecords: number;
}

/** What one run of a check saw. */
interface RunOutcome<T> {
  values: T[];
  restarts: number;
  /** Completed checkpoints, the final one included. */
  completed: number;
  /** Completed checkpoints that are not the job's final one. */
  completedBeforeEnd: number;
  restoredFrom: number[];
  /** Restores from a checkpoint taken before the end (not the final one). */
  restoresBeforeEnd: number;
  sourceRecords: number;
  /** Records each source subtask read (if every task finished). */
  readBySubtask: number[];
  finished: boolean;
}

interface RunSpec {
  parallelism: number;
  seed: number;
  storage: CheckpointStorage;
  everyRecords: number;
  intervalMs: number | undefined;
  tolerableFailures?: number;
  plan?: FailurePlan;
  results?: ResultCollector;
  restore?: 'latest';
  /** Cancel the run once this many checkpoints (not the final one) completed. */
  stopAfter?: number;
  jobId: string;
}

/** Wraps the job's sources and sinks so that the plan's failures strike in them. */
function plant(env: StreamExecutionEnvironment, plan: FailurePlan): void {
  for (const t of env.transformations) {
    if (t.type === 'source' && plan.has('source')) {
      const create = t.factory;
      const name = t.name;
      (t as { factory: OperatorFactory } & SourceTransformation).factory = () => {
        const op = create() as SourceOperator<unknown>;
        const emit = op.emitRecord.bind(op);
        op.emitRecord = (value, timestamp) => {
          emit(value, timestamp);
          plan.occasion('source', `source '${name}' after reading a record`);
        };
        return op;
      };
    }
    if (t.type === 'operator' && t.isSink) {
      const create = t.factory;
      const name = t.name;
      (t as { factory: OperatorFactory } & OperatorTransformation).factory = () => {
        const op = create();
        const snapshot = op.snapshotState.bind(op);
        const notify = op.notifyCheckpointComplete.bind(op);
        op.snapshotState = (id) => {
          plan.occasion('sink-pre-commit', `sink '${name}' at the barrier of checkpoint ${id}`);
          snapshot(id);
        };
        op.notifyCheckpointComplete = (id) => {
          // NOTE: sinks hear of a completed checkpoint before the job's client does.
          if (id !== FINAL_CHECKPOINT_ID) plan.noteCheckpoint(id);
          const r = notify(id);
          const after = () =>
            plan.occasion(
              'sink-commit',
              `sink '${name}' after committing ${id === FINAL_CHECKPOINT_ID ? 'at the end of the job' : `checkpoint ${id}`}`,
            );
          if (r instanceof Promise) return r.then(after);
          try {
            after();
          } catch (e) {
            return Promise.reject(e);
          }
          return undefined;
        };
        return op;
      };
    }
  }
}

/** Runs a job once, under the seed, with checkpoints by progress and the plan's failures. */
async function runOnce<T>(
  build: (env: StreamExecutionEnvironment) => JobOutput<T>,
  spec: RunSpec,
): Promise<RunOutcome<T>> {
  const env = new StreamExecutionEnvironment({ parallelism: spec.parallelism, bufferCapacity: 4 });
  env.enableCheckpointing(spec.intervalMs ?? Number.POSITIVE_INFINITY, {
    tolerableFailures: spec.tolerableFailures ?? 0,
  });
  env.setCheckpointStorage(spec.storage);
  env.setRestartStrategy(RestartStrategies.fixedDelay(1000, 0));
  const out = build(env);
  if (spec.plan !== undefined) plant(env, spec.plan);
  const clock = new ManualClock(0);
  const policy = new ProgressPolicy(
    { seed: spec.seed, clockTickProbability: 0.2, maxClockTickMs: 10 },
    clock,
    spec.everyRecords,
  );
  const finals = new Set<number>();
  let completed = 0;
  let completedBeforeEnd = 0;
  const restoredFrom: number[] = [];
  const onEvent = (e: RunnerEvent) => {
    if (e.type === 'restored') restoredFrom.push(e.checkpointId);
    if (e.type !== 'checkpoint') return;
    completed++;
    if (e.stats.final || policy.sourcesEnded()) {
      finals.add(e.stats.checkpointId);
      return;
    }
    completedBeforeEnd++;
    spec.plan?.noteCheckpoint(e.stats.checkpointId);
    if (completedBeforeEnd === spec.stopAfter) client.cancel();
  };
  const client = env.executeAsync({
    clock,
    policy,
    timeSliceMs: 1_000_000,
    jobId: spec.jobId,
    strictRecords: true,
    onEvent,
    ...(spec.results === undefined ? {} : { results: spec.results }),
    ...(spec.restore === undefined ? {} : { restore: spec.restore }),
  });
  const result = await client.result;
  return {
    values: [...out.values],
    restarts: client.restarts(),
    completed,
    completedBeforeEnd,
    restoredFrom,
    restoresBeforeEnd: restoredFrom.filter((id) => !finals.has(id)).length,
    sourceRecords: result.metrics.sourceRecords,
    readBySubtask: policy.readBySubtask,
    finished: result.status === 'FINISHED',
  };
}

/**
 * The default of `checkpointEveryRecords`, from an uninterrupted run: `needed` checkpoints, and
 * one more interval, fit in the records read (so a checkpoint every quarter of them for 3), and
 * before the source subtask that read the fewest records finishes (each reads at most
 * `ceil(every / source subtasks)` records between checkpoints).
 */
function defaultEvery(reference: RunOutcome<unknown>, needed: number): number {
  const bySubtask = reference.readBySubtask;
  const fewest = bySubtask.length === 0 ? reference.sourceRecords : Math.min(...bySubtask);
  const perSubtask = Math.max(1, Math.floor((fewest - 1) / needed));
  return Math.max(
    1,
    Math.min(Math.floor(reference.sourceRecords / (needed + 1)), perSubtask * Math.max(1, bySubtask.length)),
  );
}

/** A hint when a source subtask read nothing (it finished at once, so no checkpoint was taken). */
function idleSubtasks(reference: RunOutcome<unknown>): string {
  const idle = reference.readBySubtask.filter((n) => n === 0).length;
  if (idle === 0) return '';
  return ` ${idle} of the ${plural(reference.readBySubtask.length, 'source subtask')} read no record and finished at once (a source with fewer splits than the parallelism?): run at a lower parallelism.`;
}

/** The default plan (see {@link ExactlyOnceOptions.failures}) for checkpoints every `every` records. */
function defaultPlan(every: number): PlannedFailure[] {
  return [
    { at: 'function', afterCheckpoint: 1 },
    { at: 'source', afterCheckpoint: 1, nth: Math.max(1, Math.ceil(every / 2)) },
    // NOTE: at the next barrier every record since the checkpoint has gone through every
    // function: the restore replays them all, which state kept outside managed state (in a
    // closure) does not survive, whatever the interleaving.
    { at: 'sink-pre-commit', afterCheckpoint: 1 },
    { at: 'sink-commit', afterCheckpoint: 2 },
    { at: 'storage-commit-lost', afterCheckpoint: 3 },
  ];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Runs `job` failure-free, then with the planned failures (restarting from the latest checkpoint
 * each time), and checks that the committed outputs are equal. Checkpoints are taken every
 * `checkpointEveryRecords` records read by the sources, and failures placed after completed
 * checkpoints, so that restarts restore from them; a run that restored from none fails with
 * {@link CheckNotExercisedError}. Use `collectCommitted()` (or another exactly-once sink, read
 * through `{ values }`) for the output; call `injector.point()` where failures may also strike.
 * Runs with strict records.
 */
export async function checkExactlyOnce<T>(
  job: (env: StreamExecutionEnvironment, injector: FailureInjector) => JobOutput<T>,
  options: ExactlyOnceOptions<T>,
): Promise<ExactlyOnceReport> {
  const seed = options.seed ?? 1;
  const parallelism = options.parallelism ?? 2;
  const normalize = options.normalize ?? ((v: T[]) => v);
  const common = {
    parallelism,
    seed,
    intervalMs: options.checkpointIntervalMs,
    jobId: 'exactly-once-check',
    ...(options.tolerableCheckpointFailures === undefined
      ? {}
      : { tolerableFailures: options.tolerableCheckpointFailures }),
  };
  const reference = await runOnce((env) => job(env, new FailureInjector()), {
    ...common,
    storage: options.storage(),
    everyRecords: Number.POSITIVE_INFINITY,
  });
  const every = options.checkpointEveryRecords ?? defaultEvery(reference, 3);
  const explicit = options.failAtCalls !== undefined || options.storageFaults !== undefined;
  const failures = [
    ...(options.failures ?? (explicit ? [] : defaultPlan(every))),
    ...(options.failAtCalls ?? []).map((n) => ({ at: 'function' as const, nth: n })),
  ];
  const plan = new FailurePlan(failures);
  const injector = new FailureInjector().usePlan(plan);
  const storage = new PlannedStorage(options.storage(), options.storageFaults ?? {}, plan);
  const faulty = await runOnce((env) => job(env, injector), {
    ...common,
    storage,
    everyRecords: every,
    plan,
  });
  const injected = plan.struck.length + storage.injected;
  const report: ExactlyOnceReport = {
    restarts: faulty.restarts,
    injectedFailures: injected,
    completedCheckpoints: faulty.completed,
    restoredFrom: faulty.restoredFrom,
    failures: [...plan.struck],
    checkpointEveryRecords: every,
  };
  const replay = `checkExactlyOnce(job, { seed: ${seed}, parallelism: ${parallelism}, checkpointEveryRecords: ${every}${options.failures === undefined ? '' : `, failures: ${JSON.stringify(options.failures)}`}${options.failAtCalls === undefined ? '' : `, failAtCalls: ${JSON.stringify(options.failAtCalls)}`}${options.storageFaults === undefined ? '' : `, storageFaults: ${JSON.stringify(options.storageFaults)}`}, storage })`;
  const what = `${plural(injected, 'injected failure')}, ${plural(faulty.restarts, 'restart')}, restored from ${faulty.restoredFrom.length === 0 ? 'no checkpoint' : `checkpoint${faulty.restoredFrom.length === 1 ? '' : 's'} ${faulty.restoredFrom.join(', ')}`}; a checkpoint every ${plural(every, 'record')} read, seed ${seed}`;
  const struck = plan.struck.map((f) => `    ${f}\n`).join('');
  const diff = diffResults(canonical(normalize(reference.values)), canonical(normalize(faulty.values)));
  if (diff !== '')
    throw new Error(
      `committed output differs from the failure-free run (${what}):\n${struck === '' ? '' : `  failures:\n${struck}`}${diff}\n  replay: ${replay}`,
    );
  if (faulty.restoresBeforeEnd === 0 || faulty.completedBeforeEnd === 0)
    throw new CheckNotExercisedError(
      `checkExactlyOnce restored from no checkpoint, so it checked nothing of the job's checkpoints: the run completed ${plural(faulty.completedBeforeEnd, 'checkpoint')} before its end (the sources read ${plural(reference.sourceRecords, 'record')}, a checkpoint every ${every}; a checkpoint counts only while a source subtask still reads: one taken after every source ended replays nothing), with ${what}. Give the job more input (a few records per source subtask), or lower checkpointEveryRecords, or plan failures after a checkpoint.${idleSubtasks(reference)}`,
    );
  return report;
}

/** Options of {@link checkJobRescaling}. */
export interface RescalingOptions<T> {
  /** Parallelism before the stop. */
  from: number;
  /** Parallelism after the restore. */
  to: number;
  /** Stop (cancel) the first run once this many checkpoints completed (default 2). */
  stopAfterCheckpoints?: number;
  storage: () => CheckpointStorage;
  seed?: number;
  /**
   * A checkpoint every this many records read by the sources, at most `ceil(n / source subtasks)`
   * by each (default: the records of an uninterrupted run divided by the checkpoints before the
   * stop plus 2, fewer if the source subtask that read the fewest would otherwise finish before
   * the stop; at least 1).
   */
  checkpointEveryRecords?: number;
  /** Also take a checkpoint every this much (simulated) processing time (default: only by records). */
  checkpointIntervalMs?: number;
  normalize?: (values: T[]) => unknown[];
}

/**
 * Runs `job` at parallelism `from` with checkpoints, stops it after some checkpoints, restores
 * the latest one at parallelism `to` and runs to the end; checks that the committed output equals
 * a run without the stop. Use `collectCommitted()` for the output. A job that finished before its
 * stop fails the check ({@link CheckNotExercisedError}).
 */
export async function checkJobRescaling<T>(
  job: (env: StreamExecutionEnvironment) => CollectedStream<T>,
  options: RescalingOptions<T>,
): Promise<{ restoredFrom: number | undefined }> {
  const seed = options.seed ?? 1;
  const normalize = options.normalize ?? ((v: T[]) => v);
  const stopAfter = options.stopAfterCheckpoints ?? 2;
  const common = { seed, intervalMs: options.checkpointIntervalMs, jobId: 'rescaling-check' };
  // NOTE: the two runs after the reference share one result collector: what the first committed
  // before its stop and what the second committed after the restore.
  let id = '';
  const build = (env: StreamExecutionEnvironment) => {
    const out = job(env);
    id = out.id;
    return out;
  };
  const refResults = new ResultCollector();
  const reference = await runOnce(build, {
    ...common,
    parallelism: options.from,
    storage: options.storage(),
    everyRecords: Number.POSITIVE_INFINITY,
    results: refResults,
  });
  const expected = (refResults.values.get(id) ?? []) as T[];
  const every = options.checkpointEveryRecords ?? defaultEvery(reference, stopAfter + 1);
  const storage = options.storage();
  const results = new ResultCollector();
  const first = await runOnce(build, {
    ...common,
    parallelism: options.from,
    storage,
    everyRecords: every,
    results,
    stopAfter,
  });
  if (first.finished)
    throw new CheckNotExercisedError(
      `checkJobRescaling: the job finished before its stop after ${plural(stopAfter, 'checkpoint')} (it completed ${first.completedBeforeEnd} before its end; the sources read ${plural(reference.sourceRecords, 'record')}, a checkpoint every ${every}), so nothing was restored at parallelism ${options.to}. Give the job more input, or lower checkpointEveryRecords or stopAfterCheckpoints.${idleSubtasks(reference)}`,
    );
  const second = await runOnce(build, {
    ...common,
    parallelism: options.to,
    storage,
    everyRecords: every,
    results,
    restore: 'latest',
  });
  const restoredFrom = second.restoredFrom[0];
  assertSameResults(
    `committed output after stopping at parallelism ${options.from} after checkpoint ${restoredFrom} and restoring it at parallelism ${options.to} differs from an uninterrupted run (seed ${seed}, a checkpoint every ${plural(every, 'record')} read)`,
    normalize(expected),
    normalize((results.values.get(id) ?? []) as T[]),
  );
  return { restoredFrom };
}
