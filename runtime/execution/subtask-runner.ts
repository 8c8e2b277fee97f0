/**
 * The subtasks that run in one thread, as their tasks see the runtime (the `TaskHost`): wired to
 * each other and, on a slot, to subtasks elsewhere; scheduled by one loop; with the watermark
 * alignment groups of their sources. A run in this thread has one (`LocalExecutor`); so does each
 * slot of a distributed run (`Slot`), which talks to the job manager instead of a coordinator here.
 */
import type { AlignmentGroup, Clock, LineWriter, ResultSink } from '../../operators/contract.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { CheckpointCoordinator } from '../checkpoint/coordinator.js';
import { isManualClock } from '../clock.js';
import type { JobGraph } from '../graph/job-graph.js';
import type { SubtaskMetrics } from '../metrics.js';
import { sampleTask, type TaskSample } from '../observe/sample.js';
import { subtaskTailRate, type TailRecord, tailTap } from '../observe/tail.js';
import type { CheckpointTiming, Task, TaskHost } from '../task/task.js';
import { AlignmentGroups } from './alignment.js';
import type { JobLifecycle } from './lifecycle.js';
import { BufferedStdout } from './results.js';
import { Scheduler, type SchedulingPolicy } from './scheduler.js';
import { type Placement, wireTasks } from './wiring.js';

/** Options of a {@link SubtaskRunner}. */
export interface SubtaskRunnerOptions {
  readonly lifecycle: JobLifecycle;
  readonly clock: Clock;
  readonly stdout: LineWriter;
  readonly results: ResultSink;
  readonly attemptNumber: number;
  readonly runId: string;
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  /** Freeze every record an operator emits (strict records, for tests). */
  readonly strictRecords?: boolean | undefined;
  /** State to start from, per subtask index and operator id. */
  readonly restore: readonly (ReadonlyMap<string, OperatorSubtaskState> | undefined)[] | undefined;
  /** Which subtasks run here, and the channel ends to the others. */
  readonly placement: Placement;
  readonly policy: SchedulingPolicy | undefined;
  readonly budget: number;
  readonly sliceMs: number;
  /** The job's checkpoint coordinator, when it runs in this thread. */
  readonly coordinator?: CheckpointCoordinator | undefined;
  /** This thread's snapshot writes, when it writes its own (a slot). */
  readonly snapshotWrites?: { readonly writesInFlight: number } | undefined;
  /** A task took the synchronous part of a checkpoint. */
  acknowledge(
    task: Task,
    checkpointId: number,
    snapshots: IncrementalSnapshot[],
    timing: CheckpointTiming,
  ): void;
  onTaskStatus?(task: Task): void;
  /** After each pass of the scheduler (see `SchedulerOptions.afterPass`). */
  afterPass?(progressed: boolean): void;
  /** See {@link SchedulerOptions.detectStalls}. */
  readonly detectStalls: boolean;
  /** See {@link SchedulerOptions.observe}. */
  readonly observe?: boolean | undefined;
}

/** One thread's subtasks (see the module comment). */
export class SubtaskRunner implements TaskHost {
  readonly jobName: string;
  readonly clock: Clock;
  readonly stdout: LineWriter;
  readonly results: ResultSink;
  readonly attemptNumber: number;
  readonly runId: string;
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  readonly strictRecords: boolean;
  readonly snapshotsInSyncPart: boolean;
  readonly chooseChannel?: (task: Task, candidates: number) => number;
  readonly tasks: Task[];
  private readonly scheduler: Scheduler;
  private readonly alignment: AlignmentGroups;
  private closed = false;

  constructor(
    graph: JobGraph,
    private readonly options: SubtaskRunnerOptions,
  ) {
    this.jobName = graph.jobName;
    this.clock = options.clock;
    this.stdout = options.stdout;
    this.results = options.results;
    this.attemptNumber = options.attemptNumber;
    this.runId = options.runId;
    this.checkpointMode = options.checkpointMode;
    this.strictRecords = options.strictRecords === true;
    this.snapshotsInSyncPart = options.policy?.snapshotsInSyncPart === true;
    const choose = options.policy?.chooseChannel;
    if (choose !== undefined) this.chooseChannel = (t, n) => choose.call(options.policy, t, n);
    this.alignment = new AlignmentGroups(() => this.wakeUp());
    this.tasks = wireTasks(graph, this, options.restore, options.placement);
    this.scheduler = new Scheduler(this.tasks, options.lifecycle, {
      clock: options.clock,
      stdout: options.stdout,
      policy: options.policy,
      budget: options.budget,
      sliceMs: options.sliceMs,
      coordinator: options.coordinator,
      ...(options.snapshotWrites === undefined ? {} : { snapshotWrites: options.snapshotWrites }),
      ...(options.afterPass === undefined ? {} : { afterPass: (p: boolean) => options.afterPass!(p) }),
      detectStalls: options.detectStalls,
      observe: options.observe,
    });
  }

  // ---- TaskHost ----

  wakeUp(): void {
    this.scheduler.wakeUp();
  }
  wakeAt(): void {
    // The scheduler reads `task.wakeTime` when it decides how long to sleep.
  }
  wakeWhenIdle(task: Task): void {
    this.scheduler.wakeWhenIdle(task);
  }
  blockOn(task: Task, promise: Promise<unknown>): void {
    this.scheduler.blockOn(task, promise);
  }
  alignmentGroup(group: string, task: Task): AlignmentGroup {
    return this.alignment.member(group, task);
  }
  acknowledgeCheckpoint(
    task: Task,
    checkpointId: number,
    snapshots: IncrementalSnapshot[],
    timing: CheckpointTiming,
  ): void {
    this.options.acknowledge(task, checkpointId, snapshots, timing);
  }
  onTaskStatus(task: Task): void {
    this.options.onTaskStatus?.(task);
  }

  // ---- the run ----

  /** Opens the tasks and runs them until every one finished, or the run stops. */
  async run(): Promise<void> {
    const { lifecycle, clock } = this.options;
    const unsubscribe = isManualClock(clock) ? clock.onAdvance(() => this.wakeUp()) : undefined;
    try {
      for (const t of this.tasks) {
        try {
          t.open();
        } catch (e) {
          lifecycle.fail(e, t.describe());
          return;
        }
      }
      await this.scheduler.run();
    } finally {
      unsubscribe?.();
      this.flush();
    }
  }

  /** The job finished: the sinks publish what they pre-committed at the end of input. */
  async publish(): Promise<void> {
    await Promise.all(this.tasks.map((t) => t.finalCommit()));
  }

  /** Closes every operator (once). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.flush();
    for (const t of this.tasks) t.closeOperators();
  }

  /** Writes what print sinks buffered. */
  flush(): void {
    if (this.stdout instanceof BufferedStdout) this.stdout.flush();
  }

  /** A sample of every subtask here (see `observe/sample.ts`). */
  samples(): TaskSample[] {
    const pending = performance.now() - this.scheduler.passStartedAt;
    return this.tasks.map((t) => sampleTask(t, pending));
  }

  /**
   * Turns the live tail of vertex `vertexId` on (at most `ratePerSecond` records a second of the
   * whole vertex, to `emit`) or off (`undefined`) in its subtasks here.
   */
  tail(vertexId: number, ratePerSecond: number | undefined, emit: (r: TailRecord) => void): void {
    for (const t of this.tasks) {
      if (t.vertex.id !== vertexId) continue;
      t.tapOutput(
        ratePerSecond === undefined
          ? undefined
          : tailTap(vertexId, t.subtaskIndex, subtaskTailRate(ratePerSecond, t.vertex.parallelism), emit),
      );
    }
  }

  /** The current metrics of every subtask here. */
  metrics(): SubtaskMetrics[] {
    return this.tasks.flatMap((t) => t.metrics());
  }
}
