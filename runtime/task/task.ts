/**
 * A task: one subtask of a job vertex, i.e. one parallel instance of a chain of operators. It reads
 * events from its input channels (or polls its source), drives its operators by direct calls, and
 * writes to its output channels. It never blocks: `step` does a bounded amount of work and returns.
 */
import type { AlignmentGroup, Clock, LineWriter, Output, ResultSink } from '../../operators/contract.js';
import type { OneInputStreamOperator, TwoInputStreamOperator } from '../../operators/operator.js';
import type { OutputTag } from '../../operators/output-tag.js';
import { END_OF_INPUT, NOTHING_AVAILABLE, type SourceOperator } from '../../operators/sources/source.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { JobVertex, StreamEdge, StreamNode } from '../graph/job-graph.js';
import { OperatorMetrics, type SimpleCounter } from '../operator/metrics.js';
import { type OperatorHost, OperatorRuntime } from '../operator/operator-runtime.js';
import { BARRIER, type Channel, type ChannelEndpoint, END, IDLE, RECORD, WATERMARK } from './channel.js';
import { WatermarkValve } from './watermark-valve.js';
import type { RecordWriter } from './writers.js';

/** What a task needs from the executor that runs it. */
export interface TaskHost {
  readonly jobName: string;
  readonly clock: Clock;
  readonly results: ResultSink;
  readonly stdout: LineWriter;
  readonly attemptNumber: number;
  readonly runId: string;
  /** The task should be looked at again (it may be runnable now). */
  wake(task: Task): void;
  /** Wake the task once processing time reaches `time`. */
  scheduleAt(task: Task, time: number): void;
  /** The task is blocked on a promise (async sink); reject fails the job. */
  track(task: Task, promise: Promise<unknown>): void;
  /** Picks the next input channel to read among `candidates` (deterministic simulation). */
  chooseChannel?(task: Task, candidates: number): number;
  /** Run the task again once nothing else can run. */
  wakeWhenIdle(task: Task): void;
  /** The shared watermark alignment group `group` (one member per calling subtask). */
  alignmentGroup(group: string, task: Task): AlignmentGroup;
  /** A task's status changed (a distributed run reports it to the job manager). */
  onTaskStatus?(task: Task): void;
  /** Exactly-once aligns barriers (blocks channels); at-least-once only counts them. */
  readonly checkpointMode: 'exactly-once' | 'at-least-once';
  /** The task took the synchronous part of checkpoint `checkpointId`. */
  acknowledgeCheckpoint(task: Task, checkpointId: number, snapshots: IncrementalSnapshot[]): void;
}

/** The id with which operators are told that the job finished (its final checkpoint). */
export const FINAL_CHECKPOINT_ID = Number.MAX_SAFE_INTEGER;

/** The life of a task. */

export type TaskStatus = 'created' | 'running' | 'finishing' | 'finished' | 'failed' | 'cancelled';

/** A target of an operator's output: a chained operator or a network writer. */
interface Target {
  record(value: unknown, timestamp: number): void;
  watermark(watermark: number): void;
  idle(idle: boolean): void;
}

/** A chained operator on a side output of its predecessor. */
class ChainTarget implements Target {
  constructor(
    private readonly op: OneInputStreamOperator<unknown, unknown>,
    private readonly metrics: OperatorMetrics,
  ) {}
  record(value: unknown, timestamp: number): void {
    this.metrics.numRecordsIn.count++;
    this.op.processElement(value, timestamp);
  }
  watermark(watermark: number): void {
    this.op.processWatermark(watermark);
  }
  idle(idle: boolean): void {
    this.op.processIdle(idle);
  }
}

/** A chained operator on its predecessor's main output (its records in are counted there). */
class MainChainTarget implements Target {
  constructor(readonly op: OneInputStreamOperator<unknown, unknown>) {}
  record(value: unknown, timestamp: number): void {
    this.op.processElement(value, timestamp);
  }
  watermark(watermark: number): void {
    this.op.processWatermark(watermark);
  }
  idle(idle: boolean): void {
    this.op.processIdle(idle);
  }
}

class WriterTarget implements Target {
  constructor(private readonly writer: RecordWriter) {}
  record(value: unknown, timestamp: number): void {
    this.writer.emit(value, timestamp);
  }
  watermark(watermark: number): void {
    this.writer.broadcastEvent(WATERMARK, undefined, watermark);
  }
  idle(idle: boolean): void {
    this.writer.broadcastEvent(IDLE, idle, 0);
  }
}

/**
 * The `collect` of an output that feeds one chained operator: counts the record and calls the
 * operator. Compiled per output (see {@link NodeOutput}).
 */
const DIRECT_COLLECT_BODY =
  "'use strict'; return function collect(value, timestamp) { out.count++; next.processElement(value, timestamp); };";

type Collect = (value: unknown, timestamp: number) => void;

/** A `collect` calling `next` directly, as a function of its own (its own call-site feedback). */
function directCollect(next: OneInputStreamOperator<unknown, unknown>, out: SimpleCounter): Collect {
  // NOTE: one shared `collect` calls every chain's operators from one call site, which V8 then
  // sees as polymorphic (or megamorphic) and does not inline. A function compiled per output has
  // its own type feedback: its call is monomorphic and the next operator is inlined into it, as
  // a hand-written loop would be. Measured on Nexmark q1, alternated runs: 73 % of the hand loop
  // before, 77-80 % after. The body is a constant; only `next` and `out` vary.
  if (codeGeneration)
    try {
      return new Function('next', 'out', DIRECT_COLLECT_BODY)(next, out) as Collect;
    } catch {
      // Code generation from strings is disallowed (--disallow-code-generation-from-strings):
      // the same function as a closure (shared feedback), once and for all.
      codeGeneration = false;
    }
  return (value, timestamp) => {
    out.count++;
    next.processElement(value, timestamp);
  };
}
let codeGeneration = true;

/** An operator's output: to its main targets, its side-output targets, and watermarks to all. */
class NodeOutput implements Output<unknown> {
  private readonly single: Target | undefined;
  private readonly out: SimpleCounter;
  /** Emits a record: calls the one chained operator directly (the usual case in a chain), or the targets. */
  readonly collect: Collect;
  constructor(
    private readonly main: Target[],
    private readonly side: Map<string, Target[]>,
    private readonly all: Target[],
    metrics: OperatorMetrics,
  ) {
    this.single = main.length === 1 ? main[0] : undefined;
    this.out = metrics.numRecordsOut;
    this.collect =
      this.single instanceof MainChainTarget
        ? directCollect(this.single.op, this.out)
        : (value, timestamp) => this.toTargets(value, timestamp);
  }
  private toTargets(value: unknown, timestamp: number): void {
    this.out.count++;
    if (this.single !== undefined) this.single.record(value, timestamp);
    else for (const t of this.main) t.record(value, timestamp);
  }
  collectSide<S>(tag: OutputTag<S>, value: S, timestamp: number): void {
    const targets = this.side.get(tag.id);
    if (targets !== undefined) for (const t of targets) t.record(value, timestamp);
  }
  emitWatermark(watermark: number): void {
    for (const t of this.all) t.watermark(watermark);
  }
  emitIdle(idle: boolean): void {
    for (const t of this.all) t.idle(idle);
  }
}

/** One operator of the chain. */
interface ChainMember extends OperatorRuntime {
  readonly node: StreamNode;
}

/** A running subtask of a chain. */
export class Task implements ChannelEndpoint {
  queued = 0;
  fullOutputs = 0;
  status: TaskStatus = 'created';
  /** Input channels, in order; `channel.index` is the position. */
  readonly inputs: Channel[] = [];
  /** Writers per network output edge (set by the executor before `open`). */
  readonly writers = new Map<StreamEdge, RecordWriter>();
  readonly members: ChainMember[] = [];
  /** A promise the task waits for (async sink, finishing). */
  blocked = false;
  /** Source tasks: the reader may have data. */
  sourceAvailable = true;
  /** Number of wake-ups of the source (to detect one that happens during a poll). */
  wakeups = 0;

  /** Processing time at which the task wants to be run again (timers, source wake-ups). */
  wakeTime = Number.POSITIVE_INFINITY;
  private head: ChainMember | undefined = undefined;
  private valve: WatermarkValve | undefined;
  private endedChannels = 0;
  private readonly endedPerInput = [0, 0, 0];
  private readonly channelsPerInput = [0, 0, 0];
  private current = 0;
  private finishIndex = 0;
  readonly info: { subtaskIndex: number; parallelism: number };

  constructor(
    readonly host: TaskHost,
    readonly vertex: JobVertex,
    readonly subtaskIndex: number,
    private readonly restore: Map<string, OperatorSubtaskState> = new Map(),
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

  /** Creates the operators and their contexts and outputs (writers must be set). */
  setup(): void {
    const members = new Map<StreamNode, ChainMember>();
    // Create in reverse topological order so that chained targets exist before their producers.
    for (const node of [...this.vertex.nodes].reverse()) {
      const metrics = new OperatorMetrics(node.operatorId, node.name, this.subtaskIndex);
      const main: Target[] = [];
      const side = new Map<string, Target[]>();
      const all: Target[] = [];
      for (const e of node.outEdges) {
        let target: Target;
        if (e.chained) {
          const m = members.get(e.target)!;
          const op = m.op as OneInputStreamOperator<unknown, unknown>;
          if (e.sideOutput === undefined) {
            // A chained operator has this one input: what it receives is what this one emits.
            m.metrics.countRecordsInAs(metrics.numRecordsOut);
            target = new MainChainTarget(op);
          } else target = new ChainTarget(op, m.metrics);
        } else {
          target = new WriterTarget(this.writers.get(e)!);
        }
        all.push(target);
        if (e.sideOutput === undefined) main.push(target);
        else {
          const list = side.get(e.sideOutput.id) ?? [];
          list.push(target);
          side.set(e.sideOutput.id, list);
        }
      }
      const output = new NodeOutput(main, side, all, metrics);
      const member = this.createMember(node, output, metrics);
      members.set(node, member);
    }
    for (const node of this.vertex.nodes) this.members.push(members.get(node)!);
    this.head = this.members[0];
    if (this.inputs.length > 0) {
      this.valve = new WatermarkValve(this.inputs.length, {
        watermark: (wm) => this.members[0]!.op.processWatermark(wm),
        idle: (idle) => this.members[0]!.op.processIdle(idle),
      });
      for (const c of this.inputs)
        this.channelsPerInput[c.inputIndex] = (this.channelsPerInput[c.inputIndex] ?? 0) + 1;
    }
  }

  private createMember(node: StreamNode, output: Output<unknown>, metrics: OperatorMetrics): ChainMember {
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
        host.wake(this);
      },
      wakeAt: (t) => this.requestWakeAt(t),
      wakeWhenIdle: () => host.wakeWhenIdle(this),
      blockOn: (promise) => this.blockOn(promise),
      alignmentGroup: (group) => host.alignmentGroup(group, this),
    };
    const spec = {
      operatorId: node.operatorId,
      name: node.name,
      parallelism: node.parallelism,
      maxParallelism: node.maxParallelism,
      keyed: node.keyed,
      factory: node.transformation.factory,
    };
    const runtime = new OperatorRuntime(
      spec,
      this.subtaskIndex,
      output,
      metrics,
      operatorHost,
      this.restore.get(node.operatorId),
    );
    return Object.assign(runtime, { node });
  }

  /** Initializes state and opens the operators (tail first, so consumers are ready). */
  open(): void {
    this.setStatus('running');
    for (const m of this.members) m.op.initializeState();
    for (let i = this.members.length - 1; i >= 0; i--) this.members[i]!.op.open();
  }

  requestWakeAt(time: number): void {
    if (time < this.wakeTime) {
      this.wakeTime = time;
      this.host.scheduleAt(this, time);
    }
  }

  blockOn(promise: Promise<unknown>): void {
    this.blocked = true;
    this.host.track(
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
    if (this.isSource) return this.sourceAvailable && this.fullOutputs === 0;
    if (this.inputs.length === 0) return true; // nothing will ever arrive: it finishes at once
    if (this.queued === 0 || this.fullOutputs > 0) return false;
    return this.blockedChannels === 0 || this.inputs.some((c) => c.size > 0 && !c.blocked);
  }

  // ---- checkpoints ----

  /** Sources: a checkpoint to take before the next record. */
  pendingTrigger: number | undefined;
  /** The checkpoint whose barriers are being aligned, and the channels they came on. */
  private aligning: { id: number; received: Set<Channel> } | undefined;
  private blockedChannels = 0;

  /** Asks a source task to take checkpoint `checkpointId` (it injects the barrier). */
  triggerCheckpoint(checkpointId: number): void {
    if (this.status === 'running') this.pendingTrigger = checkpointId;
  }

  private onBarrier(ch: Channel, id: number): void {
    const a = this.aligning;
    if (a !== undefined && id < a.id) return; // a barrier of an abandoned checkpoint
    if (a !== undefined && id > a.id) this.endAlignment(); // the older one was abandoned
    const aligning = (this.aligning ??= { id, received: new Set() });
    aligning.received.add(ch);
    if (this.host.checkpointMode === 'exactly-once' && !ch.blocked) {
      ch.blocked = true;
      this.blockedChannels++;
    }
    this.checkAligned();
  }

  /** Takes the checkpoint once its barrier came on every channel that has not ended. */
  private checkAligned(): void {
    const a = this.aligning;
    if (a === undefined) return;
    for (const c of this.inputs) if (!c.ended && !a.received.has(c)) return;
    this.endAlignment();
    this.performCheckpoint(a.id);
  }

  private endAlignment(): void {
    this.aligning = undefined;
    if (this.blockedChannels === 0) return;
    for (const c of this.inputs) c.blocked = false;
    this.blockedChannels = 0;
  }

  /**
   * The final checkpoint of a finished task (every task of the job has finished): its operators'
   * state as the end of input left it. No barrier follows: nothing is downstream any more.
   */
  triggerFinalCheckpoint(id: number): void {
    this.host.acknowledgeCheckpoint(
      this,
      id,
      this.members.map((m) => m.snapshotIncremental(id)),
    );
  }

  /** The synchronous part: snapshot every operator of the chain, forward the barrier, acknowledge. */
  private performCheckpoint(id: number): void {
    const snapshots = this.members.map((m) => m.snapshotIncremental(id));
    for (const w of this.writers.values()) w.broadcastEvent(BARRIER, id, 0);
    this.host.acknowledgeCheckpoint(this, id, snapshots);
  }

  private setStatus(status: TaskStatus): void {
    this.status = status;
    this.host.onTaskStatus?.(this);
  }

  /** Marks the key groups of a failed checkpoint's snapshots changed again. */
  redirty(snapshots: readonly IncrementalSnapshot[]): void {
    for (const s of snapshots)
      this.members.find((m) => m.spec.operatorId === s.operatorId)?.redirty(s.changed.keys());
  }

  /** Checkpoint `id` was abandoned: stop aligning it. */
  abortCheckpoint(id: number): void {
    if (this.aligning !== undefined && this.aligning.id <= id) this.endAlignment();
    if (this.pendingTrigger !== undefined && this.pendingTrigger <= id) this.pendingTrigger = undefined;
    for (const m of this.members) m.op.notifyCheckpointAborted(id);
  }

  /** Checkpoint `id` is complete: operators may publish (two-phase-commit sinks commit). */
  notifyCheckpointComplete(id: number): void {
    for (const m of this.members) {
      const r = m.op.notifyCheckpointComplete(id);
      if (r !== undefined && typeof (r as Promise<void>).then === 'function')
        this.blockOn(r as Promise<void>);
    }
  }

  /** Does up to `budget` units of work. */
  step(budget: number, now: number): void {
    if (this.wakeTime <= now) this.fireProcessingTime(now);
    if (this.status === 'running' && !this.isSource && this.inputs.length === 0) this.beginFinish();
    if (this.status !== 'running' || this.blocked) return;
    if (this.pendingTrigger !== undefined) {
      const id = this.pendingTrigger;
      this.pendingTrigger = undefined;
      this.performCheckpoint(id);
    }

    if (this.isSource) this.stepSource(budget);
    else this.stepInputs(budget);
  }

  private fireProcessingTime(now: number): void {
    this.wakeTime = Number.POSITIVE_INFINITY;
    if (this.isSource) this.sourceAvailable = true;
    let next = Number.POSITIVE_INFINITY;
    for (const m of this.members) next = Math.min(next, m.fireProcessingTime(now));
    if (next < Number.POSITIVE_INFINITY) this.requestWakeAt(next);
  }

  private stepSource(budget: number): void {
    const source = this.head!.op as unknown as SourceOperator<unknown>;
    for (let i = 0; i < budget; i++) {
      if (this.fullOutputs > 0 || this.blocked) return;
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

  private stepInputs(budget: number): void {
    const head = this.head!;
    const op = head.op as OneInputStreamOperator<unknown, unknown> &
      TwoInputStreamOperator<unknown, unknown, unknown>;
    const inputs = this.inputs;
    const n = inputs.length;
    const choose = this.host.chooseChannel;
    const twoInputs =
      head.node.transformation.type === 'operator' && head.node.transformation.inputs.length === 2;

    // NOTE: each step starts at the next channel, so a busy channel cannot starve the others.
    if (++this.current >= n) this.current = 0;
    for (let done = 0; done < budget; done++) {
      if (this.fullOutputs > 0 || this.queued === 0 || this.blocked || this.status !== 'running') return;
      let ch: Channel;
      if (choose !== undefined) {
        const picked = this.pickChannel(choose);
        if (picked === undefined) return;
        ch = picked;
      } else {
        ch = inputs[this.current]!;
        let tries = 0;
        while (ch.size === 0 || ch.blocked) {
          if (++tries > n) return;
          if (++this.current === n) this.current = 0;
          ch = inputs[this.current]!;
        }
      }
      const kind = ch.pop();
      if (kind === RECORD) {
        head.metrics.numRecordsIn.count++;
        if (!twoInputs) op.processElement(ch.lastValue, ch.lastTime);
        else if (ch.inputIndex === 1) op.processElement1(ch.lastValue, ch.lastTime);
        else op.processElement2(ch.lastValue, ch.lastTime);
      } else if (kind === WATERMARK) {
        this.valve!.inputWatermark(ch.index, ch.lastTime);
      } else if (kind === IDLE) {
        this.valve!.inputIdle(ch.index, ch.lastValue as boolean);
      } else if (kind === END) {
        this.endChannel(ch);
      } else if (kind === BARRIER) {
        this.onBarrier(ch, ch.lastValue as number);
      }
    }
  }

  private pickChannel(choose: (task: Task, candidates: number) => number): Channel | undefined {
    const ready: Channel[] = [];
    for (const c of this.inputs) if (c.size > 0 && !c.blocked) ready.push(c);
    return ready.length <= 1 ? ready[0] : ready[choose(this, ready.length)];
  }

  private endChannel(ch: Channel): void {
    ch.ended = true;
    this.endedChannels++;
    if (this.aligning !== undefined && this.endedChannels < this.inputs.length) this.checkAligned();
    const k = ch.inputIndex;
    if (++this.endedPerInput[k]! === this.channelsPerInput[k]) this.head!.op.endInput(k);
    if (this.endedChannels === this.inputs.length) this.beginFinish();
  }

  private beginFinish(): void {
    this.setStatus('finishing');
    this.finishIndex = 0;
    this.continueFinish();
  }

  /** Finishes the operators head to tail, waiting for async finishes, then ends the outputs. */
  private continueFinish(): void {
    while (this.finishIndex < this.members.length) {
      const m = this.members[this.finishIndex++]!;
      if (m !== this.head) m.op.endInput(1);
      const r = m.op.finish();
      if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
        this.blocked = true;
        this.host.track(
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
    for (const m of this.members) m.clearCallbacks();
    this.wakeTime = Number.POSITIVE_INFINITY;
    this.setStatus('finished');
  }

  /** The job finished: operators publish what they pre-committed at the end of input. */
  async finalCommit(): Promise<void> {
    for (const m of this.members) await m.op.notifyCheckpointComplete(FINAL_CHECKPOINT_ID);
  }

  private closed = false;

  /** Closes every operator (once), collecting (not throwing) errors. */
  closeOperators(): unknown[] {
    const errors: unknown[] = [];
    if (this.closed) return errors;
    this.closed = true;
    for (const m of this.members) {
      try {
        m.op.close();
      } catch (e) {
        errors.push(e);
      }
    }
    return errors;
  }

  /** Per-operator metrics of this task. */
  metrics(): { metrics: OperatorMetrics; isSource: boolean; isSink: boolean; parallelism: number }[] {
    return this.members.map((m) => ({
      metrics: m.metrics,
      isSource: m.node.isSource,
      isSink: m.node.isSink,
      parallelism: m.node.parallelism,
    }));
  }
}
