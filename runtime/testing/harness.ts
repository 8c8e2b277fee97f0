/**
 * Operator harness: drives one operator — built from your stream code, so it is exactly what the
 * job runs — with elements, watermarks and processing time, and lets a test read its output, side
 * outputs, timers and state, snapshot it and restore the snapshot into a fresh harness, also at
 * another parallelism (state moves by key group, as in a rescaled job).
 *
 * ```ts
 * const h = OperatorHarness.forOneInput<Click, Count>((s) => s.keyBy((c) => c.user).process(new CountClicks()));
 * h.processElement({ user: 'a' }, 10).processWatermark(100);
 * expect(h.output()).toEqual([...]);
 * const snap = h.snapshot();
 * const h2 = OperatorHarness.forOneInput(build, { restoreFrom: [snap], parallelism: 2, subtaskIndex: 1 });
 * ```
 */
import type { LineWriter, Output } from '../../operators/contract.js';
import type { DataStream } from '../../operators/data-stream.js';
import type { OneInputStreamOperator, TwoInputStreamOperator } from '../../operators/operator.js';
import type { OutputTag } from '../../operators/output-tag.js';
import { freezeRecord } from '../../operators/records.js';
import { isPhysical, type OperatorTransformation, operatorIdOf } from '../../operators/transformation.js';
import type {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import { InvalidArgumentError, StateError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import { DEFAULT_MAX_PARALLELISM, KeyGroupRange, keyGroupFor } from '../../state/key-groups.js';
import { restoreForSubtask } from '../../state/snapshot/redistribute.js';
import type { OperatorSubtaskState } from '../../state/snapshot/types.js';
import { ManualClock } from '../clock.js';
import { StreamExecutionEnvironment } from '../environment.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { OperatorRuntime } from '../operator/operator-runtime.js';

/** Options of a harness. */
export interface HarnessOptions {
  /** Parallelism of the operator (default 1). */
  parallelism?: number;
  /** Which subtask this harness is (default 0). */
  subtaskIndex?: number;
  /** Number of key groups (default 128). */
  maxParallelism?: number;
  /** The processing-time clock (default: a manual clock at 0). */
  clock?: ManualClock;
  /** Snapshots (of any number of subtasks, at any parallelism) to start from. */
  restoreFrom?: readonly OperatorSubtaskState[];
  /**
   * Strict records (default true): the records given to the operator and those it emits are
   * deeply frozen, so that an operator that changes a record in place throws where it does.
   */
  strictRecords?: boolean;
}

/** A record the operator emitted, with its timestamp (`null` for none). (The evictors' `TimestampedValue` in `tidemark` is a window element.) */
export interface EmittedRecord<T> {
  value: T;
  timestamp: number | null;
}

/** A registered timer, as a test sees it. */
export interface HarnessTimer {
  service: string;
  domain: 'EVENT_TIME' | 'PROCESSING_TIME';
  key: Key;
  namespace: unknown;
  timestamp: number;
}

class RecordingOutput implements Output<unknown> {
  constructor(private readonly strict: boolean) {}
  records: EmittedRecord<unknown>[] = [];
  watermarks: number[] = [];
  idle: boolean[] = [];
  sides = new Map<string, EmittedRecord<unknown>[]>();
  collect(value: unknown, timestamp: number): void {
    if (this.strict) freezeRecord(value);
    this.records.push({ value, timestamp: timestamp === Number.NEGATIVE_INFINITY ? null : timestamp });
  }
  collectSide<S>(tag: OutputTag<S>, value: S, timestamp: number): void {
    if (this.strict) freezeRecord(value);
    let list = this.sides.get(tag.id);
    if (list === undefined) this.sides.set(tag.id, (list = []));
    list.push({ value, timestamp: timestamp === Number.NEGATIVE_INFINITY ? null : timestamp });
  }
  emitWatermark(watermark: number): void {
    this.watermarks.push(watermark);
  }
  emitIdle(idle: boolean): void {
    this.idle.push(idle);
  }
}

type AnyOperator = OneInputStreamOperator<unknown, unknown> &
  TwoInputStreamOperator<unknown, unknown, unknown>;

/** Drives one operator. `IN2` is the second input's type for two-input operators. */
export class OperatorHarness<IN, OUT, IN2 = never> {
  private readonly out: RecordingOutput;
  private readonly strict: boolean;
  private readonly runtime: OperatorRuntime;
  private readonly op: AnyOperator;
  readonly clock: ManualClock;
  private readonly pending: Promise<unknown>[] = [];
  private readonly inputWatermarks = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY];
  private combinedWatermark = Number.NEGATIVE_INFINITY;
  private closed = false;
  /** Lines written by print sinks. */
  readonly printed: string[] = [];

  private constructor(
    private readonly transformation: OperatorTransformation,
    private readonly twoInputs: boolean,
    options: HarnessOptions,
  ) {
    const parallelism = options.parallelism ?? 1;
    const subtaskIndex = options.subtaskIndex ?? 0;
    const maxParallelism = options.maxParallelism ?? transformation.maxParallelism ?? DEFAULT_MAX_PARALLELISM;
    if (subtaskIndex < 0 || subtaskIndex >= parallelism)
      throw new InvalidArgumentError(`subtaskIndex ${subtaskIndex} is not in [0, ${parallelism})`);
    this.clock = options.clock ?? new ManualClock(0);
    this.strict = options.strictRecords ?? true;
    this.out = new RecordingOutput(this.strict);
    const printed = this.printed;
    const stdout: LineWriter = { writeLine: (l) => printed.push(l) };
    const spec = {
      operatorId: operatorIdOf(transformation),
      name: transformation.name,
      parallelism,
      maxParallelism,
      keyed: transformation.keySelectors.some((k) => k !== undefined),
      factory: transformation.factory,
    };
    const restore =
      options.restoreFrom === undefined
        ? undefined
        : restoreForSubtask(options.restoreFrom, subtaskIndex, parallelism, maxParallelism);
    this.runtime = new OperatorRuntime(
      spec,
      subtaskIndex,
      this.out,
      new OperatorMetrics(spec.operatorId, spec.name, subtaskIndex),
      {
        jobName: 'harness',
        clock: this.clock,
        results: { add: () => {} },
        stdout,
        attemptNumber: 0,
        runId: 'harness',
        wakeUp: () => {},
        wakeWhenIdle: () => {},
        wakeAt: () => {},
        blockOn: (p) => {
          this.pending.push(p);
        },
        alignmentGroup: () => ({ report: () => {}, minWatermark: () => Number.NEGATIVE_INFINITY }),
      },
      restore,
    );
    this.op = this.runtime.op as AnyOperator;
    this.op.initializeState();
    this.op.open();
  }

  /**
   * A harness for the single operator that `build` adds after its input (a `keyBy` before it is
   * fine; several operators are not).
   */
  static forOneInput<IN, OUT>(
    build: (input: DataStream<IN>) => DataStream<OUT>,
    options: HarnessOptions = {},
  ): OperatorHarness<IN, OUT> {
    const env = new StreamExecutionEnvironment({ parallelism: options.parallelism ?? 1 });
    const input = env.fromElements<IN>();
    const before = env.transformations.length;
    build(input);
    return new OperatorHarness<IN, OUT>(OperatorHarness.single(env, before, 1), false, options);
  }

  /** A harness for a two-input operator that `build` adds over its two inputs (connect, joins). */
  static forTwoInputs<IN1, IN2, OUT>(
    build: (first: DataStream<IN1>, second: DataStream<IN2>) => DataStream<OUT>,
    options: HarnessOptions = {},
  ): OperatorHarness<IN1, OUT, IN2> {
    const env = new StreamExecutionEnvironment({ parallelism: options.parallelism ?? 1 });
    const a = env.fromElements<IN1>();
    const b = env.fromElements<IN2>();
    const before = env.transformations.length;
    build(a, b);
    return new OperatorHarness<IN1, OUT, IN2>(OperatorHarness.single(env, before, 2), true, options);
  }

  private static single(
    env: StreamExecutionEnvironment,
    before: number,
    inputs: number,
  ): OperatorTransformation {
    const added = env.transformations.slice(before).filter(isPhysical);
    if (added.length !== 1 || added[0]!.type !== 'operator')
      throw new InvalidArgumentError(
        `the harness drives exactly one operator, but the function added ${added.length}: ${added.map((t) => t.name).join(', ') || 'none'}`,
      );
    const t = added[0] as OperatorTransformation;
    if (t.inputs.length !== inputs)
      throw new InvalidArgumentError(`operator '${t.name}' has ${t.inputs.length} inputs, not ${inputs}`);
    return t;
  }

  // ---- input ----

  /** An element on the (first) input, with an event timestamp or none. */
  processElement(value: IN, timestamp?: number): this {
    const ts = timestamp ?? Number.NEGATIVE_INFINITY;
    if (this.strict) freezeRecord(value);
    if (this.twoInputs) this.op.processElement1(value, ts);
    else this.op.processElement(value, ts);
    return this;
  }

  /** An element on the first input of a two-input operator. */
  processElement1(value: IN, timestamp?: number): this {
    if (this.strict) freezeRecord(value);
    this.op.processElement1(value, timestamp ?? Number.NEGATIVE_INFINITY);
    return this;
  }

  /** An element on the second input of a two-input operator. */
  processElement2(value: IN2, timestamp?: number): this {
    if (this.strict) freezeRecord(value);
    this.op.processElement2(value, timestamp ?? Number.NEGATIVE_INFINITY);
    return this;
  }

  /** A watermark on the (only) input; one that does not advance is dropped, as in a job. */
  processWatermark(watermark: number): this {
    if (this.twoInputs) return this.processWatermark1(watermark).processWatermark2(watermark);
    this.advanceCombined(watermark);
    return this;
  }

  /** A watermark on input 1 of a two-input operator (the operator sees the minimum of both). */
  processWatermark1(watermark: number): this {
    this.inputWatermarks[0] = Math.max(this.inputWatermarks[0]!, watermark);
    this.advanceCombined(Math.min(this.inputWatermarks[0]!, this.inputWatermarks[1]!));
    return this;
  }

  /** A watermark on input 2 of a two-input operator. */
  processWatermark2(watermark: number): this {
    this.inputWatermarks[1] = Math.max(this.inputWatermarks[1]!, watermark);
    this.advanceCombined(Math.min(this.inputWatermarks[0]!, this.inputWatermarks[1]!));
    return this;
  }

  private advanceCombined(watermark: number): void {
    if (watermark <= this.combinedWatermark) return;
    this.combinedWatermark = watermark;
    this.op.processWatermark(watermark);
  }

  /** Sets processing time (it only moves forward) and fires what became due. */
  setProcessingTime(timeMs: number): this {
    if (timeMs > this.clock.now()) this.clock.set(timeMs);
    this.runtime.fireProcessingTime(this.clock.now());
    return this;
  }

  /** Moves processing time forward by `ms`. */
  advanceProcessingTime(ms: number): this {
    return this.setProcessingTime(this.clock.now() + ms);
  }

  /** Ends the input(s) and finishes the operator (it flushes what it buffers). */
  async endInput(): Promise<this> {
    this.op.endInput(1);
    if (this.twoInputs) this.op.endInput(2);
    await this.op.finish();
    await Promise.all(this.pending);
    return this;
  }

  /** Waits for what the operator is waiting for (async sinks). */
  async settle(): Promise<this> {
    await Promise.all(this.pending.splice(0));
    return this;
  }

  // ---- output ----

  /** The values emitted so far. */
  output(): OUT[] {
    return this.out.records.map((r) => r.value as OUT);
  }

  /** The records emitted so far, with timestamps. */
  records(): EmittedRecord<OUT>[] {
    return this.out.records as EmittedRecord<OUT>[];
  }

  /** The watermarks forwarded so far. */
  watermarks(): number[] {
    return [...this.out.watermarks];
  }

  /** The values sent to a side output. */
  sideOutput<T>(tag: OutputTag<T>): T[] {
    return (this.out.sides.get(tag.id) ?? []).map((r) => r.value as T);
  }

  /** The records sent to a side output, with timestamps. */
  sideOutputRecords<T>(tag: OutputTag<T>): EmittedRecord<T>[] {
    return (this.out.sides.get(tag.id) ?? []) as EmittedRecord<T>[];
  }

  /** Forgets the output so far (records, watermarks, side outputs). */
  clearOutput(): this {
    this.out.records = [];
    this.out.watermarks = [];
    this.out.sides.clear();
    return this;
  }

  // ---- timers, state, metrics ----

  /** Every registered timer. */
  timers(): HarnessTimer[] {
    const out: HarnessTimer[] = [];
    for (const [service, svc] of this.runtime.timerServices) {
      for (const [, t] of svc.snapshotByKeyGroup()) {
        for (const [domain, flat] of [
          ['EVENT_TIME', t.event],
          ['PROCESSING_TIME', t.processing],
        ] as const)
          for (let i = 0; i < flat.length; i += 3)
            out.push({
              service,
              domain,
              key: flat[i] as Key,
              namespace: flat[i + 1],
              timestamp: flat[i + 2] as number,
            });
      }
    }
    return out.sort((a, b) => a.timestamp - b.timestamp);
  }

  numEventTimeTimers(): number {
    return this.timers().filter((t) => t.domain === 'EVENT_TIME').length;
  }

  numProcessingTimeTimers(): number {
    return this.timers().filter((t) => t.domain === 'PROCESSING_TIME').length;
  }

  /** The keyed state of `key` (a value, list, map entries, or reduced/aggregated result). */
  state<T>(descriptor: ValueStateDescriptor<T>, key: Key): T | undefined;
  state<T>(descriptor: ListStateDescriptor<T>, key: Key): readonly T[];
  state<UK extends Key, UV>(descriptor: MapStateDescriptor<UK, UV>, key: Key): Map<UK, UV>;
  state<T>(descriptor: ReducingStateDescriptor<T>, key: Key): T | undefined;
  state<IN_, ACC, R>(descriptor: AggregatingStateDescriptor<IN_, ACC, R>, key: Key): R | undefined;
  state(
    descriptor:
      | ValueStateDescriptor<unknown>
      | ListStateDescriptor<unknown>
      | MapStateDescriptor<Key, unknown>
      | ReducingStateDescriptor<unknown>
      | AggregatingStateDescriptor<unknown, unknown, unknown>,
    key: Key,
  ): unknown {
    const backend = this.runtime.keyed;
    if (backend === undefined)
      throw new StateError(`operator '${this.transformation.name}' has no keyed state`);
    const previous = backend.groupIndex >= 0 ? backend.getCurrentKey() : undefined;
    backend.setCurrentKey(key);
    try {
      switch (descriptor.kind) {
        case 'value':
          return backend.getState(descriptor as ValueStateDescriptor<unknown>).value();
        case 'list':
          return [...backend.getState(descriptor as ListStateDescriptor<unknown>).get()];
        case 'map':
          return new Map(backend.getState(descriptor as MapStateDescriptor<Key, unknown>).entries());
        case 'reducing':
          return backend.getState(descriptor as ReducingStateDescriptor<unknown>).get();
        case 'aggregating':
          return backend.getState(descriptor as AggregatingStateDescriptor<unknown, unknown, unknown>).get();
      }
    } finally {
      if (previous !== undefined) backend.setCurrentKey(previous);
    }
  }

  /** Every key with an entry in the named state. */
  keys(stateName: string): Key[] {
    return this.runtime.keyed === undefined ? [] : [...this.runtime.keyed.keys(stateName)];
  }

  /** The key groups this subtask owns. */
  keyGroupRange(): KeyGroupRange {
    return this.runtime.keyed?.keyGroupRange ?? KeyGroupRange.all(this.runtime.spec.maxParallelism);
  }

  /** True if `element` belongs to this subtask (by its key; any element if the operator is not keyed). */
  ownsElement(element: IN): boolean {
    const selector = this.transformation.keySelectors[0];
    return selector === undefined ? this.runtime.subtaskIndex === 0 : this.ownsKey(selector(element));
  }

  /** True if `key` belongs to this subtask. */

  ownsKey(key: Key): boolean {
    return this.keyGroupRange().contains(keyGroupFor(key, this.runtime.spec.maxParallelism));
  }

  /** Current values of the operator's metrics (counters and gauges). */
  metrics(): Record<string, number> {
    return this.runtime.metrics.values();
  }

  /** A snapshot of the operator (state, timers, operator state), as a checkpoint would take it. */
  snapshot(checkpointId = 1): OperatorSubtaskState {
    return this.runtime.snapshot(checkpointId);
  }

  /** Closes the operator. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.op.close();
  }
}
