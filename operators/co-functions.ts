/** User function types of two-input operations: connect, broadcast state, joins. */

import type {
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  ValueState,
  ValueStateDescriptor,
} from '../state/descriptors.js';
import type { Key } from '../state/hash.js';

import {
  AbstractRichFunction,
  type Collector,
  type KeyedProcessContext,
  type OnTimerContext,
  type ProcessContext,
  type RichFunction,
} from './functions.js';
import type { OutputTag } from './output-tag.js';

/** `map` over connected streams: one function per input. */
export interface CoMapFunction<IN1, IN2, OUT> extends RichFunction {
  map1(value: IN1): OUT;
  map2(value: IN2): OUT;
}

/** `flatMap` over connected streams: one function per input. */
export interface CoFlatMapFunction<IN1, IN2, OUT> extends RichFunction {
  flatMap1(value: IN1, out: Collector<OUT>): Iterable<OUT> | undefined | void;
  flatMap2(value: IN2, out: Collector<OUT>): Iterable<OUT> | undefined | void;
}

/** A low-level function over two non-keyed inputs. */
export interface CoProcessFunctionLike<IN1, IN2, OUT> extends RichFunction {
  processElement1(value: IN1, ctx: ProcessContext, out: Collector<OUT>): void;
  processElement2(value: IN2, ctx: ProcessContext, out: Collector<OUT>): void;
}

/** A low-level function over two inputs keyed the same way: keyed state and timers. */
export interface KeyedCoProcessFunctionLike<K, IN1, IN2, OUT> extends RichFunction {
  processElement1(value: IN1, ctx: KeyedProcessContext<K>, out: Collector<OUT>): void;
  processElement2(value: IN2, ctx: KeyedProcessContext<K>, out: Collector<OUT>): void;
  onTimer?(timestamp: number, ctx: OnTimerContext<K>, out: Collector<OUT>): void;
}

/** Flink's `CoProcessFunction`, as a class to extend. */
export abstract class CoProcessFunction<IN1, IN2, OUT>
  extends AbstractRichFunction
  implements CoProcessFunctionLike<IN1, IN2, OUT>
{
  abstract processElement1(value: IN1, ctx: ProcessContext, out: Collector<OUT>): void;
  abstract processElement2(value: IN2, ctx: ProcessContext, out: Collector<OUT>): void;
}

/** Flink's `KeyedCoProcessFunction`, as a class to extend. */
export abstract class KeyedCoProcessFunction<K, IN1, IN2, OUT>
  extends AbstractRichFunction
  implements KeyedCoProcessFunctionLike<K, IN1, IN2, OUT>
{
  abstract processElement1(value: IN1, ctx: KeyedProcessContext<K>, out: Collector<OUT>): void;
  abstract processElement2(value: IN2, ctx: KeyedProcessContext<K>, out: Collector<OUT>): void;
  onTimer(_timestamp: number, _ctx: OnTimerContext<K>, _out: Collector<OUT>): void {}
}

/** Broadcast state as the non-broadcast side sees it: read only. */
export interface ReadOnlyBroadcastState<K extends Key, V> {
  get(key: K): V | undefined;
  contains(key: K): boolean;
  entries(): IterableIterator<[K, V]>;
  keys(): IterableIterator<K>;
  values(): IterableIterator<V>;
  readonly size: number;
}

/** Broadcast state as the broadcast side sees it: the same in every subtask, writable. */
export interface BroadcastState<K extends Key, V> extends ReadOnlyBroadcastState<K, V> {
  put(key: K, value: V): void;
  putAll(entries: Iterable<readonly [K, V]>): void;
  remove(key: K): void;
  clear(): void;
}

/** Context of the non-broadcast side: read-only broadcast state. */
export interface ReadOnlyBroadcastContext extends ProcessContext {
  getBroadcastState<K extends Key, V>(descriptor: MapStateDescriptor<K, V>): ReadOnlyBroadcastState<K, V>;
}

/** Context of the broadcast side: writable broadcast state. */
export interface BroadcastContext extends ProcessContext {
  getBroadcastState<K extends Key, V>(descriptor: MapStateDescriptor<K, V>): BroadcastState<K, V>;
}

/** Context of the broadcast side of a keyed stream: can also visit the keyed state of every key. */
export interface KeyedBroadcastContext<K> extends BroadcastContext {
  /**
   * Calls `fn` with every key of this subtask that has state for `descriptor`, and that state
   * (scoped to the key).
   */
  applyToKeyedState<T>(descriptor: ValueStateDescriptor<T>, fn: (key: K, state: ValueState<T>) => void): void;
  applyToKeyedState<T>(descriptor: ListStateDescriptor<T>, fn: (key: K, state: ListState<T>) => void): void;
  applyToKeyedState<UK extends Key, UV>(
    descriptor: MapStateDescriptor<UK, UV>,
    fn: (key: K, state: MapState<UK, UV>) => void,
  ): void;
}

/** The context of the keyed side's `processElement` with broadcast state. */
export interface KeyedReadOnlyBroadcastContext<K> extends ReadOnlyBroadcastContext {
  getCurrentKey(): K;
}

/** The context of `onTimer` in a keyed broadcast process function. */
export interface KeyedBroadcastOnTimerContext<K>
  extends KeyedReadOnlyBroadcastContext<K>,
    OnTimerContext<K> {}

/** Flink's `BroadcastProcessFunction`: a non-keyed stream connected with a broadcast stream. */
export abstract class BroadcastProcessFunction<IN1, IN2, OUT> extends AbstractRichFunction {
  abstract processElement(value: IN1, ctx: ReadOnlyBroadcastContext, out: Collector<OUT>): void;
  abstract processBroadcastElement(value: IN2, ctx: BroadcastContext, out: Collector<OUT>): void;
}

/** Flink's `KeyedBroadcastProcessFunction`: a keyed stream connected with a broadcast stream. */
export abstract class KeyedBroadcastProcessFunction<K, IN1, IN2, OUT> extends AbstractRichFunction {
  abstract processElement(value: IN1, ctx: KeyedReadOnlyBroadcastContext<K>, out: Collector<OUT>): void;
  abstract processBroadcastElement(value: IN2, ctx: KeyedBroadcastContext<K>, out: Collector<OUT>): void;
  onTimer(_timestamp: number, _ctx: KeyedBroadcastOnTimerContext<K>, _out: Collector<OUT>): void {}
}

/** Object-literal form of a {@link BroadcastProcessFunction}. */
export interface BroadcastProcessFunctionLike<IN1, IN2, OUT> extends RichFunction {
  processElement(value: IN1, ctx: ReadOnlyBroadcastContext, out: Collector<OUT>): void;
  processBroadcastElement(value: IN2, ctx: BroadcastContext, out: Collector<OUT>): void;
}

/** Object-literal form of a {@link KeyedBroadcastProcessFunction}. */
export interface KeyedBroadcastProcessFunctionLike<K, IN1, IN2, OUT> extends RichFunction {
  processElement(value: IN1, ctx: KeyedReadOnlyBroadcastContext<K>, out: Collector<OUT>): void;
  processBroadcastElement(value: IN2, ctx: KeyedBroadcastContext<K>, out: Collector<OUT>): void;
  onTimer?(timestamp: number, ctx: KeyedBroadcastOnTimerContext<K>, out: Collector<OUT>): void;
}

/** The context of a {@link ProcessJoinFunction}. */
export interface ProcessJoinContext {
  getLeftTimestamp(): number;
  getRightTimestamp(): number;
  /** The result's timestamp: the larger of the two. */
  getTimestamp(): number;
  output<X>(tag: OutputTag<X>, value: X): void;
}

/** Joins a pair of an interval join. */
export interface ProcessJoinFunctionLike<IN1, IN2, OUT> extends RichFunction {
  processElement(left: IN1, right: IN2, ctx: ProcessJoinContext, out: Collector<OUT>): void;
}

/** Flink's `ProcessJoinFunction`, as a class to extend. */
export abstract class ProcessJoinFunction<IN1, IN2, OUT>
  extends AbstractRichFunction
  implements ProcessJoinFunctionLike<IN1, IN2, OUT>
{
  abstract processElement(left: IN1, right: IN2, ctx: ProcessJoinContext, out: Collector<OUT>): void;
}
