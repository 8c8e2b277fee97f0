/**
 * The operators of one subtask's chain and their outputs (Flink's `OperatorChain`): each operator
 * with its runtime (state, timers, context), and each output wired to its targets: a chained
 * operator, called directly, or the record writer of a network edge. The task drives the chain's
 * head; everything after it runs by direct calls.
 */
import type { Output } from '../../operators/contract.js';
import type { OneInputStreamOperator } from '../../operators/operator.js';
import type { OutputTag } from '../../operators/output-tag.js';
import { freezeRecord } from '../../operators/records.js';
import type { IncrementalSnapshot, OperatorSubtaskState } from '../../state/snapshot/types.js';
import type { DirtyGroups } from '../checkpoint/snapshot-writer.js';
import type { JobVertex, StreamEdge, StreamNode } from '../graph/job-graph.js';
import { OperatorMetrics, type SimpleCounter } from '../operator/metrics.js';
import { type OperatorHost, OperatorRuntime } from '../operator/operator-runtime.js';
import { IDLE, WATERMARK } from './channel.js';
import type { RecordWriter } from './writers.js';

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

/** Fan-outs compiled per output at most this wide (wider ones loop over their targets). */
const MAX_COMPILED_FAN_OUT = 4;

/**
 * A `collect` that counts the record and calls each of `ops` (2 to {@link MAX_COMPILED_FAN_OUT}
 * chained operators) in order, compiled per output as {@link directCollect} is; undefined when
 * code generation is disallowed.
 */
function fanOutCollect(
  ops: readonly OneInputStreamOperator<unknown, unknown>[],
  out: SimpleCounter,
): Collect | undefined {
  // NOTE: a loop over targets (toTargets) calls every fan-out's operators from one call site,
  // polymorphic across the job; a function per output calls each operator from a site of its own
  // (a source feeding two views, as Nexmark q3 and q8 do, runs this per event).
  if (!codeGeneration) return undefined;
  const names = ops.map((_, i) => `op${i}`);
  const body = `'use strict'; return function collect(value, timestamp) { out.count++; ${names
    .map((n) => `${n}.processElement(value, timestamp);`)
    .join(' ')} };`;
  try {
    return new Function(...names, 'out', body)(...ops, out) as Collect;
  } catch {
    codeGeneration = false;
    return undefined;
  }
}

/** An operator's output: to its main targets, its side-output targets, and watermarks to all. */
class NodeOutput implements Output<unknown> {
  private readonly single: Target | undefined;
  private readonly out: SimpleCounter;
  /** What `collect` does without a tap. */
  private readonly plain: Collect;
  /**
   * Emits a record: calls the one chained operator directly (the usual case in a chain), or the
   * targets; while tapped (the live tail), calls the tap first.
   */
  collect: Collect;
  constructor(
    private readonly main: Target[],
    private readonly side: Map<string, Target[]>,
    private readonly all: Target[],
    metrics: OperatorMetrics,
  ) {
    this.single = main.length === 1 ? main[0] : undefined;
    this.out = metrics.numRecordsOut;
    const fanOut =
      main.length > 1 &&
      main.length <= MAX_COMPILED_FAN_OUT &&
      main.every((t) => t instanceof MainChainTarget)
        ? fanOutCollect(
            main.map((t) => (t as MainChainTarget).op),
            this.out,
          )
        : undefined;
    this.plain =
      this.single instanceof MainChainTarget
        ? directCollect(this.single.op, this.out)
        : (fanOut ?? ((value, timestamp) => this.toTargets(value, timestamp)));
    this.collect = this.plain;
  }
  /**
   * Calls `tap` with every record emitted, before it goes on; `undefined` puts the plain
   * `collect` back (nothing more per record than before).
   */
  tap(tap: Collect | undefined): void {
    const plain = this.plain;
    this.collect =
      tap === undefined
        ? plain
        : (value, timestamp) => {
            tap(value, timestamp);
            plain(value, timestamp);
          };
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

/**
 * Strict records (test runs): an operator's output that deeply freezes every record before it goes
 * on, so that an operator after it that changes the record in place throws (see
 * `operators/records.ts`). A separate wrapper, installed only when asked for, so that runs without
 * it pay nothing.
 */
class FreezingOutput implements Output<unknown> {
  constructor(private readonly inner: NodeOutput) {}
  collect(value: unknown, timestamp: number): void {
    this.inner.collect(freezeRecord(value), timestamp);
  }
  collectSide<S>(tag: OutputTag<S>, value: S, timestamp: number): void {
    this.inner.collectSide(tag, freezeRecord(value), timestamp);
  }
  emitWatermark(watermark: number): void {
    this.inner.emitWatermark(watermark);
  }
  emitIdle(idle: boolean): void {
    this.inner.emitIdle(idle);
  }
}

/** One operator of the chain, with its runtime. */
export interface ChainMember extends OperatorRuntime {
  readonly node: StreamNode;
}

/** The operators of one subtask of a vertex, head first, wired to each other and to the writers. */
export class OperatorChain {
  /** Head first, in topological order. */
  readonly members: ChainMember[] = [];
  readonly head: ChainMember;
  /** The output of each member, as `members`. */
  private readonly outputs: NodeOutput[] = [];

  constructor(
    vertex: JobVertex,
    subtaskIndex: number,
    writers: ReadonlyMap<StreamEdge, RecordWriter>,
    host: OperatorHost,
    restore: ReadonlyMap<string, OperatorSubtaskState>,
    /** Freeze every record an operator emits (strict records, for tests). */
    strictRecords = false,
  ) {
    const byNode = new Map<StreamNode, ChainMember>();
    const outputs = new Map<StreamNode, NodeOutput>();
    // Created in reverse topological order, so that chained targets exist before their producers.
    for (const node of [...vertex.nodes].reverse()) {
      const metrics = new OperatorMetrics(node.operatorId, node.name, subtaskIndex);
      const main: Target[] = [];
      const side = new Map<string, Target[]>();
      const all: Target[] = [];
      for (const e of node.outEdges) {
        let target: Target;
        if (e.chained) {
          const m = byNode.get(e.target)!;
          const op = m.op as OneInputStreamOperator<unknown, unknown>;
          if (e.sideOutput === undefined) {
            // A chained operator has this one input: what it receives is what this one emits.
            m.metrics.countRecordsInAs(metrics.numRecordsOut);
            target = new MainChainTarget(op);
          } else target = new ChainTarget(op, m.metrics);
        } else {
          target = new WriterTarget(writers.get(e)!);
        }
        all.push(target);
        if (e.sideOutput === undefined) main.push(target);
        else {
          const list = side.get(e.sideOutput.id) ?? [];
          list.push(target);
          side.set(e.sideOutput.id, list);
        }
      }
      const spec = {
        operatorId: node.operatorId,
        name: node.name,
        parallelism: node.parallelism,
        maxParallelism: node.maxParallelism,
        keyed: node.keyed,
        stateBackend: node.stateBackend,
        factory: node.transformation.factory,
      };
      const output = new NodeOutput(main, side, all, metrics);
      const runtime = new OperatorRuntime(
        spec,
        subtaskIndex,
        strictRecords ? new FreezingOutput(output) : output,
        metrics,
        host,
        restore.get(node.operatorId),
      );
      byNode.set(node, Object.assign(runtime, { node }));
      outputs.set(node, output);
    }
    for (const node of vertex.nodes) {
      this.members.push(byNode.get(node)!);
      this.outputs.push(outputs.get(node)!);
    }
    this.head = this.members[0]!;
  }

  /**
   * Taps the chain's output (the live tail): the records of its last operator that is not a sink
   * (for a chain that ends in a sink, what the sink receives); `undefined` removes the tap. A
   * chain of a sink alone has no such output: nothing is tapped.
   */
  tapOutput(tap: Collect | undefined): void {
    for (let i = this.members.length - 1; i >= 0; i--)
      if (!this.members[i]!.node.isSink) {
        this.outputs[i]!.tap(tap);
        return;
      }
  }

  /** Initializes state and opens the operators (tail first, so consumers are ready). */
  open(): void {
    for (const m of this.members) m.op.initializeState();
    for (let i = this.members.length - 1; i >= 0; i--) this.members[i]!.op.open();
  }

  /** The synchronous part of a checkpoint: every operator's snapshot, head first. */
  snapshot(checkpointId: number): IncrementalSnapshot[] {
    return this.members.map((m) => m.snapshotIncremental(checkpointId));
  }

  /** Marks key groups changed again (their checkpoint was not stored). */
  redirty(groups: readonly DirtyGroups[]): void {
    for (const g of groups) this.members.find((m) => m.spec.operatorId === g.operatorId)?.redirty(g.changed);
  }

  /** Fires due processing-time callbacks and timers; returns the next time needed, or +Infinity. */
  fireProcessingTime(now: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const m of this.members) next = Math.min(next, m.fireProcessingTime(now));
    return next;
  }

  /** Drops pending processing-time callbacks (the chain finished). */
  clearCallbacks(): void {
    for (const m of this.members) m.clearCallbacks();
  }

  /** Closes every operator, collecting (not throwing) errors. */
  close(): unknown[] {
    const errors: unknown[] = [];
    for (const m of this.members) {
      try {
        m.op.close();
      } catch (e) {
        errors.push(e);
      }
      try {
        m.disposeState();
      } catch (e) {
        errors.push(e);
      }
    }
    return errors;
  }
}
