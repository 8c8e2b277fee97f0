/**
 * User function types. Every function can be given as a plain function or as an object with the
 * named method (and optional `open`/`close`); classes extending the abstract bases below also get
 * `getRuntimeContext()`.
 */
import type {
  AggregatingState,
  AggregatingStateDescriptor,
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  ReducingState,
  ReducingStateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from '../state/descriptors.js';
import { StateError } from '../state/errors.js';
import type { Key } from '../state/hash.js';
import type { MetricGroup, TaskInfo } from './contract.js';
import type { OutputTag } from './output-tag.js';

/** Receives the records a function emits. */
export interface Collector<T> {
  collect(value: T): void;
}

/** Extracts the key of a record. Must be deterministic. */
export type KeySelector<T, K extends Key> = (value: T) => K;

/** What a user function can reach at run time: task identity, state and metrics. */
export interface RuntimeContext {
  readonly taskInfo: TaskInfo;
  readonly metrics: MetricGroup;
  /** Keyed state (only on a keyed stream). */
  getState<T>(descriptor: ValueStateDescriptor<T>): ValueState<T>;
  getListState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
  getMapState<UK extends Key, UV>(descriptor: MapStateDescriptor<UK, UV>): MapState<UK, UV>;
  getReducingState<T>(descriptor: ReducingStateDescriptor<T>): ReducingState<T>;
  getAggregatingState<IN, ACC, OUT>(
    descriptor: AggregatingStateDescriptor<IN, ACC, OUT>,
  ): AggregatingState<IN, OUT>;
  /** Operator (non-keyed) list state of this subtask, redistributed evenly on rescale. */
  getOperatorListState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
  /** Operator list state that every subtask receives whole on restore. */
  getUnionListState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
  /** True if this subtask started from a checkpoint or savepoint. */
  isRestored(): boolean;
}

/** Lifecycle hooks any function object may have. */
export interface RichFunction {
  /** Called once per subtask before the first record. */
  open?(context: RuntimeContext): void;
  /** Called once per subtask when it ends (normally or not). */
  close?(): void;
  /**
   * Called when a checkpoint is taken, before state is captured: write what the function keeps
   * in fields into the state it got from the runtime context (Flink's CheckpointedFunction).
   */
  snapshotState?(checkpointId: number): void;
}

/**
 * Base class for functions written as classes: `open` and `close` hooks and
 * `getRuntimeContext()` (Flink's `AbstractRichFunction`).
 */
export abstract class AbstractRichFunction implements RichFunction {
  private runtimeContext: RuntimeContext | undefined;
  /** @internal set by the operator before `open`. */
  setRuntimeContext(context: RuntimeContext): void {
    this.runtimeContext = context;
  }
  /** The runtime context; available from `open` on. */
  getRuntimeContext(): RuntimeContext {
    if (this.runtimeContext === undefined)
      throw new StateError('the runtime context is only available once the function is opened');
    return this.runtimeContext;
  }
  open(_context: RuntimeContext): void {}
  close(): void {}
}

/** `map`: one record in, one out. */
export type MapFunction<T, R> = ((value: T) => R) | (RichFunction & { map(value: T): R });
/** `filter`: keeps the records for which it returns true. */
export type FilterFunction<T> = ((value: T) => boolean) | (RichFunction & { filter(value: T): boolean });
/** `flatMap`: any number of records out, returned as an iterable or sent to `out`. */
export type FlatMapFunction<T, R> =
  | ((value: T, out: Collector<R>) => Iterable<R> | undefined | void)
  | (RichFunction & { flatMap(value: T, out: Collector<R>): Iterable<R> | undefined | void });

/** A class-style map function. */
export abstract class RichMapFunction<T, R> extends AbstractRichFunction {
  abstract map(value: T): R;
}
/** A class-style filter function. */
export abstract class RichFilterFunction<T> extends AbstractRichFunction {
  abstract filter(value: T): boolean;
}
/** A class-style flatMap function. */
export abstract class RichFlatMapFunction<T, R> extends AbstractRichFunction {
  abstract flatMap(value: T, out: Collector<R>): Iterable<R> | undefined | void;
}

/** The time domain of a timer. */
export type TimeDomain = 'EVENT_TIME' | 'PROCESSING_TIME';

/** Timers of the current key (keyed streams only) and the current times. */
export interface TimerService {
  currentProcessingTime(): number;
  currentWatermark(): number;
  registerEventTimeTimer(timestamp: number): void;
  registerProcessingTimeTimer(timestamp: number): void;
  deleteEventTimeTimer(timestamp: number): void;
  deleteProcessingTimeTimer(timestamp: number): void;
}

/** The context of `processElement` in a {@link ProcessFunction}. */
export interface ProcessContext {
  /** The timestamp of the current record, or `null` if it has none. */
  timestamp(): number | null;
  timerService(): TimerService;
  /** Emits to a side output. */
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** The context of a {@link KeyedProcessFunction}: the current key is known. */
export interface KeyedProcessContext<K> extends ProcessContext {
  getCurrentKey(): K;
}

/** The context of `onTimer`. */
export interface OnTimerContext<K> extends KeyedProcessContext<K> {
  timeDomain(): TimeDomain;
}

/** A low-level function on a non-keyed stream (no timers, no keyed state). */
export interface ProcessFunctionLike<I, O> extends RichFunction {
  processElement(value: I, ctx: ProcessContext, out: Collector<O>): void;
}

/** A low-level function on a keyed stream: keyed state and timers. */
export interface KeyedProcessFunctionLike<K, I, O> extends RichFunction {
  processElement(value: I, ctx: KeyedProcessContext<K>, out: Collector<O>): void;
  onTimer?(timestamp: number, ctx: OnTimerContext<K>, out: Collector<O>): void;
}

/** Flink's `ProcessFunction`, as a class to extend. */
export abstract class ProcessFunction<I, O>
  extends AbstractRichFunction
  implements ProcessFunctionLike<I, O>
{
  abstract processElement(value: I, ctx: ProcessContext, out: Collector<O>): void;
}

/** Flink's `KeyedProcessFunction`, as a class to extend. */
export abstract class KeyedProcessFunction<K, I, O>
  extends AbstractRichFunction
  implements KeyedProcessFunctionLike<K, I, O>
{
  abstract processElement(value: I, ctx: KeyedProcessContext<K>, out: Collector<O>): void;
  onTimer(_timestamp: number, _ctx: OnTimerContext<K>, _out: Collector<O>): void {}
}

/** What a sink function is given with each record. */
export interface SinkContext {
  /** The record's timestamp, or `null`. */
  timestamp(): number | null;
  currentWatermark(): number;
  currentProcessingTime(): number;
}

/**
 * A sink: `invoke` is called for every record. If it returns a Promise, the next record waits for
 * it (this is how a slow sink slows its sources down).
 */
export type SinkFunction<T> =
  | ((value: T, ctx: SinkContext) => void | Promise<void>)
  | (RichFunction & {
      invoke(value: T, ctx: SinkContext): void | Promise<void>;
      /** Called at the end of a bounded input, before `close`; may flush. */
      finish?(): void | Promise<void>;
    });
