/**
 * The local executor: runs every subtask of a job graph in this thread. Tasks are stepped by a
 * scheduler loop that never blocks: it does bounded work per task, yields to the event loop between
 * time slices (so I/O, async sources and timers make progress) and sleeps when nothing can run.
 *
 * NOTE: the scheduling is pluggable ({@link SchedulingPolicy}): the testing toolkit replaces the
 * round-robin loop with a seeded choice of task, budget and input channel, and a manual clock.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { AlignmentGroup, Clock, LineWriter, ResultSink } from '../operators/contract.js';

import { JobCancelledError, JobFailedError, TidemarkError } from '../state/errors.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../state/snapshot/types.js';
import {
  CheckpointCoordinator,
  type CheckpointingOptions,
  type CheckpointStats,
} from './checkpoint/coordinator.js';
import { isManualClock, SystemClock } from './clock.js';
import type { JobGraph, StreamEdge } from './graph/job-graph.js';
import { aggregateMetrics, type JobMetricsSnapshot } from './metrics.js';
import { Channel } from './task/channel.js';
import { Task, type TaskHost } from './task/task.js';
import { connectedSubtasks, createWriter, type OutChannel } from './task/writers.js';

/** Milliseconds of work between yields while checkpoint writes are in flight (see `loop`). */
const IO_SLICE_MS = 1;

/** Chooses which task runs next, with what budget, and which channel it reads. */
export interface SchedulingPolicy {
  /** Index into `runnable` of the task to step next. */
  chooseTask(runnable: readonly Task[]): number;
  /** Maximum events the chosen task may process in this step. */
  budget(task: Task): number;
  /** Index among `candidates` readable input channels of `task`. */
  chooseChannel?(task: Task, candidates: number): number;
  /**
   * Called when no task can run. Return true after making progress possible (e.g. advancing a
   * manual clock); false to wait for outside events.
   */
  onIdle?(state: { nextWakeTime: number; clock: Clock }): boolean;
  /** Called before each step (a simulation may move a manual clock here). */
  beforeStep?(clock: Clock): void;
  /**
   * Pause processing while checkpoint data is being written (checkpoints then complete at
   * deterministic points, whatever the storage's speed); default false.
   */
  readonly awaitCheckpointIo?: boolean;
}

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
  /** State to start from, per operator id and subtask index. */
  restore?: Map<string, OperatorSubtaskState>[];
  /** 0 on the first run, +1 per restart. */
  attemptNumber?: number;
  /** Identifies this run of the job (default: a fresh random id). */
  runId?: string;
  /** Where result sinks report (default: a fresh one; a job runner shares one across restarts). */
  results?: ResultCollector;
  /** Run only some subtasks here: one slot of a distributed run (see `runtime/distributed`). */
  slot?: SlotWiring;
  /** Checkpointing of this execution (set up by the job runner). */
  checkpointing?: {
    options: CheckpointingOptions;
    jobId: string;
    epoch: number;
    /** Ids of new checkpoints start after this one. */
    lastCheckpointId: number;
    onComplete?: (stats: CheckpointStats) => void;
  };
}

/** How a slot of a distributed run connects its subtasks to the others. */
export interface SlotWiring {
  /** The job's checkpointing mode (the job manager coordinates the checkpoints). */
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  /** True if this slot runs subtask `subtaskIndex` of vertex `vertexId`. */
  isLocal(vertexId: number, subtaskIndex: number): boolean;
  /** The sending end of the channel from a local producer to a remote consumer. */
  outChannel(edge: StreamEdge, producer: Task, consumerIndex: number): OutChannel;
  /** The local channel that frames from a remote producer feed. */
  inChannel(edge: StreamEdge, producerIndex: number, consumer: Task, label: string): Channel;
  /** After each scheduling pass and before sleeping: send pending batches and credits. */
  afterPass(): void;
  /** The synchronous part of a checkpoint is done: hand it to the job manager. */
  acknowledge(task: Task, checkpointId: number, snapshots: IncrementalSnapshot[]): void;
  onTaskStatus(task: Task): void;
}

/** What a finished job produced. */
export interface JobResult {
  readonly jobName: string;
  readonly status: 'FINISHED' | 'CANCELLED';
  readonly durationMs: number;
  readonly metrics: JobMetricsSnapshot;
  /** Values reported by result sinks, by sink id, in arrival order. */
  readonly results: ReadonlyMap<string, unknown[]>;
}

/**
 * Collects values of result sinks; committed (exactly-once) sinks commit whole transactions,
 * deduplicated by transaction id, so a transaction committed again after a restore counts once.
 */
export class ResultCollector implements ResultSink {
  readonly values = new Map<string, unknown[]>();
  private readonly committed = new Set<string>();
  add(sinkId: string, _subtaskIndex: number, value: unknown): void {
    let list = this.values.get(sinkId);
    if (list === undefined) this.values.set(sinkId, (list = []));
    list.push(value);
  }
  commit(sinkId: string, transactionId: string, values: readonly unknown[]): void {
    const id = `${sinkId}/${transactionId}`;
    let list = this.values.get(sinkId);
    if (list === undefined) this.values.set(sinkId, (list = []));
    if (this.committed.has(id)) return;
    this.committed.add(id);
    list.push(...values);
  }
}

/** Buffers lines and writes them to standard output in batches. */
export class BufferedStdout implements LineWriter {
  private lines: string[] = [];
  writeLine(line: string): void {
    this.lines.push(line);
    if (this.lines.length >= 4096) this.flush();
  }
  flush(): void {
    if (this.lines.length === 0) return;
    process.stdout.write(`${this.lines.join('\n')}\n`);
    this.lines = [];
  }
}

/** Runs one job graph in this thread. */
export class LocalExecutor implements TaskHost {
  readonly jobName: string;
  readonly clock: Clock;
  readonly stdout: LineWriter;
  readonly results: ResultCollector;
  readonly attemptNumber: number;
  readonly runId: string;
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  /** The checkpoint coordinator, when checkpointing is on. */
  readonly coordinator: CheckpointCoordinator | undefined;
  readonly tasks: Task[] = [];
  readonly chooseChannel?: (task: Task, candidates: number) => number;
  private readonly policy: SchedulingPolicy | undefined;
  private readonly budget: number;
  private readonly sliceMs: number;
  private failure: { error: unknown; task: Task | undefined } | undefined;
  private cancelled = false;
  private pending = 0;
  private wakeResolve: (() => void) | undefined;
  private started = 0;
  private unsubscribeClock: (() => void) | undefined;
  private readonly slot: SlotWiring | undefined;

  constructor(
    readonly graph: JobGraph,
    options: ExecutionOptions = {},
  ) {
    this.jobName = graph.jobName;
    this.clock = options.clock ?? new SystemClock();
    this.stdout = options.stdout ?? new BufferedStdout();
    this.policy = options.policy;
    const choose = options.policy?.chooseChannel;
    if (choose !== undefined) this.chooseChannel = (t, n) => choose.call(options.policy, t, n);
    this.budget = options.budget ?? 512;
    this.sliceMs = options.timeSliceMs ?? 10;
    this.attemptNumber = options.attemptNumber ?? 0;
    this.runId = options.runId ?? randomBytes(6).toString('hex');
    this.results = options.results ?? new ResultCollector();
    this.slot = options.slot;
    const cp = options.checkpointing;
    this.checkpointMode = options.slot?.checkpointMode ?? cp?.options.mode ?? 'exactly-once';
    this.createTasks(options.restore);
    this.coordinator =
      cp === undefined
        ? undefined
        : new CheckpointCoordinator(
            cp.options,
            {
              jobId: cp.jobId,
              tasks: this.tasks,
              graph: this.graph,
              now: () => this.clock.now(),
              fail: (e) => {
                this.fail(e, undefined);
                this.wake();
              },
              wake: () => this.wake(),
              ...(cp.onComplete === undefined ? {} : { onComplete: cp.onComplete }),
            },
            cp.epoch,
            cp.lastCheckpointId,
          );
  }

  acknowledgeCheckpoint(task: Task, checkpointId: number, snapshots: IncrementalSnapshot[]): void {
    if (this.slot !== undefined) this.slot.acknowledge(task, checkpointId, snapshots);
    else this.coordinator?.acknowledge(task, checkpointId, snapshots);
  }

  onTaskStatus(task: Task): void {
    this.slot?.onTaskStatus(task);
  }

  private createTasks(restore: Map<string, OperatorSubtaskState>[] | undefined): void {
    const slot = this.slot;
    const byVertex = new Map<number, (Task | undefined)[]>();
    for (const v of this.graph.vertices) {
      const tasks: (Task | undefined)[] = [];
      for (let i = 0; i < v.parallelism; i++) {
        if (slot !== undefined && !slot.isLocal(v.id, i)) tasks.push(undefined);
        else {
          const t = new Task(this, v, i, restore?.[i] ?? new Map());
          tasks.push(t);
          this.tasks.push(t);
        }
      }
      byVertex.set(v.id, tasks);
    }
    const vertexOf = new Map(this.graph.vertices.flatMap((v) => v.nodes.map((n) => [n, v] as const)));
    // Channels for every network edge (in a slot: the ends that are here).
    for (const v of this.graph.vertices) {
      for (const edge of v.outputs) {
        const targetVertex = vertexOf.get(edge.target)!;
        const producers = byVertex.get(v.id)!;
        const consumers = byVertex.get(targetVertex.id)!;
        producers.forEach((producer, i) => {
          const to = connectedSubtasks(edge.partitioner, i, producers.length, consumers.length);
          if (producer === undefined) {
            // A remote producer: its frames feed local consumers.
            for (const j of to) {
              const consumer = consumers[j];
              if (consumer === undefined) continue;
              const c = slot!.inChannel(
                edge,
                i,
                consumer,
                `${v.name} (${i + 1}/${producers.length}) -> ${consumer.describe()}`,
              );
              c.index = consumer.inputs.length;
              consumer.inputs.push(c);
            }
            return;
          }
          const channels: OutChannel[] = to.map((j) => {
            const consumer = consumers[j];
            if (consumer === undefined) return slot!.outChannel(edge, producer, j);
            const c = new Channel(
              this.graph.bufferCapacity,
              producer.outputGate,
              consumer.inputGate,
              edge.inputIndex,
              `${producer.describe()} -> ${consumer.describe()}`,
            );
            c.index = consumer.inputs.length;
            consumer.inputs.push(c);
            return c;
          });
          producer.writers.set(
            edge,
            createWriter(edge.partitioner, channels, i, edge.target.maxParallelism, () =>
              producer.describe(),
            ),
          );
        });
      }
    }
    for (const t of this.tasks) t.setup();
  }

  // ---- TaskHost ----

  wake(): void {
    const r = this.wakeResolve;
    if (r !== undefined) {
      this.wakeResolve = undefined;
      r();
    } else this.wokenEarly = true;
  }
  /**
   * A wake-up came while the loop was not waiting (during a pass, e.g. frames or credits a slot
   * took from its ports between passes): the loop looks again instead of going to sleep, or the
   * wake-up would be lost (and two slots waiting for each other's credits would wait forever).
   */
  private wokenEarly = false;

  private readonly idleWaiters = new Set<Task>();
  private readonly alignment = new Map<string, AlignmentState>();

  wakeWhenIdle(task: Task): void {
    this.idleWaiters.add(task);
  }

  alignmentGroup(group: string, task: Task): AlignmentGroup {
    let g = this.alignment.get(group);
    if (g === undefined) this.alignment.set(group, (g = new AlignmentState(() => this.wake())));
    return g.member(task);
  }

  wakeUp(): void {
    this.wake();
  }

  wakeAt(): void {
    // The loop reads `task.wakeTime` when it decides how long to sleep.
  }

  blockOn(task: Task, promise: Promise<unknown>): void {
    this.pending++;
    promise.then(
      () => {
        this.pending--;
        this.wake();
      },
      (e: unknown) => {
        this.pending--;
        this.fail(e, task);
        this.wake();
      },
    );
  }

  private fail(error: unknown, task: Task | undefined): void {
    if (this.failure === undefined) this.failure = { error, task };
  }

  /** Stops the job; `run` resolves with status CANCELLED. */
  cancel(): void {
    this.cancelled = true;
    this.wake();
  }

  /** Current metrics of every operator. */
  metrics(): JobMetricsSnapshot {
    return aggregateMetrics(
      this.tasks.flatMap((t) => t.metrics()),
      Date.now(),
    );
  }

  /** Runs the job to its end. */
  async run(): Promise<JobResult> {
    this.started = performance.now();
    if (isManualClock(this.clock)) this.unsubscribeClock = this.clock.onAdvance(() => this.wake());
    try {
      for (const t of this.tasks) {
        try {
          t.open();
        } catch (e) {
          this.fail(e, t);
          break;
        }
      }
      if (this.failure === undefined) await this.loop();
      // NOTE: a bounded job's final checkpoint holds the sinks' last transactions, so that their
      // publication below is completed after a restore if it fails or is cut short.
      if (this.failure === undefined && !this.cancelled && this.slot === undefined && this.coordinator)
        await this.coordinator.triggerFinal(this.clock.now()).catch((e: unknown) => this.fail(e, undefined));
      this.coordinator?.stop();
      // NOTE: the end of a bounded job is its final checkpoint: sinks publish what they pre-committed
      // at the end of input only now that every task has finished (as Flink's final checkpoint).
      // A slot of a distributed run waits for the job manager to say the whole job finished.
      if (this.failure === undefined && !this.cancelled && this.slot === undefined) {
        try {
          await Promise.all(this.tasks.map((t) => t.finalCommit()));
        } catch (e) {
          this.fail(e, undefined);
        }
      }
    } finally {
      this.coordinator?.stop();
      this.unsubscribeClock?.();
      if (this.stdout instanceof BufferedStdout) this.stdout.flush();
      if (this.slot === undefined || this.failure !== undefined || this.cancelled)
        for (const t of this.tasks) t.closeOperators();
    }
    if (this.failure !== undefined) throw this.jobError(this.failure.error, this.failure.task);
    const status = this.cancelled ? 'CANCELLED' : 'FINISHED';
    return {
      jobName: this.jobName,
      status,
      durationMs: performance.now() - this.started,
      metrics: this.metrics(),
      results: this.results.values,
    };
  }

  /** A slot: the whole job finished; publish the final transactions (if `commit`) and close. */
  async finishSlot(commit: boolean): Promise<void> {
    try {
      if (commit) await Promise.all(this.tasks.map((t) => t.finalCommit()));
    } finally {
      if (this.stdout instanceof BufferedStdout) this.stdout.flush();
      for (const t of this.tasks) t.closeOperators();
    }
  }

  /** Fails the run from outside (a slot whose peer failed). */
  abort(error: unknown): void {
    this.fail(error, undefined);
    this.wake();
  }

  private jobError(error: unknown, task: Task | undefined): Error {
    if (error instanceof JobCancelledError) return error;
    const ctx = error instanceof TidemarkError ? error.context : {};
    const where = error instanceof TidemarkError || task === undefined ? '' : ` in ${task.describe()}`;
    const msg = error instanceof Error ? error.message : String(error);
    return new JobFailedError(
      `job '${this.jobName}' failed${where}: ${msg}`,
      { ...ctx, jobName: this.jobName },
      error,
    );
  }

  private async loop(): Promise<void> {
    const tasks = this.tasks;
    const policy = this.policy;
    const coordinator = this.coordinator;
    for (;;) {
      // NOTE: while checkpoint chunks are being written, slices are short, so that their replies
      // are taken (and the next writes sent) without waiting behind a full slice of records.
      const sliceEnd =
        performance.now() +
        (coordinator !== undefined && coordinator.writesInFlight > 0 ? IO_SLICE_MS : this.sliceMs);
      let progressed = false;
      do {
        progressed = false;
        this.wokenEarly = false;
        coordinator?.tick(this.clock.now());
        const now = this.clock.now();
        if (policy === undefined) {
          for (let i = 0; i < tasks.length; i++) {
            const t = tasks[i]!;
            if (!t.canRun(now)) continue;
            progressed = true;
            try {
              t.step(this.budget, now);
            } catch (e) {
              this.fail(e, t);
              return;
            }
          }
        } else {
          policy.beforeStep?.(this.clock);
          const at = this.clock.now();
          const runnable = tasks.filter((t) => t.canRun(at));
          if (runnable.length > 0) {
            progressed = true;
            const t = runnable[runnable.length === 1 ? 0 : policy.chooseTask(runnable)]!;
            try {
              t.step(policy.budget(t), at);
            } catch (e) {
              this.fail(e, t);
              return;
            }
            // NOTE: with a policy the loop does not yield by time; while a checkpoint is being
            // written it yields after every step, so that storage I/O completes between steps.
            if (coordinator?.busy === true) {
              if (policy.awaitCheckpointIo === true) await coordinator.ioSettled();
              else await yieldToEventLoop();
            }
          }
        }

        this.slot?.afterPass();
        if (this.failure !== undefined || this.cancelled) return;
      } while (progressed && performance.now() < sliceEnd);
      if (this.stdout instanceof BufferedStdout) this.stdout.flush();
      if (this.failure !== undefined || this.cancelled) return;
      if (tasks.every((t) => t.status === 'finished')) return;
      if (!progressed && this.idleWaiters.size > 0) {
        // Nothing else can run: wake the tasks that asked to run then (TestStream steps).
        for (const t of this.idleWaiters) t.sourceAvailable = true;
        this.idleWaiters.clear();
        continue;
      }
      if (progressed) await yieldToEventLoop();
      else await this.waitForWork();
      if (this.failure !== undefined || this.cancelled) return;
    }
  }

  /** Sleeps until something can run: a wake-up, a settled promise, or a processing-time deadline. */
  private waitForWork(): Promise<void> {
    if (this.wokenEarly) {
      this.wokenEarly = false;
      return yieldToEventLoop();
    }
    let next = this.coordinator?.nextWakeTime() ?? Number.POSITIVE_INFINITY;
    for (const t of this.tasks) if (t.status === 'running' && t.wakeTime < next) next = t.wakeTime;

    const manual = isManualClock(this.clock);
    const waitingSources = this.tasks.some((t) => t.isSource && t.status === 'running' && !t.sourceAvailable);
    // NOTE: a simulation moves time only when nothing waits for I/O (a sink's commit, a
    // checkpoint write, a source's read); otherwise it waits for the I/O like a real run.
    const awaitingIo =
      this.pending > 0 ||
      (this.coordinator?.writesInFlight ?? 0) > 0 ||
      this.tasks.some(
        (t) =>
          t.isSource &&
          t.status === 'running' &&
          !t.sourceAvailable &&
          t.wakeTime === Number.POSITIVE_INFINITY,
      );
    if (!awaitingIo && this.policy?.onIdle?.({ nextWakeTime: next, clock: this.clock }))
      return Promise.resolve();

    // NOTE: a slot of a distributed run waits for frames from other slots: no stall detection.
    if (
      this.slot === undefined &&
      this.pending === 0 &&
      !waitingSources &&
      (next === Number.POSITIVE_INFINITY || manual)
    ) {
      if (!manual || next === Number.POSITIVE_INFINITY) {
        const stuck = this.tasks
          .filter((t) => t.status !== 'finished')
          .map((t) => `${t.describe()} [${t.status}, ${t.inputGate.queued} queued]`);
        this.fail(
          new TidemarkError(
            'INTERNAL_ERROR',
            `job '${this.jobName}' stalled: nothing can run, but these tasks did not finish: ${stuck.join('; ')}`,
          ),
          undefined,
        );
        return Promise.resolve();
      }
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      this.wakeResolve = () => {
        if (timer !== undefined) clearTimeout(timer);
        resolve();
      };
      if (next < Number.POSITIVE_INFINITY && !manual) {
        timer = setTimeout(() => this.wake(), Math.max(0, next - this.clock.now()));
      }
    });
  }
}

/** The watermarks of the subtasks of one alignment group. */
class AlignmentState {
  private readonly watermarks = new Map<Task, number>();
  private readonly paused = new Set<Task>();
  private min = Number.NEGATIVE_INFINITY;
  constructor(private readonly wake: () => void) {}

  member(task: Task): AlignmentGroup {
    this.watermarks.set(task, Number.NEGATIVE_INFINITY);
    return {
      report: (watermark) => this.report(task, watermark),
      minWatermark: () => {
        this.paused.add(task);
        return this.min;
      },
    };
  }

  private report(task: Task, watermark: number): void {
    this.watermarks.set(task, watermark);
    let min = Number.POSITIVE_INFINITY;
    for (const w of this.watermarks.values()) if (w < min) min = w;
    if (min > this.min) {
      this.min = min;
      // The group advanced: paused members may read again.
      for (const t of this.paused) t.sourceAvailable = true;
      this.paused.clear();
      this.wake();
    }
  }
}
