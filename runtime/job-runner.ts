/**
 * The job runner: runs a job graph to its end through failures. It opens the checkpoint storage
 * and starts a new epoch (so an older runner of the same job can no longer commit), restores from
 * a checkpoint or savepoint if asked, runs the job, and when a task fails restarts it from the
 * latest completed checkpoint under the restart strategy.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock, LineWriter } from '../operators/contract.js';
import { describeErrorChain, InvalidArgumentError, JobFailedError, TidemarkError } from '../state/errors.js';
import { IncompatibleCheckpointError } from '../state/snapshot/format.js';
import type { StateBackendConfig } from '../state/state-backends.js';
import {
  CheckpointNotFoundError,
  type CheckpointStorage,
  CorruptChunkError,
  FencedError,
  StorageError,
} from '../state/storage/checkpoint-storage.js';
import type {
  CheckpointCoordinator,
  CheckpointFailure,
  CheckpointingOptions,
  CheckpointStats,
} from './checkpoint/coordinator.js';
import { type LoadedCheckpoint, loadCheckpoint, loadLatestCheckpoint } from './checkpoint/restore.js';
import { ClusterExecutor, type SlotProvider } from './distributed/cluster.js';
import { type ExecutionOptions, LocalExecutor } from './execution/local-executor.js';
import { type JobResult, ResultCollector } from './execution/results.js';
import type { JobGraph } from './graph/job-graph.js';
import type { JobMetricsSnapshot } from './metrics.js';
import type { JobObserver } from './observe/job-observer.js';
import type { TaskSample } from './observe/sample.js';
import { RestartBackoff, RestartStrategies, type RestartStrategy } from './restart-strategies.js';

/**
 * Where to start from: the latest completed checkpoint, a checkpoint or savepoint by id, or the
 * latest one if there is one and else the beginning (`latest-or-fresh`). With `latest`, a job this
 * storage knows (started before) but none of whose checkpoints completed starts from the
 * beginning too; a job id the storage has never seen is an error (a wrong id or storage).
 */
export type RestoreTarget = 'latest' | 'latest-or-fresh' | number;

/** What happens during a run, for progress reporting and logs. */
export type RunnerEvent =
  | { type: 'restored'; checkpointId: number }
  /**
   * A restore from the latest checkpoint found none, and the job starts from the beginning:
   * `started` when the job was started with this storage before (and stopped before any of its
   * checkpoints completed), else it is unknown there and `latest-or-fresh` asked for this.
   */
  | { type: 'fresh-start'; jobId: string; storage: string; started: boolean }
  | { type: 'fallback'; checkpointId: number; error: Error }
  | { type: 'checkpoint'; stats: CheckpointStats }
  /** A checkpoint failed; the job fails once more than `tolerableFailures` fail in a row. */
  | ({ type: 'checkpoint-failed'; jobId: string } & CheckpointFailure)
  /** Every subtask of an attempt is deployed (on several slots: every slot has loaded the job). */
  | { type: 'running'; attempt: number }
  /** Every subtask of an attempt finished its input (the final checkpoint and the sinks' last commit follow). */
  | { type: 'finished'; attempt: number }
  | { type: 'restart'; attempt: number; delayMs: number; error: Error; fromCheckpoint: number | undefined };

/** How a run is placed on several slots (worker threads), each importing the job module. */
export interface DistributedSettings {
  slots: number;
  /** A job module: its default export is `job(...)`; every slot imports it. */
  jobPath: string;
  /** Job name, parallelism and max parallelism set from outside the module (as the CLI does). */
  overrides?:
    | { jobName?: string; parallelism?: number; maxParallelism?: number; stateBackend?: StateBackendConfig }
    | undefined;
}

/** What a caller of a run sets (the options of `execute`, see `ExecuteOptions`). */
export interface RunSettings {
  /** Processing-time clock (default: the wall clock). */
  clock?: Clock | undefined;
  /** Where print sinks write lines (default: standard output). */
  stdout?: LineWriter | undefined;
  /** Events a task may process per step (default 512). */
  budget?: number | undefined;
  /** Milliseconds of work between yields to the event loop (default 10). */
  timeSliceMs?: number | undefined;
  /** Storage to restore from when checkpointing is off. */
  storage?: CheckpointStorage | undefined;
  /** Start from this checkpoint or savepoint of the job. */
  restore?: RestoreTarget | undefined;
  /** The id under which checkpoints are stored (default: the job name). */
  jobId?: string | undefined;
  /** Drop state of operators that are no longer in the job instead of failing. */
  allowNonRestoredState?: boolean | undefined;
  /** Called on what happens during the run (restores, checkpoints, restarts). */
  onEvent?: ((event: RunnerEvent) => void) | undefined;
  /** Run on several slots (worker threads), each importing the job module. */
  distributed?: DistributedSettings | undefined;
}

/**
 * Options of a run: the caller's settings, and what the runtime and the testing toolkit add.
 * @internal
 */
export interface RunOptions
  extends Omit<
      ExecutionOptions,
      | 'restore'
      | 'attemptNumber'
      | 'results'
      | 'checkpointing'
      | 'runId'
      | 'tails'
      | 'onTail'
      | keyof RunSettings
    >,
    RunSettings {
  /** Checkpointing (interval, storage, mode ...); off when undefined. */
  checkpointing?: CheckpointingOptions | undefined;
  /** Default: none without checkpointing, exponential delay with it (as Flink). */
  restartStrategy?: RestartStrategy | undefined;
  /** Where result sinks report (share one across runs to compare committed output). */
  results?: ResultCollector | undefined;
  /** Run on several slots; `provider` starts them (default: worker threads of this process). */
  distributed?: (DistributedSettings & { provider?: SlotProvider | undefined }) | undefined;
  /** Watches the run (REST, metrics): tasks are timed and sampled, checkpoints reported. */
  observer?: JobObserver | undefined;
}

/** One attempt of a run: in this thread, or on several slots. */
interface Execution {
  readonly coordinator: CheckpointCoordinator | undefined;
  run(): Promise<JobResult>;
  cancel(): void;
  metrics(): JobMetricsSnapshot;
  samples(): (TaskSample & { slot?: number })[];
  setTail(vertexId: number, ratePerSecond: number | undefined): void;
}

/**
 * Runs one job with checkpoints and restarts.
 * @internal
 */
export class JobRunner {
  readonly jobId: string;
  readonly results: ResultCollector;
  private executor: Execution | undefined;
  private cancelled = false;
  private attempt = 0;
  /** Identifies this run (one per runner, shared by its restarts). */
  readonly runId = randomBytes(6).toString('hex');
  private lastCheckpointId = 0;
  /** The storage knew the job before this run (a job manager had started it). */
  private startedBefore = false;
  /** The last checkpoint (not savepoint) this run restored or completed. */
  private lastCompletedId: number | undefined;
  /** A checkpoint (not a savepoint) completed in this run: restarts resume from the latest one. */
  private checkpointedThisRun = false;
  /** The newest checkpoint id in the storage when the run started (a later one is this run's). */
  private newestIdAtStart = 0;
  private wakeCancel: (() => void) | undefined;
  /** Live tails on (vertex id → records per second), for every attempt (see `observe/tail.ts`). */
  private readonly tails = new Map<number, number>();

  constructor(
    readonly graph: JobGraph,
    private readonly options: RunOptions = {},
  ) {
    this.jobId = options.jobId ?? graph.jobName;
    this.results = options.results ?? new ResultCollector();
    options.observer?.bind(graph, this.jobId, options.checkpointing);
  }

  /** The storage checkpoints are read from and written to, if any. */
  get storage(): CheckpointStorage | undefined {
    return this.options.checkpointing?.storage ?? this.options.storage;
  }

  /** Runs to the end (or failure beyond the restart strategy, or cancellation). */
  async run(): Promise<JobResult> {
    const observer = this.options.observer;
    if (observer === undefined) return this.runUnobserved();
    observer.start({
      triggerSavepoint: () => this.triggerSavepoint(),
      cancel: () => this.cancel(),
      tail: (vertexId, rate) => this.setTail(vertexId, rate),
      slotRuntime: () => (this.executor instanceof ClusterExecutor ? this.executor.slotRuntime() : []),
    });
    try {
      const result = await this.runUnobserved();
      observer.ended(result.status === 'FINISHED' ? 'FINISHED' : 'CANCELED');
      return result;
    } catch (e) {
      observer.ended(this.cancelled ? 'CANCELED' : 'FAILED', this.cancelled ? undefined : e);
      throw e;
    }
  }

  private async runUnobserved(): Promise<JobResult> {
    const started = performance.now();
    const storage = this.storage;
    const o = this.options;
    let epoch = 0;
    if (storage !== undefined) {
      await storage.open();
      // NOTE: read before this run starts a new epoch: was the job ever started with this storage?
      // A job id it has never seen fails here, before the new epoch would make it known.
      if (o.restore === 'latest' || o.restore === 'latest-or-fresh') {
        this.startedBefore = (await storage.currentEpoch(this.jobId)) > 0;
        if (o.restore === 'latest' && !this.startedBefore && (await storage.latest(this.jobId)) === undefined)
          throw new TidemarkError(
            'CHECKPOINT_ERROR',
            `job '${this.jobId}' has no completed checkpoint in ${storage.description} to restore, and was never started with this storage (a wrong job id or storage? --restore latest-or-fresh starts a job without checkpoints from the beginning)`,
            { jobName: this.jobId },
          );
      }
      if (o.checkpointing !== undefined) {
        epoch = await storage.newEpoch(this.jobId);
        this.lastCheckpointId = (await storage.list(this.jobId)).reduce(
          (m, c) => Math.max(m, c.checkpointId),
          0,
        );
        this.newestIdAtStart = this.lastCheckpointId;
      }
    }
    try {
      const strategy =
        o.restartStrategy ??
        (o.checkpointing === undefined ? RestartStrategies.none() : RestartStrategies.exponentialDelay());
      const backoff = new RestartBackoff(strategy);
      let loaded: LoadedCheckpoint | undefined =
        o.restore === undefined ? undefined : await this.load(o.restore, false);
      for (;;) {
        if (loaded !== undefined) {
          this.lastCompletedId = loaded.checkpointId;
          this.emit({ type: 'restored', checkpointId: loaded.checkpointId });
          // NOTE: the new checkpoints go to the storage the restore read, for the same job: they
          // refer to the restored chunks of the key groups the run leaves as they were restored.
          if (o.checkpointing !== undefined)
            for (const states of loaded.restore)
              for (const s of states?.values() ?? []) s.sharedBase = loaded.checkpointId;
        }
        const {
          checkpointing: _cp,
          storage: _s,
          restartStrategy: _r,
          restore: _t,
          jobId: _j,
          allowNonRestoredState: _a,
          onEvent: _e,
          results: _res,
          distributed,
          observer,
          ...execution
        } = o;
        const checkpointing =
          o.checkpointing === undefined
            ? undefined
            : {
                options: o.checkpointing,
                jobId: this.jobId,
                epoch,
                lastCheckpointId: this.lastCheckpointId,
                restoredFrom: loaded?.metadata,
                onComplete: (stats: CheckpointStats) => {
                  if (!stats.savepoint) {
                    this.lastCompletedId = stats.checkpointId;
                    this.checkpointedThisRun = true;
                  }
                  o.onEvent?.({ type: 'checkpoint', stats });
                },
                onFailure: (failure: CheckpointFailure) =>
                  o.onEvent?.({ type: 'checkpoint-failed', jobId: this.jobId, ...failure }),
                listener: observer,
              };
        const executor: Execution =
          distributed !== undefined && (distributed.slots > 1 || distributed.provider !== undefined)
            ? new ClusterExecutor(this.graph, {
                slots: distributed.slots,
                provider: distributed.provider,
                jobPath: distributed.jobPath,
                jobId: this.jobId,
                overrides: distributed.overrides ?? {},
                restore: loaded?.restore,
                attemptNumber: this.attempt,
                runId: this.runId,
                results: this.results,
                stdout: execution.stdout,
                checkpointing,
                onRunning: () => this.emit({ type: 'running', attempt: this.attempt }),
                onFinished: () => o.onEvent?.({ type: 'finished', attempt: this.attempt }),
                observe: observer !== undefined,
                tails: this.tails,
                onTail: observer === undefined ? undefined : (records) => observer.onTail(records),
              })
            : new LocalExecutor(this.graph, {
                ...execution,
                ...(loaded === undefined ? {} : { restore: loaded.restore }),
                attemptNumber: this.attempt,
                runId: this.runId,
                results: this.results,
                ...(checkpointing === undefined ? {} : { checkpointing }),
                onFinished: () => o.onEvent?.({ type: 'finished', attempt: this.attempt }),
                observe: observer !== undefined,
                tails: this.tails,
                ...(observer === undefined ? {} : { onTail: (records) => observer.onTail(records) }),
              });
        this.executor = executor;
        observer?.attach(() => executor.samples(), this.attempt);
        if (this.cancelled) executor.cancel();
        // In this thread the subtasks are deployed as the run starts.
        if (executor instanceof LocalExecutor) this.emit({ type: 'running', attempt: this.attempt });
        try {
          const result = await executor.run();
          return { ...result, durationMs: performance.now() - started };
        } catch (e) {
          // NOTE: a commit of the failed attempt may still be under way: let it land (or fail)
          // before reading the latest checkpoint, or its retention could delete what we restore.
          await executor.coordinator?.ioSettled();
          this.lastCheckpointId = Math.max(this.lastCheckpointId, executor.coordinator?.lastTriggeredId ?? 0);
          // NOTE: fenced, another job manager runs the job now: a restart would run beside it.
          if (this.cancelled || causedBy(e, FencedError)) throw e;
          loaded = await this.restart(e, backoff);
        }
      }
    } finally {
      await this.executor?.coordinator?.ioSettled();
      await storage?.close();
    }
  }

  /**
   * After a failure: restarts under the restart strategy (or throws the failure, once it says no
   * more), waits its delay, and reads the checkpoint the restart resumes from: the latest one
   * completed, or what the run started from. A read that fails because the storage is unreachable
   * (an outage) is one more failure: the strategy decides whether and when to try again, and each
   * try is one `restart` event (one log line) naming what failed.
   */
  private async restart(failure: unknown, backoff: RestartBackoff): Promise<LoadedCheckpoint | undefined> {
    const o = this.options;
    let error = failure;
    for (;;) {
      const decision = backoff.onFailure(Date.now());
      if (!decision.restart) {
        if (this.attempt === 0 || !(error instanceof Error)) throw error;
        throw new JobFailedError(
          `${error.message} (after ${this.attempt} restart(s); not restarting: ${decision.reason})`,
          { jobName: this.graph.jobName },
          error.cause ?? error,
        );
      }
      this.attempt++;
      // Best effort here, for a second at most (to say where the restart resumes); an unreachable
      // storage is tried below, after the delay.
      await Promise.race([this.adoptCommittedCheckpoint().catch(() => undefined), sleep(1000)]);
      this.emit({
        type: 'restart',
        attempt: this.attempt,
        delayMs: decision.delayMs,
        error: error as Error,
        fromCheckpoint: this.lastCompletedId,
      });
      if (decision.delayMs > 0) {
        const ac = new AbortController();
        this.wakeCancel = () => ac.abort();
        await sleep(decision.delayMs, undefined, { signal: ac.signal }).catch(() => {});
        this.wakeCancel = undefined;
      }
      if (this.cancelled) throw failure;
      // A restart resumes from the latest checkpoint completed in this run, or from what the run started from.
      let target = this.checkpointedThisRun ? 'latest' : o.restore;
      try {
        if (target !== 'latest' && (await this.adoptCommittedCheckpoint())) target = 'latest';
        if (target === undefined) return undefined;
        return await this.load(target, true);
      } catch (e) {
        if (!isUnreachableStorage(e)) throw e;
        error = new StorageError(
          `restart attempt ${this.attempt} of job '${this.jobId}' could not read ${target === 'latest' ? 'its latest checkpoint' : `checkpoint ${target}`}: ${(e as Error).message}`,
          { jobName: this.jobId, cause: e },
        );
      }
    }
  }

  /**
   * Whether the storage holds a checkpoint of this run that the run did not hear completing: a
   * commit may complete in the storage just before the failure reaches the coordinator (a task
   * manager killed then). Such a checkpoint is this run's latest too (and what a restart says it
   * resumes from).
   */
  private async adoptCommittedCheckpoint(): Promise<boolean> {
    if (this.storage === undefined || this.options.checkpointing === undefined)
      return this.checkpointedThisRun;
    const latest = await this.storage.latest(this.jobId);
    if (latest === undefined || latest <= this.newestIdAtStart || latest <= (this.lastCompletedId ?? 0))
      return this.checkpointedThisRun;
    this.checkpointedThisRun = true;
    this.lastCompletedId = latest;
    return true;
  }

  private async load(target: RestoreTarget, afterFailure: boolean): Promise<LoadedCheckpoint | undefined> {
    const storage = this.storage;
    if (storage === undefined)
      throw new TidemarkError(
        'CHECKPOINT_ERROR',
        `job '${this.jobId}': cannot restore without a checkpoint storage (set one with --checkpoint-storage)`,
        {
          jobName: this.jobId,
        },
      );
    const allow = this.options.allowNonRestoredState === true;
    if (target === 'latest' || target === 'latest-or-fresh') {
      const loaded = await loadLatestCheckpoint(storage, this.jobId, this.graph, {
        allowNonRestoredState: allow,
        onFallback: (id, error) => this.options.onEvent?.({ type: 'fallback', checkpointId: id, error }),
      });
      if (loaded !== undefined || afterFailure) return loaded;
      // NOTE: a supervisor that always restarts with `--restore latest` must be able to restart a
      // job killed before its first checkpoint completed: the storage knows it (its epoch, see
      // `run`), and no exactly-once sink published anything without a completed checkpoint, so it
      // starts afresh. (Savepoints alone are not restored by `latest`.)
      this.options.onEvent?.({
        type: 'fresh-start',
        jobId: this.jobId,
        storage: storage.description,
        started: this.startedBefore,
      });
      return undefined;
    }
    return loadCheckpoint(storage, this.jobId, target, this.graph, { allowNonRestoredState: allow });
  }

  /** Reports an event to the observer and the caller. */
  private emit(e: RunnerEvent): void {
    this.options.observer?.onEvent(e);
    this.options.onEvent?.(e);
  }

  /** Turns the live tail of a vertex on (records per second) or off (`undefined`), now and after restarts. */
  setTail(vertexId: number, ratePerSecond: number | undefined): void {
    if (ratePerSecond === undefined) this.tails.delete(vertexId);
    else this.tails.set(vertexId, ratePerSecond);
    this.executor?.setTail(vertexId, ratePerSecond);
  }

  /** Stops the job (the run resolves with status CANCELLED). */
  cancel(): void {
    this.cancelled = true;
    this.executor?.cancel();
    this.wakeCancel?.();
  }

  /** Takes a savepoint of the running job; resolves with its id. */
  triggerSavepoint(): Promise<number> {
    const c = this.executor?.coordinator;
    if (c === undefined)
      return Promise.reject(
        new TidemarkError('CHECKPOINT_ERROR', `job '${this.jobId}': savepoints need checkpointing enabled`, {
          jobName: this.jobId,
        }),
      );
    return c.triggerSavepoint();
  }

  /** Kills one slot's worker thread (runs on several slots only). */
  async killSlot(slot: number): Promise<void> {
    const e = this.executor;
    if (!(e instanceof ClusterExecutor))
      throw new InvalidArgumentError('killSlot() needs a run on several slots');
    await e.killSlot(slot);
  }

  /** Figures of the last completed checkpoint of the current attempt. */
  lastCheckpoint(): CheckpointStats | undefined {
    return this.executor?.coordinator?.lastCompleted;
  }

  /** Restarts so far. */
  get restarts(): number {
    return this.attempt;
  }

  /** Current metrics. */
  metrics(): JobMetricsSnapshot {
    return (
      this.executor?.metrics() ?? { timeMs: Date.now(), operators: [], sourceRecords: 0, sinkRecords: 0 }
    );
  }
}

function causedBy(e: unknown, cls: abstract new (...args: never[]) => Error): boolean {
  let c: unknown = e;
  for (let i = 0; c instanceof Error && i < 8; i++) {
    if (c instanceof cls) return true;
    c = (c as Error).cause;
  }
  return false;
}

/**
 * A one-line description of a runner event (for logs).
 * @internal
 */
export function describeEvent(e: RunnerEvent): string {
  switch (e.type) {
    case 'restored':
      return `restored from checkpoint ${e.checkpointId}`;
    case 'fresh-start':
      return e.started
        ? `job '${e.jobId}' was started before but none of its checkpoints completed (${e.storage}): starting from the beginning`
        : `job '${e.jobId}' has no checkpoint in ${e.storage}: starting from the beginning (restore latest-or-fresh)`;
    case 'fallback':
      return `checkpoint ${e.checkpointId} cannot be restored (${e.error.message}); trying the previous one`;
    case 'running':
      return `running (attempt ${e.attempt})`;
    case 'finished':
      return `every subtask finished (attempt ${e.attempt})`;
    case 'checkpoint-failed':
      return `checkpoint ${e.checkpointId} of job '${e.jobId}' failed (${e.consecutiveFailures} in a row, ${e.tolerableFailures} tolerated${e.consecutiveFailures > e.tolerableFailures ? ': the job fails' : ''}): ${e.reason.replace(new RegExp(`^checkpoint ${e.checkpointId}: `), '')}`;
    case 'checkpoint':
      return `${e.stats.final ? 'final checkpoint' : 'checkpoint'} ${e.stats.checkpointId} completed in ${e.stats.durationMs.toFixed(0)} ms (${e.stats.bytesWritten} bytes written)`;
    case 'restart':
      return `restarting (attempt ${e.attempt}) in ${e.delayMs} ms ${e.fromCheckpoint === undefined ? 'from the beginning' : `from checkpoint ${e.fromCheckpoint}`} after: ${describeErrorChain(e.error).split('\n')[0]}`;
  }
}

/**
 * Whether reading a checkpoint failed because the storage could not be reached or read now (an
 * outage, worth trying again), not because of what is stored (damaged, missing or incompatible).
 */
function isUnreachableStorage(e: unknown): boolean {
  if (!(e instanceof StorageError) || e instanceof CorruptChunkError || e instanceof CheckpointNotFoundError)
    return false;
  const cause = (e as Error).cause;
  return !(cause instanceof CorruptChunkError || cause instanceof IncompatibleCheckpointError);
}
