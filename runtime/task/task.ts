/**
 * A task: one subtask of a job vertex, i.e. one parallel instance of a chain of operators. It owns
 * the subtask's lifecycle (created → running → finishing → finished), polls its source or reads
 * its inputs (`InputProcessor`), takes its checkpoints (a source when triggered, any other task
 * when its `BarrierHandler` has every barrier), and fires its processing time. Its operators are
 * an `OperatorChain`. It never blocks: `step` does a bounded amount of work and returns.
 */
import type { AlignmentGroup, Clock, LineWriter, ResultSink } from '../../operators/contract.js';
import { END_OF_INPUT, NOTHING_AVAILABLE, type SourceOperator } from '../../operators/sources/source.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { DirtyGroups } from '../checkpoint/snapshot-writer.js';
import type { JobVertex, StreamEdge } from '../graph/job-graph.js';
import type { SubtaskMetrics } from '../metrics.js';
import type { OperatorHost } from '../operator/operator-runtime.js';
import { type BarrierHandler, createBarrierHandler } from './barrier-handler.js';
import { BARRIER, type Channel, END, InputGate, OutputGate } from './channel.js';
import { InputProcessor } from './input-processor.js';
import { type ChainMember, OperatorChain } from './operator-chain.js';
import type { RecordWriter } from './writers.js';

/** What a task needs from the executor that runs it. */
export interface TaskHost {
  readonly jobName: string;
  readonly clock: Clock;
  readonly results: ResultSink;
  readonly stdout: LineWriter;
  readonly attemptNumber: number;
  readonly runId: string;
  /** The task may be runnable now: look at it again. */
  wakeUp(task: Task): void;
  /** Run the task again once processing time reaches `time`. */
  wakeAt(task: Task, time: number): void;
  /** Run the task again once nothing else can run. */
  wakeWhenIdle(task: Task): void;
  /** The task waits for `promise`: wake it when it settles; a rejection fails the job. */
  blockOn(task: Task, promise: Promise<unknown>): void;
  /** Picks the next input channel to read among `candidates` (deterministic simulation). */
  chooseChannel?(task: Task, candidates: number): number;
  /** The shared watermark alignment group `group` (one member per calling subtask). */
  alignmentGroup(group: string, task: Task): AlignmentGroup;
  /** A task's status changed (a distributed run reports it to the job manager). */
  onTaskStatus?(task: Task): void;
  /** Freeze every record an operator emits (strict records, for tests; default false). */
  readonly strictRecords?: boolean;
  /** Exactly-once aligns barriers (blocks channels); at-least-once only counts them. */
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  /** The task took the synchronous part of checkpoint `checkpointId`. */
  acknowledgeCheckpoint(task: Task, checkpointId: number, snapshots: IncrementalSnapshot[]): void;
}

/** The id with which operators are told that the job finished (its final checkpoint). */
export const FINAL_CHECKPOINT_ID = Number.MAX_SAFE_INTEGER;

/** The life of a task. */
export type TaskStatus = 'created' | 'running' | 'finishing' | 'finished' | 'failed' | 'cancelled';

/** A running subtask of a chain. */
export class Task {
  status: TaskStatus = 'created';
  /** Its input channels' side: events waiting (written by the channels). */
  readonly inputGate = new InputGate();
  /** Its output channels' side: channels that are full (written by the channels). */
  readonly outputGate = new OutputGate();
  /** Input channels, in order; `channel.index` is the position. */
  readonly inputs: Channel[] = [];
  /** Writers per network output edge (set by the executor before `setup`). */
  readonly writers = new Map<StreamEdge, RecordWriter>();
  /** Waiting for a promise (an async sink, a finish, a commit). */
  blocked = false;
  /** Source tasks: the reader may have data. */
  sourceAvailable = true;
  /** Number of wake-ups of the source (to detect one that happens during a poll). */
  wakeups = 0;
  /** Processing time at which the task wants to be run again (timers, source wake-ups). */
  wakeTime = Number.POSITIVE_INFINITY;
  /** Sources: a checkpoint to take before the next record. */
  pendingTrigger: number | undefined;
  readonly info: { subtaskIndex: number; parallelism: number };
  private chain!: OperatorChain;
  private input: InputProcessor | undefined;
  private barriers: BarrierHandler | undefined;
  private finishIndex = 0;
  private closed = false;

  constructor(
    readonly host: TaskHost,
    readonly vertex: JobVertex,
    readonly subtaskIndex: number,
    private readonly restore: ReadonlyMap<string, OperatorSubtaskState> = new Map(),
  ) {
    this.info = { subtaskIndex, parallelism: vertex.parallelism };
  }

  /** `vertex name (i/p)` for messages. */
  describe(): string {
    return `${this.vertex.name} (${this.subtaskIndex + 1}/${this.vertex.parallelism})`;
  }

  get isSource(): boolean {
    return this.vertex.head.isSource;
  }

  /** The chain's operators, head first. */
  get members(): readonly ChainMember[] {
    return this.chain.members;
  }

  /** Creates the operators, their contexts and outputs, and the input side (writers and inputs must be set). */
  setup(): void {
    const host = this.host;
    const operatorHost: OperatorHost = {
      jobName: host.jobName,
      clock: host.clock,
      results: host.results,
      stdout: host.stdout,
      attemptNumber: host.attemptNumber,
      runId: host.runId,
      wakeUp: () => {
        this.wakeups++;
        this.sourceAvailable = true;
        host.wakeUp(this);
      },
      wakeAt: (t) => this.wakeAt(t),
      wakeWhenIdle: () => host.wakeWhenIdle(this),
      blockOn: (promise) => this.blockOn(promise),
      alignmentGroup: (group) => host.alignmentGroup(group, this),
    };
    this.chain = new OperatorChain(
      this.vertex,
      this.subtaskIndex,
      this.writers,
      operatorHost,
      this.restore,
      host.strictRecords === true,
    );
    if (this.inputs.length > 0) {
      this.barriers = createBarrierHandler(host.checkpointMode, this.inputs, (id) => this.checkpoint(id));
      const choose = host.chooseChannel;
      this.input = new InputProcessor(
        this,
        this.inputs,
        this.chain.head,
        this.barriers,
        choose === undefined ? undefined : (n) => choose.call(host, this, n),
        () => this.beginFinish(),
      );
    }
  }

  /** Initializes state and opens the operators. */
  open(): void {
    this.setStatus('running');
    this.chain.open();
  }

  /** A source task's reader may have data again (it is polled in the next pass). */
  pollSourceAgain(): void {
    this.sourceAvailable = true;
  }

  /** Asks to be run again at processing time `time`. */
  wakeAt(time: number): void {
    if (time < this.wakeTime) {
      this.wakeTime = time;
      this.host.wakeAt(this, time);
    }
  }

  /** Takes no input until `promise` settles (a rejection fails the job). */
  blockOn(promise: Promise<unknown>): void {
    this.blocked = true;
    this.host.blockOn(
      this,
      promise.then(() => {
        this.blocked = false;
      }),
    );
  }

  /** True if `step` would make progress now. */
  canRun(now: number): boolean {
    if (this.status !== 'running' || this.blocked) return false;
    if (this.wakeTime <= now || this.pendingTrigger !== undefined) return true;
    if (this.isSource) return this.sourceAvailable && this.outputGate.full === 0;
    if (this.input === undefined) return true; // nothing will ever arrive: it finishes at once
    if (this.inputGate.queued === 0 || this.outputGate.full > 0) return false;
    return this.input.hasReadableInput();
  }

  /** Does up to `budget` units of work. */
  step(budget: number, now: number): void {
    if (this.wakeTime <= now) this.fireProcessingTime(now);
    if (this.status === 'running' && !this.isSource && this.input === undefined) this.beginFinish();
    if (this.status !== 'running' || this.blocked) return;
    if (this.pendingTrigger !== undefined) {
      const id = this.pendingTrigger;
      this.pendingTrigger = undefined;
      this.checkpoint(id);
    }
    if (this.isSource) this.pollSource(budget);
    else this.input!.processInput(budget);
  }

  private fireProcessingTime(now: number): void {
    this.wakeTime = Number.POSITIVE_INFINITY;
    if (this.isSource) this.sourceAvailable = true;
    const next = this.chain.fireProcessingTime(now);
    if (next < Number.POSITIVE_INFINITY) this.wakeAt(next);
  }

  private pollSource(budget: number): void {
    const source = this.chain.head.op as unknown as SourceOperator<unknown>;
    for (let i = 0; i < budget; i++) {
      if (this.outputGate.full > 0 || this.blocked) return;
      const wakeups = this.wakeups;
      const status = source.emitNext();
      if (status === NOTHING_AVAILABLE) {
        // A wake-up during the poll (the reader knows more is coming) keeps the source runnable.
        if (this.wakeups === wakeups) this.sourceAvailable = false;
        return;
      }
      if (status === END_OF_INPUT) {
        source.endOfInput();
        this.beginFinish();
        return;
      }
    }
  }

  // ---- checkpoints ----

  /** Asks a source task to take checkpoint `checkpointId` (it injects the barrier). */
  triggerCheckpoint(checkpointId: number): void {
    if (this.status === 'running') this.pendingTrigger = checkpointId;
  }

  /** The synchronous part: snapshot every operator of the chain, forward the barrier, acknowledge. */
  private checkpoint(id: number): void {
    const snapshots = this.chain.snapshot(id);
    for (const w of this.writers.values()) w.broadcastEvent(BARRIER, id, 0);
    this.host.acknowledgeCheckpoint(this, id, snapshots);
  }

  /**
   * The final checkpoint of a finished task (every task of the job has finished): its operators'
   * state as the end of input left it. No barrier follows: nothing is downstream any more.
   */
  triggerFinalCheckpoint(id: number): void {
    this.host.acknowledgeCheckpoint(this, id, this.chain.snapshot(id));
  }

  /** Marks key groups changed again (their checkpoint was not stored). */
  redirty(groups: readonly DirtyGroups[]): void {
    this.chain.redirty(groups);
  }

  /** Checkpoint `id` was abandoned: stop aligning it. */
  abortCheckpoint(id: number): void {
    this.barriers?.abort(id);
    if (this.pendingTrigger !== undefined && this.pendingTrigger <= id) this.pendingTrigger = undefined;
    for (const m of this.chain.members) m.op.notifyCheckpointAborted(id);
  }

  /** Checkpoint `id` is complete: operators may publish (two-phase-commit sinks commit). */
  notifyCheckpointComplete(id: number): void {
    for (const m of this.chain.members) {
      const r = m.op.notifyCheckpointComplete(id);
      if (r !== undefined && typeof (r as Promise<void>).then === 'function')
        this.blockOn(r as Promise<void>);
    }
  }

  // ---- the end ----

  private setStatus(status: TaskStatus): void {
    this.status = status;
    this.host.onTaskStatus?.(this);
  }

  private beginFinish(): void {
    this.setStatus('finishing');
    this.finishIndex = 0;
    this.continueFinish();
  }

  /** Finishes the operators head to tail, waiting for async finishes, then ends the outputs. */
  private continueFinish(): void {
    const members = this.chain.members;
    while (this.finishIndex < members.length) {
      const m = members[this.finishIndex++]!;
      if (m !== this.chain.head) m.op.endInput(1);
      const r = m.op.finish();
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
        this.blocked = true;
        this.host.blockOn(
          this,
          (r as Promise<void>).then(() => {
            this.blocked = false;
            this.continueFinish();
          }),
        );
        return;
      }
    }
    for (const w of this.writers.values()) w.broadcastEvent(END, undefined, 0);
    // NOTE: operators are closed by the executor when the job ends (after the final commit).
    this.chain.clearCallbacks();
    this.wakeTime = Number.POSITIVE_INFINITY;
    this.setStatus('finished');
  }

  /** The job finished: operators publish what they pre-committed at the end of input. */
  async finalCommit(): Promise<void> {
    for (const m of this.chain.members) await m.op.notifyCheckpointComplete(FINAL_CHECKPOINT_ID);
  }

  /** Closes every operator (once), collecting (not throwing) errors. */
  closeOperators(): unknown[] {
    if (this.closed) return [];
    this.closed = true;
    return this.chain.close();
  }

  /** The current metrics of this task's operators. */
  metrics(): SubtaskMetrics[] {
    return this.chain.members.map((m) => ({
      operatorId: m.metrics.operatorId,
      operatorName: m.metrics.operatorName,
      isSource: m.node.isSource,
      isSink: m.node.isSink,
      parallelism: m.node.parallelism,
      values: m.metrics.values(),
    }));
  }
}
