/**
 * The execution environment users build jobs with: the stream API of `operators/` plus execution
 * (`execute`, `executeAsync`), checkpointing, restarts, and the execution plan
 * (`getExecutionPlan`).
 */
import type { CollectedStream } from '../operators/data-stream.js';
import { type EnvironmentOptions, StreamEnvironment } from '../operators/environment.js';
import { InvalidArgumentError } from '../state/errors.js';
import type { CheckpointStorage } from '../state/storage/checkpoint-storage.js';
import type { CheckpointingOptions, CheckpointStats } from './checkpoint/coordinator.js';
import type { JobResult, ResultCollector } from './execution/results.js';
import type { SchedulingPolicy } from './execution/scheduler.js';
import { buildJobGraph, type JobGraph, type JobGraphOptions } from './graph/job-graph.js';
import { formatPlan, type PlanFormat, type PlanOptions } from './graph/plan.js';
import { JobRunner, type RunOptions, type RunSettings } from './job-runner.js';
import type { JobMetricsSnapshot } from './metrics.js';
import type { RestartStrategy } from './restart-strategies.js';

/** Options of `execute`. */
export interface ExecuteOptions extends RunSettings, JobGraphOptions {
  /**
   * Strict records, for your own test runs: every record an operator emits is deeply frozen (its
   * plain objects and arrays), so that a function that changes a record in place throws there,
   * naming its operator, instead of changing it for the operators after it (default false; the
   * runs of `tidemark/testing` have it on). Runs in this thread only; it costs a freeze per record.
   */
  strictRecords?: boolean | undefined;
  // NOTE: the members below are the runtime's and the testing toolkit's (a seeded schedule, a
  // shared result collector, slots on task managers). Marked internal, they are stripped from the
  // published declarations (`stripInternal`): they are not API.
  /** @internal how tasks are scheduled (default: round-robin). */
  policy?: SchedulingPolicy | undefined;
  /** @internal where result sinks report (default: a fresh collector). */
  results?: ResultCollector | undefined;
  /** @internal {@link RunSettings.distributed}, and what starts the slots. */
  distributed?: RunOptions['distributed'];
  /** @internal the job manager's view of the run (REST, metrics), when it is watched. */
  observer?: RunOptions['observer'];
}

/** Checkpointing settings of an environment (the storage is set separately). */
export type CheckpointConfig = Omit<CheckpointingOptions, 'intervalMs' | 'storage'>;

/** A running job. */
export interface JobClient {
  readonly jobName: string;
  /** Settles when the job ends: resolves when finished or cancelled, rejects when it fails. */
  readonly result: Promise<JobResult>;
  /** Stops the job. */
  cancel(): void;
  /** Current metrics. */
  metrics(): JobMetricsSnapshot;
  /** Takes a savepoint (checkpointing must be on); resolves with its id. */
  triggerSavepoint(): Promise<number>;
  /** Figures of the last completed checkpoint. */
  lastCheckpoint(): CheckpointStats | undefined;
  /** Restarts after failures so far. */
  restarts(): number;
  /**
   * Kills one slot's worker thread of a run on several slots (a crash, to test recovery).
   * @internal
   */
  killSlot(slot: number): Promise<void>;
}

/**
 * What the `tidemark` command does when a job module starts a job itself while it is loaded
 * (`await env.execute()` at its top level): as Flink's context environment, it sees every
 * execution of a program it runs.
 * @internal
 */
export interface ExecutionContext {
  /** Called before the job starts; throws to refuse it. */
  beforeExecute(jobName: string): void;
  /** Called with the started job. */
  started(client: JobClient): void;
}

/**
 * NOTE: on `globalThis` under a registered symbol, so that a job module that resolves another
 * copy of tidemark (its project's) reports to the command too.
 */
const EXECUTION_CONTEXT = Symbol.for('tidemark.executionContext');

/**
 * Installs (or, with undefined, removes) the {@link ExecutionContext} of this process.
 * @internal
 */
export function setExecutionContext(context: ExecutionContext | undefined): void {
  (globalThis as Record<symbol, unknown>)[EXECUTION_CONTEXT] = context;
}

/** Builds and runs a streaming job. */
export class StreamExecutionEnvironment extends StreamEnvironment {
  private checkpointInterval: number | undefined;
  private checkpointConfig: CheckpointConfig = {};
  private checkpointStorage: CheckpointStorage | undefined;
  private restartStrategy: RestartStrategy | undefined;

  /** A new environment. */
  static create(options: EnvironmentOptions = {}): StreamExecutionEnvironment {
    return new StreamExecutionEnvironment(options);
  }

  /** Takes a checkpoint every `intervalMs` of processing time (Flink's `enableCheckpointing`). */
  enableCheckpointing(intervalMs: number, config: CheckpointConfig = {}): this {
    if (!(intervalMs > 0))
      throw new InvalidArgumentError(`the checkpoint interval must be positive, got ${intervalMs}`);
    this.checkpointInterval = intervalMs;
    this.checkpointConfig = { ...this.checkpointConfig, ...config };
    return this;
  }

  /** Where checkpoints are kept (default when checkpointing: a storage in this process's memory). */
  setCheckpointStorage(storage: CheckpointStorage): this {
    this.checkpointStorage = storage;
    return this;
  }

  /** What happens when a task fails (default: none without checkpointing, exponential delay with it). */
  setRestartStrategy(strategy: RestartStrategy): this {
    this.restartStrategy = strategy;
    return this;
  }

  /** Whether checkpointing is on (`enableCheckpointing` was called). */
  isCheckpointingEnabled(): boolean {
    return this.checkpointInterval !== undefined;
  }

  /** The checkpoint storage set on this environment, if any. */
  getCheckpointStorage(): CheckpointStorage | undefined {
    return this.checkpointStorage;
  }

  /**
   * The validated job graph (operators, edges, chains).
   * @internal
   */
  getJobGraph(options: JobGraphOptions = {}): JobGraph {
    return buildJobGraph(this, options);
  }

  /** The execution plan as text, Graphviz dot or JSON; with `slots`, which slot runs what. */
  getExecutionPlan(format: PlanFormat = 'text', options: JobGraphOptions & PlanOptions = {}): string {
    const { slots, ...graphOptions } = options;
    return formatPlan(this.getJobGraph(graphOptions), format, slots === undefined ? {} : { slots });
  }

  /** Starts the job and returns a client for it. */
  executeAsync(options: ExecuteOptions = {}): JobClient {
    const graph = this.getJobGraph(options);
    const context = (globalThis as Record<symbol, unknown>)[EXECUTION_CONTEXT] as
      | ExecutionContext
      | undefined;
    context?.beforeExecute(graph.jobName);
    const storage = options.storage ?? this.checkpointStorage;
    let checkpointing: CheckpointingOptions | undefined;
    if (this.checkpointInterval !== undefined) {
      if (storage === undefined)
        throw new InvalidArgumentError(
          `job '${graph.jobName}': checkpointing needs a checkpoint storage: call setCheckpointStorage(...) (e.g. new MemoryCheckpointStorage() in tests)`,
        );
      checkpointing = { ...this.checkpointConfig, intervalMs: this.checkpointInterval, storage };
    }
    const runner = new JobRunner(graph, {
      ...options,
      storage,
      checkpointing,
      restartStrategy: this.restartStrategy,
    });
    const handles = this.collectedStreams;
    const result = runner.run().then((r) => {
      fillCollected(handles, r);
      return r;
    });
    const client: JobClient = {
      jobName: graph.jobName,
      result,
      cancel: () => runner.cancel(),
      metrics: () => runner.metrics(),
      triggerSavepoint: () => runner.triggerSavepoint(),
      lastCheckpoint: () => runner.lastCheckpoint(),
      restarts: () => runner.restarts,
      killSlot: (slot: number) => runner.killSlot(slot),
    };
    context?.started(client);
    return client;
  }

  /** Runs the job to its end (a bounded job) and returns its result. */
  execute(options: ExecuteOptions = {}): Promise<JobResult> {
    return this.executeAsync(options).result;
  }
}

function fillCollected(handles: readonly CollectedStream<unknown>[], result: JobResult): void {
  for (const h of handles) h.values = [...(result.results.get(h.id) ?? [])];
}
