/** Two-input streams: `connect` (co-map, co-flatMap, co-process), broadcast state, interval joins. */
import type { MapStateDescriptor } from '../state/descriptors.js';
import { InvalidArgumentError, InvalidGraphError } from '../state/errors.js';
import type { Key } from '../state/hash.js';
import {
  type BroadcastProcessFunctionLike,
  type CoFlatMapFunction,
  type CoMapFunction,
  type CoProcessFunctionLike,
  KeyedBroadcastProcessFunction,
  type KeyedBroadcastProcessFunctionLike,
  KeyedCoProcessFunction,
  type KeyedCoProcessFunctionLike,
  type ProcessJoinFunctionLike,
} from './co-functions.js';
import {
  BroadcastProcessOperator,
  CoFlatMapOperator,
  CoMapOperator,
  CoProcessOperator,
} from './co-operators.js';
import { DataStream, KeyedStream } from './data-stream.js';
import type { StreamEnvironment } from './environment.js';
import { copyFunction } from './function-copy.js';
import type { KeySelector } from './functions.js';
import { IntervalJoinOperator } from './joins/interval-join.js';
import type { AbstractStreamOperator } from './operator.js';
import type { OutputTag } from './output-tag.js';
import type { OperatorTransformation, PartitionTransformation, Transformation } from './transformation.js';

type AnyKeySelector = KeySelector<unknown, Key>;

/** Adds a two-input operator over two transformations. */
function twoInput<R>(
  env: StreamEnvironment,
  kind: string,
  inputs: [Transformation, Transformation],
  factory: () => AbstractStreamOperator<unknown>,
  keySelectors: [AnyKeySelector | undefined, AnyKeySelector | undefined],
  requiresKeyed: boolean,
): DataStream<R> {
  const t = env.addTransformation<OperatorTransformation>({
    type: 'operator',
    kind,
    name: kind,
    inputs,
    factory,
    keySelectors,
    requiresKeyed,
    isSink: false,
  });
  return new DataStream<R>(env, t);
}

function keySelectorOf(s: DataStream<unknown>): AnyKeySelector | undefined {
  return s instanceof KeyedStream ? (s.getKeySelector() as AnyKeySelector) : undefined;
}

/**
 * Two streams processed together by one function with a method per input. Keyed when both
 * inputs are keyed streams (or after `keyBy`): then the function has keyed state and timers.
 */
export class ConnectedStreams<IN1, IN2, K extends Key = Key> {
  constructor(
    readonly env: StreamEnvironment,
    readonly first: DataStream<IN1>,
    readonly second: DataStream<IN2>,
  ) {
    const k1 = keySelectorOf(first as DataStream<unknown>);
    const k2 = keySelectorOf(second as DataStream<unknown>);
    if ((k1 === undefined) !== (k2 === undefined))
      throw new InvalidGraphError(
        'connect() of a keyed and a non-keyed stream: key both (keyBy on each, or ConnectedStreams.keyBy) or neither',
      );
  }

  private get keySelectors(): [AnyKeySelector | undefined, AnyKeySelector | undefined] {
    return [
      keySelectorOf(this.first as DataStream<unknown>),
      keySelectorOf(this.second as DataStream<unknown>),
    ];
  }

  /** True if both inputs are keyed. */
  get isKeyed(): boolean {
    return this.keySelectors[0] !== undefined;
  }

  /** Keys both inputs, so that equal keys of both meet in one subtask. */
  keyBy<K2 extends Key>(
    key1: KeySelector<IN1, K2>,
    key2: KeySelector<IN2, K2>,
  ): ConnectedStreams<IN1, IN2, K2> {
    return new ConnectedStreams<IN1, IN2, K2>(this.env, this.first.keyBy(key1), this.second.keyBy(key2));
  }

  private inputs(): [Transformation, Transformation] {
    return [this.first.transformation, this.second.transformation];
  }

  /** One output per input record, by `map1` / `map2`. */
  map<R>(fn: CoMapFunction<IN1, IN2, R>): DataStream<R> {
    const [k1, k2] = this.keySelectors;
    return twoInput<R>(
      this.env,
      'coMap',
      this.inputs(),
      () => new CoMapOperator(copyFunction(fn) as CoMapFunction<unknown, unknown, unknown>, k1, k2),
      [k1, k2],
      false,
    );
  }

  /** Any number of outputs per input record, by `flatMap1` / `flatMap2`. */
  flatMap<R>(fn: CoFlatMapFunction<IN1, IN2, R>): DataStream<R> {
    const [k1, k2] = this.keySelectors;
    return twoInput<R>(
      this.env,
      'coFlatMap',
      this.inputs(),
      () => new CoFlatMapOperator(copyFunction(fn) as CoFlatMapFunction<unknown, unknown, unknown>, k1, k2),
      [k1, k2],
      false,
    );
  }

  /** A co-process function; on keyed inputs it has keyed state and timers (KeyedCoProcessFunction). */
  process<R>(fn: KeyedCoProcessFunctionLike<K, IN1, IN2, R>): DataStream<R>;
  process<R>(fn: CoProcessFunctionLike<IN1, IN2, R>): DataStream<R>;
  process<R>(
    fn: KeyedCoProcessFunctionLike<K, IN1, IN2, R> | CoProcessFunctionLike<IN1, IN2, R>,
  ): DataStream<R> {
    const [k1, k2] = this.keySelectors;
    return twoInput<R>(
      this.env,
      'coProcess',
      this.inputs(),
      () =>
        new CoProcessOperator(
          copyFunction(fn) as KeyedCoProcessFunctionLike<Key, unknown, unknown, unknown>,
          k1,
          k2,
        ),
      [k1, k2],
      fn instanceof KeyedCoProcessFunction,
    );
  }
}

/** A stream broadcast to every subtask of the stream it is connected to, with broadcast state. */
export class BroadcastStream<T> {
  /** Only for typing: the element type. */
  declare readonly __type?: T;
  constructor(
    readonly env: StreamEnvironment,
    /** @internal */ readonly transformation: PartitionTransformation,
    /** @internal */ readonly descriptors: readonly MapStateDescriptor<Key, unknown>[],
  ) {}
}

/** A (keyed or non-keyed) stream connected with a broadcast stream. */
export class BroadcastConnectedStream<IN1, IN2, K extends Key = Key> {
  constructor(
    readonly env: StreamEnvironment,
    readonly first: DataStream<IN1>,
    readonly broadcast: BroadcastStream<IN2>,
  ) {}

  /** Processes both: `processElement` (read-only broadcast state) and `processBroadcastElement`. */
  process<R>(fn: KeyedBroadcastProcessFunctionLike<K, IN1, IN2, R>): DataStream<R>;
  process<R>(fn: BroadcastProcessFunctionLike<IN1, IN2, R>): DataStream<R>;
  process<R>(
    fn: KeyedBroadcastProcessFunctionLike<K, IN1, IN2, R> | BroadcastProcessFunctionLike<IN1, IN2, R>,
  ): DataStream<R> {
    const k1 = keySelectorOf(this.first as DataStream<unknown>);
    const descriptors = this.broadcast.descriptors;
    return twoInput<R>(
      this.env,
      'broadcastProcess',
      [this.first.transformation, this.broadcast.transformation],
      () =>
        new BroadcastProcessOperator(
          copyFunction(fn) as KeyedBroadcastProcessFunctionLike<Key, unknown, unknown, unknown>,
          k1,
          descriptors,
        ),
      [k1, undefined],
      fn instanceof KeyedBroadcastProcessFunction,
    );
  }
}

/** `keyed.intervalJoin(other)`: choose the bounds with `between`. */
export class IntervalJoin<IN1, IN2, K extends Key> {
  constructor(
    private readonly left: KeyedStream<IN1, K>,
    private readonly right: KeyedStream<IN2, K>,
  ) {}

  /** Joins right elements with time in `[leftTime + lowerMs, leftTime + upperMs]`. */
  between(lowerMs: number, upperMs: number): IntervalJoined<IN1, IN2, K> {
    if (!Number.isFinite(lowerMs) || !Number.isFinite(upperMs))
      throw new InvalidArgumentError('interval join bounds must be finite numbers of milliseconds');
    if (lowerMs > upperMs)
      throw new InvalidArgumentError(
        `interval join: lower bound ${lowerMs} is greater than upper bound ${upperMs}`,
      );
    return new IntervalJoined(this.left, this.right, lowerMs, upperMs);
  }
}

/** An interval join with its bounds. */
export class IntervalJoined<IN1, IN2, K extends Key> {
  private lowerInclusive = true;
  private upperInclusive = true;
  private leftLate: OutputTag<IN1> | undefined;
  private rightLate: OutputTag<IN2> | undefined;
  constructor(
    private readonly left: KeyedStream<IN1, K>,
    private readonly right: KeyedStream<IN2, K>,
    private readonly lowerMs: number,
    private readonly upperMs: number,
  ) {}
  /** Excludes the lower bound. */
  lowerBoundExclusive(): this {
    this.lowerInclusive = false;
    return this;
  }
  /** Excludes the upper bound. */
  upperBoundExclusive(): this {
    this.upperInclusive = false;
    return this;
  }
  /** Sends left elements later than the watermark to a side output instead of dropping them. */
  sideOutputLeftLateData(tag: OutputTag<IN1>): this {
    this.leftLate = tag;
    return this;
  }
  /** Sends right elements later than the watermark to a side output instead of dropping them. */
  sideOutputRightLateData(tag: OutputTag<IN2>): this {
    this.rightLate = tag;
    return this;
  }
  /** Joins each pair with `fn`; results carry the larger timestamp of the pair. */
  process<R>(fn: ProcessJoinFunctionLike<IN1, IN2, R>): DataStream<R> {
    const k1 = this.left.getKeySelector();
    const k2 = this.right.getKeySelector();
    const { lowerMs, upperMs, lowerInclusive, upperInclusive, leftLate, rightLate } = this;
    return twoInput<R>(
      this.left.env,
      'intervalJoin',
      [this.left.transformation, this.right.transformation],
      () =>
        new IntervalJoinOperator(
          copyFunction(fn) as ProcessJoinFunctionLike<unknown, unknown, unknown>,
          k1 as AnyKeySelector,
          k2 as AnyKeySelector,
          lowerMs,
          upperMs,
          lowerInclusive,
          upperInclusive,
          leftLate as OutputTag<unknown> | undefined,
          rightLate as OutputTag<unknown> | undefined,
        ),
      [k1 as AnyKeySelector, k2 as AnyKeySelector],
      true,
    );
  }
}
