/**
 * Operator harness: drives one operator — built from your stream code, so it is exactly what the
 * job runs — with elements, watermarks, watermark status and processing time, and lets a test read
 * its output (one ordered list of records, watermarks and watermark statuses, as Flink's
 * `getOutput()`), side outputs, timers and state, snapshot it and restore the snapshot into a
 * fresh harness, also at another parallelism (state moves by key group, as in a rescaled job).
 *
 * ```ts
 * const h = OperatorHarness.forOneInput<Click, Count>((s) => s.keyBy((c) => c.user).process(new CountClicks()));
 * h.processElement({ user: 'a' }, 10).processWatermark(100);
 * expect(h.events()).toEqual([{ record: ..., timestamp: 100 }, { watermark: 100 }]);
 * const snap = h.snapshot();
 * const h2 = OperatorHarness.forOneInput(build, { restoreFrom: [snap], parallelism: 2, subtaskIndex: 1 });
 * ```
 *
 * NOTE: watermarks, as in Flink's test harnesses. With one input and no `inputChannels` option,
 * every watermark and watermark status goes straight to the operator (Flink's
 * `OneInputStreamOperatorTestHarness`): one that does not advance reaches it too, and the
 * operator decides (the built-in operators fire nothing again and forward it). With
 * `inputChannels`, and always for two inputs, they go through the runtime's own watermark valve,
 * one channel each, exactly as a task combines its input channels: a channel's watermark that
 * does not advance is dropped there, the operator sees the minimum over the active channels, and
 * idleness is combined as in a job. A two-input task has one valve over the channels of both
 * inputs (see `runtime/task/input-processor.ts`), and so does the harness.
 */
import type { LineWriter, Output } from '../../operators/contract.js';
import type { DataStream } from '../../operators/data-stream.js';
import type { OneInputStreamOperator, TwoInputStreamOperator } from '../../operators/operator.js';
import type { OutputTag } from '../../operators/output-tag.js';
import { freezeRecord } from '../../operators/records.js';
import { isPhysical, type OperatorTransformation, operatorIdOf } from '../../operators/transformation.js';
import { SlicingWindowOperator } from '../../operators/windows/slicing-window-operator.js';
import { WindowOperator } from '../../operators/windows/window-operator.js';
import type { Window } from '../../operators/windows/windows.js';
import type {
  AggregatingStateDescriptor,
  ListStateDescriptor,
  MapStateDescriptor,
  ReducingStateDescriptor,
  StateDescriptor,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import { InvalidArgumentError, StateError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import { canonicalKey } from '../../state/key-codec.js';
import { DEFAULT_MAX_PARALLELISM, KeyGroupRange, keyGroupFor } from '../../state/key-groups.js';
import { restoreForSubtask } from '../../state/snapshot/redistribute.js';
import type { OperatorSubtaskState } from '../../state/snapshot/types.js';
import { type StateBackendConfig, stateBackendFromEnv } from '../../state/state-backends.js';
import { ManualClock } from '../clock.js';
import { StreamExecutionEnvironment } from '../environment.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { OperatorRuntime } from '../operator/operator-runtime.js';
import { WatermarkValve } from '../task/watermark-valve.js';

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
   * Input channels, combined by the runtime's watermark valve as in a task: a number for a
   * one-input operator, `[first, second]` for a two-input one (a number gives both inputs that
   * many). Default: one input without a valve (every watermark reaches the operator, as in
   * Flink's harness); two inputs with one channel each.
   */
  inputChannels?: number | readonly [number, number];
  /**
   * Strict records (default true): the records given to the operator and those it emits are
   * deeply frozen, so that an operator that changes a record in place throws where it does.
   */
  strictRecords?: boolean;
  /** The keyed-state backend of the operator (default: TIDEMARK_STATE_BACKEND's, else the heap). */
  stateBackend?: StateBackendConfig;
}

/** A watermark status (Flink's `WatermarkStatus`): an input or output is idle or active. */
export type WatermarkStatus = 'IDLE' | 'ACTIVE';

/**
 * One thing an operator emitted on its main output, in order (Flink's `StreamRecord`,
 * `Watermark` and `WatermarkStatus` in `getOutput()`). `timestamp` is `null` for a record without
 * one.
 */
export type HarnessEvent<T> =
  | { record: T; timestamp: number | null }
  | { watermark: number }
  | { watermarkStatus: WatermarkStatus };

/** Which channel of an input a watermark or status comes on (0-based; default: every channel). */
export interface ChannelOption {
  channel?: number;
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
  events: HarnessEvent<unknown>[] = [];
  sides = new Map<string, EmittedRecord<unknown>[]>();
  collect(value: unknown, timestamp: number): void {
    if (this.strict) freezeRecord(value);
    const ts = timestamp === Number.NEGATIVE_INFINITY ? null : timestamp;
    this.records.push({ value, timestamp: ts });
    this.events.push({ record: value, timestamp: ts });
  }
  collectSide<S>(tag: OutputTag<S>, value: S, timestamp: number): void {
    if (this.strict) freezeRecord(value);
    let list = this.sides.get(tag.id);
    if (list === undefined) this.sides.set(tag.id, (list = []));
    list.push({ value, timestamp: timestamp === Number.NEGATIVE_INFINITY ? null : timestamp });
  }
  emitWatermark(watermark: number): void {
    this.watermarks.push(watermark);
    this.events.push({ watermark });
  }
  emitIdle(idle: boolean): void {
    this.events.push({ watermarkStatus: idle ? 'IDLE' : 'ACTIVE' });
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
  /** The valve over the input channels (both inputs' for two inputs), if any. */
  private readonly valve: WatermarkValve | undefined;
  /** Channels per input (index 0: first input). */
  private readonly channels: readonly [number, number];
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
      stateBackend: options.stateBackend ?? stateBackendFromEnv(),
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
    const ch = options.inputChannels;
    const [c1, c2] = ch === undefined ? [1, twoInputs ? 1 : 0] : typeof ch === 'number' ? [ch, ch] : ch;
    this.channels = [c1, twoInputs ? c2 : 0];
    for (const c of this.channels.slice(0, twoInputs ? 2 : 1))
      if (!Number.isInteger(c) || c < 1)
        throw new InvalidArgumentError(`inputChannels must be positive integers, got ${JSON.stringify(ch)}`);
    if (twoInputs || ch !== undefined) {
      const op = this.op;
      this.valve = new WatermarkValve(this.channels[0] + this.channels[1], {
        watermark: (wm) => op.processWatermark(wm),
        idle: (idle) => op.processIdle(idle),
      });
    }
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

  /**
   * A watermark on the input (both inputs of a two-input operator): on `channel`, or on every
   * channel in turn. Without a valve (one input, no `inputChannels`) it goes straight to the
   * operator, even if it does not advance (as in Flink's harness); through the valve, a channel's
   * watermark that does not advance is dropped and the operator sees the minimum of the channels.
   */
  processWatermark(watermark: number, options: ChannelOption = {}): this {
    if (this.twoInputs) {
      if (options.channel !== undefined)
        throw new InvalidArgumentError(
          'a two-input harness takes a watermark on a channel with processWatermark1 or processWatermark2',
        );
      return this.processWatermark1(watermark).processWatermark2(watermark);
    }
    if (this.valve === undefined) {
      if (options.channel !== undefined) this.channelOf(1, options.channel);
      this.op.processWatermark(watermark);
    } else this.toChannels(1, options.channel, (c) => this.valve!.inputWatermark(c, watermark));
    return this;
  }

  /** A watermark on input 1 of a two-input operator (on `channel`, or every channel of input 1). */
  processWatermark1(watermark: number, options: ChannelOption = {}): this {
    this.needTwoInputs('processWatermark1');
    this.toChannels(1, options.channel, (c) => this.valve!.inputWatermark(c, watermark));
    return this;
  }

  /** A watermark on input 2 of a two-input operator (on `channel`, or every channel of input 2). */
  processWatermark2(watermark: number, options: ChannelOption = {}): this {
    this.needTwoInputs('processWatermark2');
    this.toChannels(2, options.channel, (c) => this.valve!.inputWatermark(c, watermark));
    return this;
  }

  /**
   * A watermark status on the input (both inputs of a two-input operator): on `channel`, or on
   * every channel in turn. Without a valve it goes straight to the operator (which forwards it);
   * through the valve, idle channels leave the watermark minimum, and the operator goes idle when
   * every channel is.
   */
  processWatermarkStatus(status: WatermarkStatus, options: ChannelOption = {}): this {
    if (this.twoInputs) {
      if (options.channel !== undefined)
        throw new InvalidArgumentError(
          'a two-input harness takes a watermark status on a channel with processWatermarkStatus1 or processWatermarkStatus2',
        );
      return this.processWatermarkStatus1(status).processWatermarkStatus2(status);
    }
    const idle = OperatorHarness.isIdle(status);
    if (this.valve === undefined) {
      if (options.channel !== undefined) this.channelOf(1, options.channel);
      this.op.processIdle(idle);
    } else this.toChannels(1, options.channel, (c) => this.valve!.inputIdle(c, idle));
    return this;
  }

  /** A watermark status on input 1 of a two-input operator. */
  processWatermarkStatus1(status: WatermarkStatus, options: ChannelOption = {}): this {
    this.needTwoInputs('processWatermarkStatus1');
    const idle = OperatorHarness.isIdle(status);
    this.toChannels(1, options.channel, (c) => this.valve!.inputIdle(c, idle));
    return this;
  }

  /** A watermark status on input 2 of a two-input operator. */
  processWatermarkStatus2(status: WatermarkStatus, options: ChannelOption = {}): this {
    this.needTwoInputs('processWatermarkStatus2');
    const idle = OperatorHarness.isIdle(status);
    this.toChannels(2, options.channel, (c) => this.valve!.inputIdle(c, idle));
    return this;
  }

  private static isIdle(status: WatermarkStatus): boolean {
    if (status !== 'IDLE' && status !== 'ACTIVE')
      throw new InvalidArgumentError(
        `a watermark status is 'IDLE' or 'ACTIVE', got ${JSON.stringify(status)}`,
      );
    return status === 'IDLE';
  }

  private needTwoInputs(method: string): void {
    if (!this.twoInputs)
      throw new InvalidArgumentError(`${method} is for two-input operators; this harness has one input`);
  }

  /** The valve index of `channel` of `input` (1 or 2); checks the channel. */
  private channelOf(input: 1 | 2, channel: number): number {
    const n = input === 1 ? this.channels[0] : this.channels[1];
    if (!Number.isInteger(channel) || channel < 0 || channel >= n)
      throw new InvalidArgumentError(
        `input ${input} has ${n} channel${n === 1 ? '' : 's'} (0..${n - 1}), not channel ${channel}`,
      );
    return input === 1 ? channel : this.channels[0] + channel;
  }

  private toChannels(input: 1 | 2, channel: number | undefined, f: (valveChannel: number) => void): void {
    if (channel !== undefined) f(this.channelOf(input, channel));
    else {
      const n = input === 1 ? this.channels[0] : this.channels[1];
      for (let c = 0; c < n; c++) f(this.channelOf(input, c));
    }
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

  /**
   * Everything emitted on the main output so far, in order: records, watermarks and watermark
   * statuses (Flink's `getOutput()`), e.g. `[{ record: 'a', timestamp: 5 }, { watermark: 9 },
   * { watermarkStatus: 'IDLE' }]`. Compare it with {@link assertOutputEqualsSorted}.
   */
  events(): HarnessEvent<OUT>[] {
    return [...this.out.events] as HarnessEvent<OUT>[];
  }

  /** The values sent to a side output. */
  sideOutput<T>(tag: OutputTag<T>): T[] {
    return (this.out.sides.get(tag.id) ?? []).map((r) => r.value as T);
  }

  /** The records sent to a side output, with timestamps. */
  sideOutputRecords<T>(tag: OutputTag<T>): EmittedRecord<T>[] {
    return (this.out.sides.get(tag.id) ?? []) as EmittedRecord<T>[];
  }

  /** Forgets the output so far (records, watermarks, statuses, side outputs). */
  clearOutput(): this {
    this.out.records = [];
    this.out.watermarks = [];
    this.out.events = [];
    this.out.sides.clear();
    return this;
  }

  // ---- timers, state, metrics ----

  /**
   * The registered timers, by timestamp; with `filter`, only those of a key, a time domain or a
   * window (its namespace; compared by `namespace()`).
   */
  timers(filter: { key?: Key; domain?: HarnessTimer['domain']; window?: Window } = {}): HarnessTimer[] {
    const out: HarnessTimer[] = [];
    const key = filter.key === undefined ? undefined : canonicalKey(filter.key);
    const ns = filter.window?.namespace();
    for (const [service, svc] of this.runtime.timerServices) {
      for (const [, t] of svc.snapshotByKeyGroup()) {
        for (const [domain, flat] of [
          ['EVENT_TIME', t.event],
          ['PROCESSING_TIME', t.processing],
        ] as const) {
          if (filter.domain !== undefined && filter.domain !== domain) continue;
          for (let i = 0; i < flat.length; i += 3) {
            if (key !== undefined && canonicalKey(flat[i] as Key) !== key) continue;
            const namespace = flat[i + 1];
            if (ns !== undefined && !(isWindow(namespace) && namespace.namespace() === ns)) continue;
            out.push({ service, domain, key: flat[i] as Key, namespace, timestamp: flat[i + 2] as number });
          }
        }
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

  /**
   * The keyed state of `key` that `descriptor` describes (a value, list, map entries, or
   * reduced/aggregated result); for state kept per window (a window function's
   * `context.windowState()`, a trigger's state), the state of `window`. State that was never
   * written reads as empty, and reading registers nothing.
   */
  state<T>(descriptor: ValueStateDescriptor<T>, key: Key, window?: Window): T | undefined;
  state<T>(descriptor: ListStateDescriptor<T>, key: Key, window?: Window): readonly T[];
  state<UK extends Key, UV>(descriptor: MapStateDescriptor<UK, UV>, key: Key, window?: Window): Map<UK, UV>;
  state<T>(descriptor: ReducingStateDescriptor<T>, key: Key, window?: Window): T | undefined;
  state<IN_, ACC, R>(
    descriptor: AggregatingStateDescriptor<IN_, ACC, R>,
    key: Key,
    window?: Window,
  ): R | undefined;
  state(descriptor: StateDescriptor, key: Key, window?: Window): unknown {
    const backend = this.keyedBackend();
    const namespaced = backend.isNamespaced(descriptor.name);
    if (namespaced === undefined) return emptyState(descriptor);
    if (namespaced && window === undefined)
      throw new StateError(
        `state '${descriptor.name}' of operator '${this.transformation.name}' is kept per window: read it with state(descriptor, key, window)`,
      );
    if (!namespaced && window !== undefined)
      throw new StateError(
        `state '${descriptor.name}' of operator '${this.transformation.name}' is not kept per window: read it with state(descriptor, key)`,
      );
    return this.withKey(key, () => {
      const handle = (
        namespaced ? backend.getNamespacedState(descriptor) : backend.getState(descriptor)
      ) as StateHandle & { setNamespace?(ns: string | number): void };
      if (window !== undefined) handle.setNamespace!(window.namespace());
      switch (descriptor.kind) {
        case 'value':
          return handle.value!();
        case 'list':
          return [...(handle.get!() as readonly unknown[])];
        case 'map':
          return new Map(handle.entries!());
        default:
          return handle.get!();
      }
    });
  }

  /** Every key with an entry in the state `descriptor` describes (or the state of that name). */
  keys(descriptor: StateDescriptor | string): Key[] {
    const name = typeof descriptor === 'string' ? descriptor : descriptor.name;
    return this.runtime.keyed === undefined ? [] : [...this.runtime.keyed.keys(name)];
  }

  /**
   * The contents of a window of a window operator for `key`, as its window function would get
   * them: the reduced or aggregated value, or the list of elements (`undefined` if the window holds
   * nothing). For merging (session) windows, `window` is the merged window.
   */
  windowContents(key: Key, window: Window): unknown {
    const op = this.windowOperator('windowContents');
    return this.withKey(key, () => op.inspectContents(window));
  }

  /** The windows of a window operator that hold contents for `key`, by start. */
  windows(key: Key): Window[] {
    const op = this.windowOperator('windows');
    const timers = this.timers({ key });
    return this.withKey(key, () =>
      op instanceof SlicingWindowOperator
        ? op.inspectWindows(timers)
        : op.inspectWindows(timers.map((t) => t.namespace)),
    ).sort(
      (a, b) =>
        a.maxTimestamp() - b.maxTimestamp() ||
        a.namespace().toString().localeCompare(b.namespace().toString()),
    );
  }

  private windowOperator(
    method: string,
  ): WindowOperator<Key, unknown, Window> | SlicingWindowOperator<Key, unknown> {
    if (this.op instanceof WindowOperator) return this.op as unknown as WindowOperator<Key, unknown, Window>;
    if (this.op instanceof SlicingWindowOperator) return this.op as SlicingWindowOperator<Key, unknown>;
    throw new InvalidArgumentError(
      `${method}() reads a window operator's windows, but operator '${this.transformation.name}' is not one`,
    );
  }

  private keyedBackend() {
    const backend = this.runtime.keyed;
    if (backend === undefined)
      throw new StateError(`operator '${this.transformation.name}' has no keyed state`);
    return backend;
  }

  /** Runs `f` with `key` current, then restores the operator's current key. */
  private withKey<R>(key: Key, f: () => R): R {
    const backend = this.keyedBackend();
    const previous = backend.groupIndex >= 0 ? backend.getCurrentKey() : undefined;
    backend.setCurrentKey(key);
    try {
      return f();
    } finally {
      if (previous !== undefined) backend.setCurrentKey(previous);
    }
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
    try {
      this.op.close();
    } finally {
      this.runtime.disposeState();
    }
  }
}

/** The read side of any kind of state handle. */
interface StateHandle {
  value?(): unknown;
  get?(): unknown;
  entries?(): Iterable<[Key, unknown]>;
}

/** What a state that was never written reads as. */
function emptyState(d: StateDescriptor): unknown {
  if (d.kind === 'list') return [];
  if (d.kind === 'map') return new Map();
  if (d.kind === 'value') return (d as ValueStateDescriptor<unknown>).defaultValue;
  return undefined;
}

function isWindow(ns: unknown): ns is Window {
  return typeof ns === 'object' && ns !== null && typeof (ns as Window).namespace === 'function';
}
