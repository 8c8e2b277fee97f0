/**
 * Exactly-once checks: run a job with failures injected at chosen points — thrown from user
 * functions, and from the checkpoint storage (writing a chunk, before the commit, after the commit
 * with the reply lost) — restoring from the latest checkpoint each time, and compare the committed
 * output with a failure-free run: nothing lost, nothing twice.
 */
import type { CollectedStream } from '../../operators/data-stream.js';
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
import { RestartStrategies } from '../restart-strategies.js';
import { assertSameResults } from './properties.js';
import { SimulationPolicy } from './simulation.js';

/** The error an injected failure throws (in a user function, which wraps it as its own failure). */
export class InjectedFailure extends TidemarkError {
  constructor(readonly at: string) {
    super('INJECTED_FAILURE', `injected failure at ${at}`);
    this.name = 'InjectedFailure';
  }
}
registerErrorClass('InjectedFailure', InjectedFailure);

/**
 * Call `point()` from user functions; it throws once at each planned call number (counted over
 * the whole run, restarts included).
 */
export class FailureInjector {
  private calls = 0;
  private readonly plan: Set<number>;
  /** Failures thrown so far. */
  thrown = 0;
  constructor(failAtCalls: Iterable<number> = []) {
    this.plan = new Set(failAtCalls);
  }
  /** Throws {@link InjectedFailure} if this call is planned to fail. */
  point(label = 'user function'): void {
    const n = ++this.calls;
    if (this.plan.delete(n)) {
      this.thrown++;
      throw new InjectedFailure(`${label} (call ${n})`);
    }
  }
  /** Calls so far. */
  get count(): number {
    return this.calls;
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

/** Options of {@link checkExactlyOnce}. */
export interface ExactlyOnceOptions<T> {
  /** Calls of `injector.point()` that throw. */
  failAtCalls?: number[];
  /** Storage failures. */
  storageFaults?: StorageFaults;
  /** A fresh storage for each run (both runs get their own). */
  storage: () => CheckpointStorage;
  /** Interleaving and timing (default 1). */
  seed?: number;
  parallelism?: number;
  /** Processing time between checkpoints (default 20 ms of the simulated clock). */
  checkpointIntervalMs?: number;
  /** Checkpoint failures tolerated before a restart (default 0: a failed checkpoint restarts the job). */
  tolerableCheckpointFailures?: number;
  normalize?: (values: T[]) => unknown[];
}

/** What happened in the faulty run. */
export interface ExactlyOnceReport {
  restarts: number;
  injectedFailures: number;
  /** Checkpoints that completed in the faulty run. */
  completedCheckpoints: number;
}

/**
 * Runs `job` failure-free, then with the planned failures (restarting from the latest checkpoint
 * each time), and checks that the committed outputs are equal. Use `collectCommitted()` (or
 * another exactly-once sink) for the output; call `injector.point()` where failures may strike.
 */
export async function checkExactlyOnce<T>(
  job: (env: StreamExecutionEnvironment, injector: FailureInjector) => CollectedStream<T>,
  options: ExactlyOnceOptions<T>,
): Promise<ExactlyOnceReport> {
  const seed = options.seed ?? 1;
  const normalize = options.normalize ?? ((v: T[]) => v);
  const run = async (injector: FailureInjector, storage: CheckpointStorage) => {
    const env = new StreamExecutionEnvironment({ parallelism: options.parallelism ?? 2, bufferCapacity: 4 });
    env.enableCheckpointing(options.checkpointIntervalMs ?? 20, {
      tolerableFailures: options.tolerableCheckpointFailures ?? 0,
    });
    env.setCheckpointStorage(storage);
    env.setRestartStrategy(RestartStrategies.fixedDelay(1000, 0));
    const out = job(env, injector);
    const clock = new ManualClock(0);
    const policy = new SimulationPolicy({ seed, clockTickProbability: 0.2, maxClockTickMs: 10 }, clock);
    let completed = 0;
    const client = env.executeAsync({
      clock,
      policy,
      timeSliceMs: 1_000_000,
      jobId: 'exactly-once-check',
      onEvent: (e) => {
        if (e.type === 'checkpoint') completed++;
      },
    });
    await client.result;
    return { values: out.values, restarts: client.restarts(), completed };
  };
  const reference = await run(new FailureInjector(), options.storage());
  const injector = new FailureInjector(options.failAtCalls ?? []);
  const storage =
    options.storageFaults === undefined
      ? options.storage()
      : new FaultyStorage(options.storage(), options.storageFaults);
  const faulty = await run(injector, storage);
  const injected = injector.thrown + (storage instanceof FaultyStorage ? storage.injected : 0);
  assertSameResults(
    `committed output with ${injected} injected failure(s) (${faulty.restarts} restart(s), seed ${seed}) differs from the failure-free run`,
    normalize(reference.values),
    normalize(faulty.values),
  );
  return { restarts: faulty.restarts, injectedFailures: injected, completedCheckpoints: faulty.completed };
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
  checkpointIntervalMs?: number;
  normalize?: (values: T[]) => unknown[];
}

/**
 * Runs `job` at parallelism `from` with checkpoints, stops it after some checkpoints, restores
 * the latest one at parallelism `to` and runs to the end; checks that the committed output equals
 * a run without the stop. Use `collectCommitted()` for the output.
 */
export async function checkJobRescaling<T>(
  job: (env: StreamExecutionEnvironment) => CollectedStream<T>,
  options: RescalingOptions<T>,
): Promise<{ restoredFrom: number | undefined }> {
  const seed = options.seed ?? 1;
  const normalize = options.normalize ?? ((v: T[]) => v);
  const run = async (
    parallelism: number,
    storage: CheckpointStorage,
    results: ResultCollector,
    stopAfter?: number,
    restore?: 'latest',
  ) => {
    const env = new StreamExecutionEnvironment({ parallelism, bufferCapacity: 4 });
    env.enableCheckpointing(options.checkpointIntervalMs ?? 10);
    env.setCheckpointStorage(storage);
    const out = job(env);
    const clock = new ManualClock(0);
    const policy = new SimulationPolicy({ seed, clockTickProbability: 0.2, maxClockTickMs: 10 }, clock);
    let completed = 0;
    let restoredFrom: number | undefined;
    const client = env.executeAsync({
      clock,
      policy,
      timeSliceMs: 1_000_000,
      jobId: 'rescaling-check',
      results,
      ...(restore === undefined ? {} : { restore }),
      onEvent: (e) => {
        if (e.type === 'restored') restoredFrom = e.checkpointId;
        if (e.type === 'checkpoint' && ++completed === stopAfter) client.cancel();
      },
    });
    const result = await client.result;
    return { id: out.id, restoredFrom, finished: result.status === 'FINISHED' };
  };
  const refResults = new ResultCollector();
  const ref = await run(options.from, options.storage(), refResults);
  const storage = options.storage();
  const results = new ResultCollector();
  const first = await run(options.from, storage, results, options.stopAfterCheckpoints ?? 2);
  // A job that finished before it was stopped has nothing to resume (restoring would replay it).
  const second = first.finished
    ? { ...first, restoredFrom: undefined }
    : await run(options.to, storage, results, undefined, 'latest');
  assertSameResults(
    `committed output after stopping at parallelism ${options.from} and restoring at parallelism ${options.to} (checkpoint ${second.restoredFrom}) differs from an uninterrupted run`,
    normalize((refResults.values.get(ref.id) ?? []) as T[]),
    normalize((results.values.get(second.id) ?? []) as T[]),
  );
  return { restoredFrom: second.restoredFrom };
}
