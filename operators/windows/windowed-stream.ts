/**
 * The windowed-stream API (Flink's `WindowedStream` and `AllWindowedStream`): `keyBy(...).window(
 * assigner)` or `windowAll(assigner)`, optionally `trigger`, `evictor`, `allowedLateness` and
 * `sideOutputLateData`, then a window function (`reduce`, `aggregate`, `process`, `apply`, or a
 * field aggregation) that makes the window operator.
 */
import { InvalidArgumentError, InvalidGraphError } from '../../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../../state/functions.js';
import type { Key } from '../../state/hash.js';
import { DataStream, type KeyedStream } from '../data-stream.js';
import { copyFunction } from '../function-copy.js';
import type { KeySelector } from '../functions.js';
import type { OneInputStreamOperator } from '../operator.js';
import { OutputTag } from '../output-tag.js';
import type { OperatorTransformation, PartitionTransformation } from '../transformation.js';
import { MergingWindowAssigner, WindowAssigner } from './assigners.js';
import { Evictor } from './evictors.js';
import {
  checkPreAggregation,
  GlobalWindowOperator,
  LocalWindowAggregateOperator,
  preAggregatedKey,
  preAggregationProblem,
} from './pre-aggregate.js';
import { SlicingWindowOperator, sliceShapeOf } from './slicing-window-operator.js';
import { Trigger } from './triggers.js';
import {
  type AllWindowFunction,
  AllWindowFunctionAdapter,
  ProcessAllWindowFunctionAdapter,
  type ProcessAllWindowFunctionLike,
  type ProcessWindowFunctionLike,
  type WindowFunction,
  WindowFunctionAdapter,
} from './window-functions.js';
import { type WindowContentsSpec, WindowOperator } from './window-operator.js';
import type { TimeWindow, Window } from './windows.js';

/** The fields of `T` that hold numbers (for `sum`, `min`, `max`, `minBy`, `maxBy`). */
export type NumericField<T> = { [P in keyof T]-?: T[P] extends number ? P : never }[keyof T] & string;

/** A window function given after `reduce`/`aggregate`, or to `apply`/`process`. */
type KeyedWindowFn<IN, OUT, K, W extends Window> =
  | ProcessWindowFunctionLike<IN, OUT, K, W>
  | WindowFunction<IN, OUT, K, W>;

/** Makes a fresh window function for one subtask. */
type FnFactory<K, W extends Window> = () => ProcessWindowFunctionLike<unknown, unknown, K, W>;

function keyedFactory<K, W extends Window>(fn: KeyedWindowFn<unknown, unknown, K, W>): FnFactory<K, W> {
  if (typeof fn === 'function') return () => new WindowFunctionAdapter(fn);
  if (typeof fn === 'object' && fn !== null) {
    if (typeof (fn as { process?: unknown }).process === 'function')
      return () => copyFunction(fn as ProcessWindowFunctionLike<unknown, unknown, K, W>);
    if (typeof (fn as { apply?: unknown }).apply === 'function')
      return () => new WindowFunctionAdapter(copyFunction(fn as WindowFunction<unknown, unknown, K, W>));
  }
  throw new InvalidArgumentError(
    'a window function must be a function, an object with process(key, context, elements, out) or an object with apply(key, window, elements, out)',
  );
}

function allFactory<W extends Window>(
  fn: ProcessAllWindowFunctionLike<unknown, unknown, W> | AllWindowFunction<unknown, unknown, W>,
): FnFactory<unknown, W> {
  if (typeof fn === 'function') return () => new AllWindowFunctionAdapter(fn);
  if (typeof fn === 'object' && fn !== null) {
    if (typeof (fn as { process?: unknown }).process === 'function')
      return () =>
        new ProcessAllWindowFunctionAdapter(
          copyFunction(fn as ProcessAllWindowFunctionLike<unknown, unknown, W>),
        );
    if (typeof (fn as { apply?: unknown }).apply === 'function')
      return () => new AllWindowFunctionAdapter(copyFunction(fn as AllWindowFunction<unknown, unknown, W>));
  }
  throw new InvalidArgumentError(
    'a window function must be a function, an object with process(context, elements, out) or an object with apply(window, elements, out)',
  );
}

function checkReduce(fn: unknown): void {
  if (typeof fn !== 'function')
    throw new InvalidArgumentError('reduce() needs a function (a, b) => combined');
}

function checkAggregate(fn: unknown): void {
  const f = fn as AggregateFunction<unknown, unknown, unknown> | null;
  if (
    typeof f !== 'object' ||
    f === null ||
    typeof f.createAccumulator !== 'function' ||
    typeof f.add !== 'function' ||
    typeof f.getResult !== 'function'
  )
    throw new InvalidArgumentError(
      'aggregate() needs an AggregateFunction { createAccumulator, add, getResult, merge? }',
    );
}

/** Settings and operator construction shared by keyed and non-keyed windowed streams. */
class WindowBuilder<T, K extends Key, W extends Window> {
  trigger: Trigger<T, W>;
  evictor: Evictor<T, W> | undefined = undefined;
  allowedLatenessMs = 0;
  lateDataTag: OutputTag<T> | undefined = undefined;
  preAggregate = false;
  slicing = true;

  constructor(
    readonly input: KeyedStream<T, K>,
    readonly assigner: WindowAssigner<T, W>,
    readonly nonParallel: boolean,
  ) {
    if (!(assigner instanceof WindowAssigner))
      throw new InvalidArgumentError(
        `${nonParallel ? 'windowAll' : 'window'}() needs a WindowAssigner (e.g. TumblingEventTimeWindows.of(60_000))`,
      );
    this.trigger = assigner.getDefaultTrigger();
  }

  setTrigger(trigger: Trigger<T, W>): void {
    if (!(trigger instanceof Trigger)) throw new InvalidArgumentError('trigger() needs a Trigger');
    if (this.assigner instanceof MergingWindowAssigner && !trigger.canMerge())
      throw new InvalidArgumentError(
        `A merging window assigner (${this.assigner}) cannot be used with a trigger that does not support merging (${trigger}).`,
      );
    this.trigger = trigger;
  }

  setEvictor(evictor: Evictor<T, W>): void {
    if (!(evictor instanceof Evictor)) throw new InvalidArgumentError('evictor() needs an Evictor');
    this.evictor = evictor;
  }

  setAllowedLateness(ms: number): void {
    if (!Number.isSafeInteger(ms) || ms < 0)
      throw new InvalidArgumentError(
        `The allowed lateness cannot be negative: allowedLateness() needs an integer number of ms >= 0, got ${ms}`,
      );
    this.allowedLatenessMs = ms;
  }

  setLateDataTag(tag: OutputTag<T>): void {
    if (!(tag instanceof OutputTag))
      throw new InvalidArgumentError('sideOutputLateData() needs an OutputTag');
    this.lateDataTag = tag;
  }

  setPreAggregate(): void {
    this.preAggregate = true;
  }

  disableSlicing(): void {
    this.slicing = false;
  }

  /**
   * Adds the window operator to the job (two operators if pre-aggregated). `orderSensitive`: the
   * reduce depends on the order of elements (see sliceShapeOf).
   */
  build<R>(
    udfName: string,
    contents: WindowContentsSpec<T>,
    fn: FnFactory<K, W> | undefined,
    orderSensitive = false,
  ): DataStream<R> {
    const { input, assigner, trigger, evictor, allowedLatenessMs, lateDataTag } = this;
    if (
      contents.kind === 'aggregate' &&
      evictor === undefined &&
      assigner instanceof MergingWindowAssigner &&
      typeof contents.aggregate.merge !== 'function'
    )
      throw new InvalidArgumentError(
        `aggregate() on merging windows (${assigner}) needs an AggregateFunction with merge(a, b): the accumulators of merged windows are merged`,
      );
    const env = input.env;
    const keySelector = input.getKeySelector();
    const kind = this.nonParallel ? 'windowAll' : 'window';
    const prefix = evictor === undefined ? '' : 'Evicting';
    const parts = [String(assigner), String(trigger)];
    if (evictor !== undefined) parts.push(String(evictor));
    parts.push(udfName);
    const name = `${prefix}${this.nonParallel ? 'AllWindow' : 'Window'}(${parts.join(', ')})`;
    if (this.preAggregate) return this.buildPreAggregated<R>(name, contents, fn);
    const shape = this.slicing
      ? sliceShapeOf(
          assigner as unknown as WindowAssigner<unknown, Window>,
          trigger as unknown as Trigger<unknown, Window>,
          evictor as unknown as Evictor<unknown, Window> | undefined,
          contents as WindowContentsSpec<unknown>,
          orderSensitive,
        )
      : undefined;
    const factory: () => OneInputStreamOperator<unknown, unknown> =
      shape !== undefined
        ? () =>
            new SlicingWindowOperator<K, T>({
              shape,
              assigner: assigner as unknown as WindowAssigner<T, TimeWindow>,
              allowedLatenessMs,
              lateDataTag,
              keySelector,
              contents: copyContents(contents),
              fn: fn?.() as ProcessWindowFunctionLike<unknown, unknown, K, TimeWindow> | undefined,
            }) as unknown as OneInputStreamOperator<unknown, unknown>
        : () =>
            new WindowOperator<K, T, W>({
              assigner,
              trigger: copyFunction(trigger),
              evictor: evictor === undefined ? undefined : copyFunction(evictor),
              allowedLatenessMs,
              lateDataTag,
              keySelector,
              contents: copyContents(contents),
              fn: fn?.(),
            }) as unknown as OneInputStreamOperator<unknown, unknown>;
    const t = env.addTransformation<OperatorTransformation>({
      type: 'operator',
      kind,
      name,
      inputs: [input.transformation],
      factory,
      keySelectors: [keySelector as KeySelector<unknown, Key>],
      requiresKeyed: true,
      isSink: false,
    });
    const out = new DataStream<R>(env, t);
    // NOTE: as Flink's windowAll: one subtask with a constant key (one key group).
    if (this.nonParallel) out.setParallelism(1).setMaxParallelism(1);
    return out;
  }

  /**
   * The local operator (before the keyBy, at its input's parallelism), a keyBy on what it sends,
   * and the global window operator (see pre-aggregate.ts).
   */
  private buildPreAggregated<R>(
    name: string,
    contents: WindowContentsSpec<T>,
    fn: FnFactory<K, W> | undefined,
  ): DataStream<R> {
    const { input, assigner, trigger, evictor, allowedLatenessMs, lateDataTag } = this;
    const env = input.env;
    checkPreAggregation(
      env.config.jobName,
      name,
      preAggregationProblem(
        assigner as unknown as WindowAssigner<unknown, Window>,
        trigger as unknown as Trigger<unknown, Window>,
        evictor as unknown as Evictor<unknown, Window> | undefined,
        contents as WindowContentsSpec<unknown>,
      ),
    );
    const keyed = input.transformation;
    if (keyed.type !== 'partition' || keyed.partitioner.kind !== 'hash')
      throw new InvalidGraphError(
        `preAggregate() on '${name}' needs a stream made by keyBy() (or windowAll())`,
      );
    const keySelector = input.getKeySelector();
    const timeAssigner = assigner as unknown as WindowAssigner<T, TimeWindow>;
    const local = env.addTransformation<OperatorTransformation>({
      type: 'operator',
      kind: this.nonParallel ? 'windowAllLocal' : 'windowLocal',
      name: `LocalPreAggregate(${name})`,
      inputs: [keyed.inputs[0]],
      factory: () =>
        new LocalWindowAggregateOperator<T, K>({
          assigner: timeAssigner,
          keySelector,
          contents: copyContents(contents),
        }) as unknown as OneInputStreamOperator<unknown, unknown>,
      keySelectors: [undefined],
      requiresKeyed: false,
      isSink: false,
      parallelismOfInput: true,
    });
    const partitionKey = preAggregatedKey(keySelector) as KeySelector<unknown, Key>;
    const shuffle = env.addTransformation<PartitionTransformation>({
      type: 'partition',
      kind: 'keyBy',
      name: 'keyBy',
      inputs: [local],
      partitioner: { kind: 'hash', keySelector: partitionKey },
    });
    const global = env.addTransformation<OperatorTransformation>({
      type: 'operator',
      kind: this.nonParallel ? 'windowAll' : 'window',
      name,
      inputs: [shuffle],
      factory: () =>
        new GlobalWindowOperator<K, T>({
          assigner: timeAssigner,
          trigger: copyFunction(trigger) as unknown as Trigger<T, TimeWindow>,
          evictor: undefined,
          allowedLatenessMs,
          lateDataTag,
          keySelector,
          contents: copyContents(contents),
          fn: fn?.() as ProcessWindowFunctionLike<unknown, unknown, K, TimeWindow> | undefined,
        }) as unknown as OneInputStreamOperator<unknown, unknown>,
      keySelectors: [partitionKey],
      requiresKeyed: true,
      isSink: false,
    });
    // NOTE: the local operator's id is the global operator's (its uid, or the derived id) with
    // '-local' appended, so a uid set on the returned stream names both, and both restore.
    local.idOf = { transformation: global, suffix: '-local' };
    const out = new DataStream<R>(env, global);
    if (this.nonParallel) out.setParallelism(1).setMaxParallelism(1);
    return out;
  }
}

function copyContents<T>(c: WindowContentsSpec<T>): WindowContentsSpec<T> {
  return c.kind === 'aggregate' ? { kind: 'aggregate', aggregate: copyFunction(c.aggregate) } : c;
}

function reduceSpec<T>(fn: ReduceFunction<T>): WindowContentsSpec<T> {
  checkReduce(fn);
  return { kind: 'reduce', reduce: fn };
}

function aggregateSpec<T>(fn: AggregateFunction<T, unknown, unknown>): WindowContentsSpec<T> {
  checkAggregate(fn);
  return { kind: 'aggregate', aggregate: fn };
}

const LIST = { kind: 'list' } as const;

function listSpec<T>(): WindowContentsSpec<T> {
  return LIST;
}

type Numeric = Record<string, number>;

function sumBy<T>(field: string): ReduceFunction<T> {
  return (a, b) => ({ ...a, [field]: (a as Numeric)[field]! + (b as Numeric)[field]! }) as T;
}
function minOf<T>(field: string): ReduceFunction<T> {
  return (a, b) =>
    (b as Numeric)[field]! < (a as Numeric)[field]! ? ({ ...a, [field]: (b as Numeric)[field] } as T) : a;
}
function maxOf<T>(field: string): ReduceFunction<T> {
  return (a, b) =>
    (b as Numeric)[field]! > (a as Numeric)[field]! ? ({ ...a, [field]: (b as Numeric)[field] } as T) : a;
}
function minElementBy<T>(field: string): ReduceFunction<T> {
  return (a, b) => ((b as Numeric)[field]! < (a as Numeric)[field]! ? b : a);
}
function maxElementBy<T>(field: string): ReduceFunction<T> {
  return (a, b) => ((b as Numeric)[field]! > (a as Numeric)[field]! ? b : a);
}

/** A keyed stream cut into windows: choose a window function to get a stream of results. */
export class WindowedStream<T, K extends Key, W extends Window> {
  private readonly builder: WindowBuilder<T, K, W>;

  constructor(input: KeyedStream<T, K>, assigner: WindowAssigner<T, W>) {
    this.builder = new WindowBuilder(input, assigner, false);
  }

  /** Replaces the assigner's default trigger. */
  trigger(trigger: Trigger<T, W>): this {
    this.builder.setTrigger(trigger);
    return this;
  }

  /** Removes elements from firing windows (the window then keeps every element). */
  evictor(evictor: Evictor<T, W>): this {
    this.builder.setEvictor(evictor);
    return this;
  }

  /**
   * Keeps event-time windows for `ms` after their end: late elements within it are added and
   * re-fire the window (default 0).
   */
  allowedLateness(ms: number): this {
    this.builder.setAllowedLateness(ms);
    return this;
  }

  /** Sends elements too late for all of their windows to the side output `tag` instead of dropping them. */
  sideOutputLateData(tag: OutputTag<T>): this {
    this.builder.setLateDataTag(tag);
    return this;
  }

  /**
   * Pre-aggregates before the keyBy (Flink SQL's local-global, or two-phase, aggregation): a local
   * operator at the input's parallelism keeps one partial result per key and window and sends it
   * when the watermark reaches the window's end, so a job with few keys aggregates in parallel
   * and each subtask sends one record per key and window. Results, lateness, the late side output
   * and metrics are those without it. Needs event-time tumbling or sliding windows, the default
   * trigger, no evictor, and `reduce` or `aggregate` with `merge` (an error otherwise, naming the
   * operator). A `.uid(u)` on the result names the global operator `u` and the local one `u-local`.
   */
  preAggregate(): this {
    this.builder.setPreAggregate();
    return this;
  }

  /**
   * Keeps the window operator (one accumulator per key and window) for a `reduce` or `aggregate`
   * that would otherwise run sliced (one accumulator per key and slice, see the README's windows
   * section): for a reduce or merge that depends on the order of elements, or to restore a
   * savepoint of an earlier version, whose window state the sliced operator does not read.
   */
  disableSlicing(): this {
    this.builder.disableSlicing();
    return this;
  }

  /** Reduces each window incrementally; emits the reduced value (or passes it to `windowFn`). */
  reduce(fn: ReduceFunction<T>): DataStream<T>;
  reduce<R>(fn: ReduceFunction<T>, windowFn: KeyedWindowFn<T, R, K, W>): DataStream<R>;
  reduce<R>(fn: ReduceFunction<T>, windowFn?: KeyedWindowFn<T, R, K, W>): DataStream<T> | DataStream<R> {
    const f =
      windowFn === undefined ? undefined : keyedFactory(windowFn as KeyedWindowFn<unknown, unknown, K, W>);
    return this.builder.build<R>('reduce', reduceSpec(fn), f);
  }

  /** Aggregates each window incrementally; emits the result (or passes it to `windowFn`). */
  aggregate<ACC, R>(fn: AggregateFunction<T, ACC, R>): DataStream<R>;
  aggregate<ACC, V, R>(fn: AggregateFunction<T, ACC, V>, windowFn: KeyedWindowFn<V, R, K, W>): DataStream<R>;
  aggregate(
    fn: AggregateFunction<T, unknown, unknown>,
    windowFn?: KeyedWindowFn<never, never, K, W>,
  ): DataStream<unknown> {
    const f =
      windowFn === undefined ? undefined : keyedFactory(windowFn as KeyedWindowFn<unknown, unknown, K, W>);
    return this.builder.build('aggregate', aggregateSpec(fn), f);
  }

  /** Evaluates each window with all its elements, its key and context. */
  process<R>(fn: ProcessWindowFunctionLike<T, R, K, W>): DataStream<R> {
    return this.builder.build(
      'process',
      listSpec<T>(),
      keyedFactory(fn as KeyedWindowFn<unknown, unknown, K, W>),
    );
  }

  /** Evaluates each window with a (legacy) window function: key, window and elements. */
  apply<R>(fn: WindowFunction<T, R, K, W>): DataStream<R> {
    return this.builder.build(
      'apply',
      listSpec<T>(),
      keyedFactory(fn as KeyedWindowFn<unknown, unknown, K, W>),
    );
  }

  /** Per window, the first element with `field` replaced by the sum of `field`. */
  sum(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`sum(${field})`, reduceSpec(sumBy<T>(field)), undefined, true);
  }

  /** Per window, the first element with `field` replaced by the minimum of `field`. */
  min(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`min(${field})`, reduceSpec(minOf<T>(field)), undefined, true);
  }

  /** Per window, the first element with `field` replaced by the maximum of `field`. */
  max(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`max(${field})`, reduceSpec(maxOf<T>(field)), undefined, true);
  }

  /** Per window, the (first) element with the smallest `field`. */
  minBy(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`minBy(${field})`, reduceSpec(minElementBy<T>(field)), undefined, true);
  }

  /** Per window, the (first) element with the largest `field`. */
  maxBy(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`maxBy(${field})`, reduceSpec(maxElementBy<T>(field)), undefined, true);
  }
}

/** A window function of a non-keyed window, given after `reduce`/`aggregate`, or to `apply`/`process`. */
type AllWindowFn<IN, OUT, W extends Window> =
  | ProcessAllWindowFunctionLike<IN, OUT, W>
  | AllWindowFunction<IN, OUT, W>;

/**
 * A whole (non-keyed) stream cut into windows. As in Flink, it runs as a keyed window operator with
 * one constant key at parallelism 1.
 */
export class AllWindowedStream<T, W extends Window> {
  private readonly builder: WindowBuilder<T, number, W>;

  constructor(input: DataStream<T>, assigner: WindowAssigner<T, W>) {
    this.builder = new WindowBuilder(
      input.keyBy(() => 0),
      assigner,
      true,
    );
  }

  /** Replaces the assigner's default trigger. */
  trigger(trigger: Trigger<T, W>): this {
    this.builder.setTrigger(trigger);
    return this;
  }

  /** Removes elements from firing windows (the window then keeps every element). */
  evictor(evictor: Evictor<T, W>): this {
    this.builder.setEvictor(evictor);
    return this;
  }

  /** Keeps event-time windows for `ms` after their end (default 0). */
  allowedLateness(ms: number): this {
    this.builder.setAllowedLateness(ms);
    return this;
  }

  /** Sends elements too late for all of their windows to the side output `tag`. */
  sideOutputLateData(tag: OutputTag<T>): this {
    this.builder.setLateDataTag(tag);
    return this;
  }

  /**
   * Pre-aggregates in parallel before the single window subtask (Flink SQL's local-global
   * aggregation): each input subtask sends one partial result per window; see
   * `WindowedStream.preAggregate` for where it applies and the uids of the two operators.
   */
  preAggregate(): this {
    this.builder.setPreAggregate();
    return this;
  }

  /**
   * Keeps the window operator (one accumulator per key and window) for a `reduce` or `aggregate`
   * that would otherwise run sliced (one accumulator per key and slice, see the README's windows
   * section): for a reduce or merge that depends on the order of elements, or to restore a
   * savepoint of an earlier version, whose window state the sliced operator does not read.
   */
  disableSlicing(): this {
    this.builder.disableSlicing();
    return this;
  }

  /** Reduces each window incrementally; emits the reduced value (or passes it to `windowFn`). */
  reduce(fn: ReduceFunction<T>): DataStream<T>;
  reduce<R>(fn: ReduceFunction<T>, windowFn: AllWindowFn<T, R, W>): DataStream<R>;
  reduce<R>(fn: ReduceFunction<T>, windowFn?: AllWindowFn<T, R, W>): DataStream<T> | DataStream<R> {
    const f = windowFn === undefined ? undefined : allFactory(windowFn as AllWindowFn<unknown, unknown, W>);
    return this.builder.build<R>('reduce', reduceSpec(fn), f);
  }

  /** Aggregates each window incrementally; emits the result (or passes it to `windowFn`). */
  aggregate<ACC, R>(fn: AggregateFunction<T, ACC, R>): DataStream<R>;
  aggregate<ACC, V, R>(fn: AggregateFunction<T, ACC, V>, windowFn: AllWindowFn<V, R, W>): DataStream<R>;
  aggregate(
    fn: AggregateFunction<T, unknown, unknown>,
    windowFn?: AllWindowFn<never, never, W>,
  ): DataStream<unknown> {
    const f = windowFn === undefined ? undefined : allFactory(windowFn as AllWindowFn<unknown, unknown, W>);
    return this.builder.build('aggregate', aggregateSpec(fn), f);
  }

  /** Evaluates each window with all its elements and context. */
  process<R>(fn: ProcessAllWindowFunctionLike<T, R, W>): DataStream<R> {
    return this.builder.build('process', listSpec<T>(), allFactory(fn as AllWindowFn<unknown, unknown, W>));
  }

  /** Evaluates each window with a (legacy) all-window function: window and elements. */
  apply<R>(fn: AllWindowFunction<T, R, W>): DataStream<R> {
    return this.builder.build('apply', listSpec<T>(), allFactory(fn as AllWindowFn<unknown, unknown, W>));
  }

  /** Per window, the first element with `field` replaced by the sum of `field`. */
  sum(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`sum(${field})`, reduceSpec(sumBy<T>(field)), undefined, true);
  }

  /** Per window, the first element with `field` replaced by the minimum of `field`. */
  min(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`min(${field})`, reduceSpec(minOf<T>(field)), undefined, true);
  }

  /** Per window, the first element with `field` replaced by the maximum of `field`. */
  max(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`max(${field})`, reduceSpec(maxOf<T>(field)), undefined, true);
  }

  /** Per window, the (first) element with the smallest `field`. */
  minBy(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`minBy(${field})`, reduceSpec(minElementBy<T>(field)), undefined, true);
  }

  /** Per window, the (first) element with the largest `field`. */
  maxBy(field: NumericField<T>): DataStream<T> {
    return this.builder.build(`maxBy(${field})`, reduceSpec(maxElementBy<T>(field)), undefined, true);
  }
}
