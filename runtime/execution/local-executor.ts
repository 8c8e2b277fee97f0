/**
 * The local executor: runs every subtask of a job graph in this thread, with the job's checkpoint
 * coordinator, through one attempt's lifecycle (see `lifecycle.ts`).
 */
import { randomBytes } from 'node:crypto';
import type { Clock, LineWriter } from '../../operators/contract.js';
import type { CheckpointMetadata } from '../../state/snapshot/format.js';
import type { OperatorSubtaskState } from '../../state/snapshot/types.js';
import {
  CheckpointCoordinator,
  type CheckpointFailure,
  type CheckpointingOptions,
  type CheckpointListener,
  type CheckpointStats,
} from '../checkpoint/coordinator.js';
import { SystemClock } from '../clock.js';
import type { JobGraph } from '../graph/job-graph.js';
import { aggregateMetrics, type JobMetricsSnapshot } from '../metrics.js';
import type { TaskSample } from '../observe/sample.js';
import type { TailRecord } from '../observe/tail.js';
import type { Task } from '../task/task.js';
import { JobLifecycle } from './lifecycle.js';
import { BufferedStdout, type JobResult, ResultCollector } from './results.js';
import type { SchedulingPolicy } from './scheduler.js';
import { SubtaskRunner } from './subtask-runner.js';
import { ALL_HERE } from './wiring.js';

/** Options of one execution. */
export interface ExecutionOptions {
  /** Processing-time clock (default: the wall clock). */
  clock?: Clock;
  /** Where print sinks write lines (default: standard output). */
  stdout?: LineWriter;
  /** Scheduling (default: round-robin over runnable tasks). */
  policy?: SchedulingPolicy;
  /** Events a task may process per step (default 512). */
  budget?: number;
  /** Milliseconds of work between yields to the event loop (default 10). */
  timeSliceMs?: number;
  /** State to start from, per subtask index and operator id. */
  restore?: Map<string, OperatorSubtaskState>[];
  /** 0 on the first run, +1 per restart. */
  attemptNumber?: number;
  /** Identifies this run of the job (default: a fresh random id). */
  runId?: string;
  /** Where result sinks report (default: a fresh one; a job runner shares one across restarts). */
  results?: ResultCollector;
  /** Checkpointing of this execution (set up by the job runner). */
  checkpointing?: {
    options: CheckpointingOptions;
    jobId: string;
    epoch: number;
    /** Ids of new checkpoints start after this one. */
    lastCheckpointId: number;
    /** The checkpoint the run restored from, whose chunks the first checkpoints may refer to. */
    restoredFrom?: CheckpointMetadata | undefined;
    onComplete?: (stats: CheckpointStats) => void;
    onFailure?: (failure: CheckpointFailure) => void;
    listener?: CheckpointListener | undefined;
  };
  /**
   * Freeze every record an operator emits, so that a function that changes a record in place
   * throws where it does (strict records, for tests; default false). Runs in this thread only.
   */
  strictRecords?: boolean;
  /** Called once every subtask finished its input (before the final checkpoint). */
  onFinished?: () => void;
  /** The job is observed: time the tasks' steps (see `SchedulerOptions.observe`). */
  observe?: boolean;
  /** Live tails on at the start: vertex id → records per second (see `observe/tail.ts`). */
  tails?: ReadonlyMap<number, number>;
  /** Where the records of live tails go. */
  onTail?: (records: TailRecord[]) => void;
}

/** Runs one job graph in this thread. */
export class LocalExecutor {
  readonly jobName: string;
  readonly results: ResultCollector;
  /** The checkpoint coordinator, when checkpointing is on. */
  readonly coordinator: CheckpointCoordinator | undefined;
  private readonly lifecycle: JobLifecycle;
  private readonly runner: SubtaskRunner;
  private readonly clock: Clock;
  private readonly onFinished: (() => void) | undefined;
  private readonly onTail: ((records: TailRecord[]) => void) | undefined;

  constructor(
    readonly graph: JobGraph,
    options: ExecutionOptions = {},
  ) {
    this.jobName = graph.jobName;
    this.clock = options.clock ?? new SystemClock();
    this.results = options.results ?? new ResultCollector();
    this.lifecycle = new JobLifecycle(graph.jobName);
    this.onFinished = options.onFinished;
    const cp = options.checkpointing;
    const self = this;
    this.coordinator =
      cp === undefined
        ? undefined
        : new CheckpointCoordinator(
            cp.options,
            {
              jobId: cp.jobId,
              get tasks() {
                return self.runner.tasks;
              },
              graph,
              now: () => this.clock.now(),
              fail: (e) => this.lifecycle.fail(e),
              wake: () => this.runner.wakeUp(),
              listener: cp.listener,
              ...(cp.onComplete === undefined ? {} : { onComplete: cp.onComplete }),
              ...(cp.onFailure === undefined ? {} : { onFailure: cp.onFailure }),
            },
            cp.epoch,
            cp.lastCheckpointId,
            cp.restoredFrom,
          );
    this.runner = new SubtaskRunner(graph, {
      lifecycle: this.lifecycle,
      clock: this.clock,
      stdout: options.stdout ?? new BufferedStdout(),
      results: this.results,
      attemptNumber: options.attemptNumber ?? 0,
      runId: options.runId ?? randomBytes(6).toString('hex'),
      checkpointMode: cp?.options.mode ?? 'exactly-once',
      strictRecords: options.strictRecords === true,
      restore: options.restore,
      placement: ALL_HERE,
      policy: options.policy,
      budget: options.budget ?? 512,
      sliceMs: options.timeSliceMs ?? 10,
      coordinator: this.coordinator,
      acknowledge: (task, id, snapshots, timing) =>
        this.coordinator?.acknowledge(task, id, snapshots, timing),
      detectStalls: true,
      observe: options.observe === true,
    });
    this.onTail = options.onTail;
    for (const [vertexId, rate] of options.tails ?? []) this.setTail(vertexId, rate);
  }

  /** Turns the live tail of a vertex on (records per second) or off (`undefined`). */
  setTail(vertexId: number, ratePerSecond: number | undefined): void {
    const onTail = this.onTail;
    if (onTail === undefined) return;
    this.runner.tail(vertexId, ratePerSecond, (r) => onTail([r]));
  }

  /** Every subtask of the job. */
  get tasks(): readonly Task[] {
    return this.runner.tasks;
  }

  /** Stops the job; `run` resolves with status CANCELLED. */
  cancel(): void {
    this.lifecycle.cancel();
  }

  /** A sample of every subtask (for the job observer). */
  samples(): TaskSample[] {
    return this.runner.samples();
  }

  /** Current metrics of every operator. */
  metrics(): JobMetricsSnapshot {
    return aggregateMetrics(this.runner.metrics(), Date.now());
  }

  /** Runs the job to its end. */
  async run(): Promise<JobResult> {
    try {
      await this.runner.run();
      if (!this.lifecycle.stopped && this.runner.tasks.every((t) => t.status === 'finished')) {
        this.onFinished?.();
        await this.lifecycle.complete(this.coordinator, this.clock.now(), () => this.runner.publish());
      }
    } finally {
      this.coordinator?.stop();
      this.runner.close();
    }
    return this.lifecycle.result(this.metrics(), this.results.values);
  }
}
