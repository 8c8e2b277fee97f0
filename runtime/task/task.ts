/**
 * A task: one subtask of a job vertex, i.e. one parallel instance of a chain of operators. It owns
 * the subtask's lifecycle (created → running → finishing → finished), polls its source or reads
 * its inputs (`InputProcessor`), takes its checkpoints (a source when triggered, any other task
 * when its `BarrierHandler` has every barrier, a finished one at once, see `triggerCheckpoint`),
 * and fires its processing time. Its operators are an `OperatorChain`. It never blocks: `step`
 * does a bounded amount of work and returns.
 *
 * A task restored from a checkpoint in which its operators had finished everywhere (and those
 * upstream of it too) starts finished (Flink's finished on restore, FLIP-147): its operators get
 * their end state (a sink commits what that checkpoint holds), its source reads nothing, and it
 * ends its outputs at once, without finishing its operators again.
 */
import {
  type AlignmentGroup,
  type Clock,
  type LineWriter,
  MAX_WATERMARK,
  type ResultSink,
} from '../../operators/contract.js';
import { END_OF_INPUT, NOTHING_AVAILABLE, type SourceOperator } from '../../operators/sources/source.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { DirtyGroups } from '../checkpoint/snapshot-writer.js';
import type { JobVertex, StreamEdge } from '../graph/job-graph.js';
import type { SubtaskMetrics } from '../metrics.js';
import type { OperatorHost } from '../operator/operator-runtime.js';
import { type BarrierHandler, createBarrierHandler } from './barrier-handler.js';
import { BARRIER, type Channel, END, InputGate, OutputGate, WATERMARK } from './channel.js';
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
  /** Take checkpoint snapshots whole in their synchronous part (see `SchedulingPolicy`). */
  readonly snapshotsInSyncPart?: boolean;
  /** Exactly-once aligns barriers (blocks channels); at-least-once only counts them. */
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  /** The task took the synchronous part of checkpoint `checkpointId` (`timing`: how long it took). */
  acknowledgeCheckpoint(
    task: Task,
    checkpointId: number,
    snapshots: IncrementalSnapshot[],
    timing: CheckpointTiming,
  ): void;
}

/** How a subtask's part of a checkpoint went, up to its synchronous snapshot (for statistics). */
export interface CheckpointTiming {
  /** Wall time the first barrier (a source, a finished task: the trigger) reached the subtask. */
  barrierAt: number;
  /** First barrier to last barrier, ms. */
  alignmentMs: number;
  /** The synchronous snapshot of the chain, ms. */
  syncMs: number;
  /** The task had finished (it snapshotted its end state). */
  finished: boolean;
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
  /** Time spent in steps, ms (measured by the scheduler when observed). */
  busyMs = 0;
  /** Time not run because an output channel was full or out of credit, ms (idem). */
  backPressuredMs = 0;
  /** Wall time the last checkpoint trigger reached it (sources, finished tasks). */
  private triggeredAt = 0;
  /** Source tasks: the reader may have data. */
  sourceAvailable = true;
  /** Number of wake-ups of the source (to detect one that happens during a poll). */
  wakeups = 0;
  /** Processing time at which the task wants to be run again (timers, source wake-ups). */
  wakeTime = Number.POSITIVE_INFINITY;
  /** Sources: a checkpoint to take before the next record. */
  pendingTrigger: number | undefined;
  /**
   * Sources: checkpoints triggered while `pendingTrigger` waited (a savepoint right after a
   * periodic trigger, a source blocked meanwhile), taken after it, in order. Every trigger is taken:
   * the coordinator completes checkpoints in order, so one skipped would hold back those after it.
   */
  private laterTriggers: number[] = [];
  /** A checkpoint to take once the task has finished (it was asked while finishing). */
  private finishedTrigger: number | undefined;
  /** The newest checkpoint this task took (a trigger or barrier of it, or an older one, is ignored). */
  private lastCheckpointId = 0;
  /** Promises the task waits for (`blockOn`), a sink's commit among them. */
  private awaited = 0;
  /** A checkpoint of the finished task to take once nothing is awaited any more. */
  private deferredFinished: number | undefined;
  /**
   * The key groups each of its snapshots wrote, until their checkpoint completes or is abandoned:
   * abandoned, they are written again by the next snapshot (which would otherwise leave them out,
   * unchanged since, while no completed checkpoint has them).
   */
  private readonly unconfirmed = new Map<number, DirtyGroups[]>();
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

  /** The id of its vertex (chain). */
  get vertexId(): number {
    return this.vertex.id;
  }

  /** Its input side (none for a source). @internal for the observer */
  get inputProcessor(): InputProcessor | undefined {
    return this.input;
  }

  /** The chain's operators, head first. */
  get members(): readonly ChainMember[] {
    return this.chain.members;
  }

  /** Taps the chain's output (the live tail, see `OperatorChain.tapOutput`); `undefined` removes it. */
  tapOutput(tap: ((value: unknown, timestamp: number) => void) | undefined): void {
    this.chain.tapOutput(tap);
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
      snapshotsInSyncPart: host.snapshotsInSyncPart === true,
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

  /** Initializes state and opens the operators (a task finished on restore then ends at once). */
  open(): void {
    this.setStatus('running');
    this.chain.open();
    if (this.finishedOnRestore()) this.finishOnRestore();
  }

  /** Every operator of the chain had finished in the checkpoint it restores from. */
  private finishedOnRestore(): boolean {
    return this.chain.members.every((m) => this.restore.get(m.spec.operatorId)?.finished === true);
  }

  /**
   * Ends at once, as the task ended before: its end of input (the final watermark and the end of
   * every output channel) without reading or finishing anything again.
   */
  private finishOnRestore(): void {
    for (const w of this.writers.values()) {
      w.broadcastEvent(WATERMARK, undefined, MAX_WATERMARK);
      w.broadcastEvent(END, undefined, 0);
    }
    this.chain.clearCallbacks();
    this.wakeTime = Number.POSITIVE_INFINITY;
    this.setStatus('finished');
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
    this.awaited++;
    this.host.blockOn(
      this,
      promise.then(
        () => {
          this.blocked = false;
          this.awaited--;
          this.takeDeferred();
        },
        (e: unknown) => {
          this.awaited--;
          throw e;
        },
      ),
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
      this.pendingTrigger = this.laterTriggers.shift();
      this.checkpoint(id);
      if (this.pendingTrigger !== undefined) return; // the next one in the next step
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

  /**
   * Asks the task to take checkpoint `checkpointId` without a barrier from upstream (FLIP-147): a
   * running source injects the barrier before its next record; a running task whose upstream
   * tasks have all finished takes it once every input channel has ended (after every record that
   * came); a finishing task once it has finished; a finished task now, as finished. A checkpoint
   * it took already (through its barriers) is not taken again.
   */
  triggerCheckpoint(checkpointId: number): void {
    if (checkpointId <= this.lastCheckpointId) return;
    this.triggeredAt = Date.now();
    switch (this.status) {
      case 'running':
        if (this.isSource) {
          if (this.pendingTrigger === undefined) this.pendingTrigger = checkpointId;
          else if (checkpointId > (this.laterTriggers.at(-1) ?? this.pendingTrigger))
            this.laterTriggers.push(checkpointId);
        } else if (this.barriers !== undefined) this.barriers.triggerAtEndOfInput(checkpointId);
        else this.finishedTrigger = checkpointId; // no input: it finishes at once
        break;
      case 'finishing':
        this.finishedTrigger = checkpointId;
        break;
      case 'finished':
        this.checkpointFinished(checkpointId);
        break;
      default:
    }
  }

  /** The synchronous part: snapshot every operator of the chain, forward the barrier, acknowledge. */
  private checkpoint(id: number): void {
    if (id <= this.lastCheckpointId) return;
    this.lastCheckpointId = id;
    const startWall = Date.now();
    const syncStart = performance.now();
    const barrierAt =
      (this.barriers === undefined ? this.triggeredAt : this.barriers.firstBarrierAt) || startWall;
    const snapshots = this.chain.snapshot(id);
    this.remember(id, snapshots);
    for (const w of this.writers.values()) w.broadcastEvent(BARRIER, id, 0);
    this.acknowledge(id, snapshots, {
      barrierAt,
      alignmentMs: Math.max(0, startWall - barrierAt),
      syncMs: performance.now() - syncStart,
      finished: false,
    });
  }

  /** Acknowledgements still waiting for key groups being read (see `IncrementalSnapshot.pending`). */
  private acknowledging: Promise<void> | undefined;

  /**
   * Acknowledges a checkpoint's snapshots: at once, or, when some of them are still being read
   * (whole key groups of the LMDB backend), once they are, and in checkpoint order.
   */
  private acknowledge(id: number, snapshots: IncrementalSnapshot[], timing: CheckpointTiming): void {
    const pending = snapshots.filter((s) => s.pending !== undefined).map((s) => s.pending!);
    if (pending.length === 0 && this.acknowledging === undefined) {
      this.host.acknowledgeCheckpoint(this, id, snapshots, timing);
      return;
    }
    const done = (this.acknowledging ?? Promise.resolve())
      .then(() => Promise.all(pending))
      .then(
        () => {
          for (const s of snapshots) {
            delete s.pending;
            delete s.pendingKeyGroups;
          }
          this.host.acknowledgeCheckpoint(this, id, snapshots, timing);
        },
        // NOTE: the backend closed (the run ended) or a read failed: no acknowledgement, so the
        // checkpoint expires and fails, and its key groups are written whole next time.
        () => {},
      )
      .finally(() => {
        if (this.acknowledging === done) this.acknowledging = undefined;
      });
    this.acknowledging = done;
  }

  private remember(id: number, snapshots: readonly IncrementalSnapshot[]): void {
    const groups: DirtyGroups[] = [];
    for (const s of snapshots) {
      const changed = [...new Set([...s.changed.keys(), ...(s.pendingKeyGroups ?? [])])];
      if (changed.length > 0) groups.push({ operatorId: s.operatorId, changed });
    }
    if (groups.length > 0) this.unconfirmed.set(id, groups);
  }

  /**
   * A checkpoint of the finished task: its operators' state as the end of input left it, marked
   * finished. No barrier follows: its outputs have ended (which counts as the barrier downstream).
   */
  private checkpointFinished(id: number): void {
    if (id <= this.lastCheckpointId) return;
    // NOTE: not while a commit (or a restored transaction's commit) is under way: its transaction
    // has left the sink's state, and a checkpoint without it would lose it if the commit failed.
    // A running task has the same guarantee by being blocked: it reads no barrier meanwhile.
    if (this.awaited > 0) {
      this.deferredFinished = Math.max(this.deferredFinished ?? 0, id);
      return;
    }
    this.lastCheckpointId = id;
    const syncStart = performance.now();
    const snapshots = this.chain.snapshot(id);
    this.remember(id, snapshots);
    for (const s of snapshots) s.finished = true;
    this.acknowledge(id, snapshots, {
      barrierAt: this.triggeredAt || Date.now(),
      alignmentMs: 0,
      syncMs: performance.now() - syncStart,
      finished: true,
    });
  }

  /** The final checkpoint of a finished task (every task of the job has finished). */
  triggerFinalCheckpoint(id: number): void {
    this.checkpointFinished(id);
  }

  /** Takes the checkpoint of the finished task that waited for a commit (see `checkpointFinished`). */
  private takeDeferred(): void {
    const id = this.deferredFinished;
    if (id === undefined || this.awaited > 0 || this.status !== 'finished') return;
    this.deferredFinished = undefined;
    this.checkpointFinished(id);
  }

  /** Marks key groups changed again (their checkpoint was not stored). */
  redirty(groups: readonly DirtyGroups[]): void {
    this.chain.redirty(groups);
  }

  /** Checkpoint `id` was abandoned: stop aligning it; what its snapshot wrote is written again next time. */
  abortCheckpoint(id: number): void {
    const groups = this.unconfirmed.get(id);
    if (groups !== undefined) {
      this.unconfirmed.delete(id);
      this.chain.redirty(groups);
    }
    this.barriers?.abort(id);
    if (this.pendingTrigger !== undefined && this.pendingTrigger <= id) {
      this.laterTriggers = this.laterTriggers.filter((t) => t > id);
      this.pendingTrigger = this.laterTriggers.shift();
    }
    if (this.finishedTrigger !== undefined && this.finishedTrigger <= id) this.finishedTrigger = undefined;
    if (this.deferredFinished !== undefined && this.deferredFinished <= id) this.deferredFinished = undefined;
    for (const m of this.chain.members) m.op.notifyCheckpointAborted(id);
  }

  /** Checkpoint `id` is complete: operators may publish (two-phase-commit sinks commit). */
  notifyCheckpointComplete(id: number): void {
    for (const [n, groups] of this.unconfirmed) {
      if (n > id) continue;
      this.unconfirmed.delete(n);
      // An older snapshot's checkpoint did not complete (the one that did does not hold its groups).
      if (n < id) this.chain.redirty(groups);
    }
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
    // A checkpoint asked of the task while it was finishing is taken now, of its end state.
    const asked = Math.max(this.finishedTrigger ?? 0, this.pendingTrigger ?? 0, ...this.laterTriggers);
    this.pendingTrigger = undefined;
    this.laterTriggers = [];
    this.finishedTrigger = undefined;
    this.setStatus('finished');
    if (asked > 0) this.checkpointFinished(asked);
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
