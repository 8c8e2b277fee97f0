/**
 * The typed stream API: `DataStream<T>`, `KeyedStream<T, K>` and sinks. Every call adds a
 * transformation to the environment's description; nothing runs until the job executes.
 */

import type { MapStateDescriptor } from '../state/descriptors.js';
import { InvalidArgumentError, InvalidGraphError } from '../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../state/functions.js';
import type { Key } from '../state/hash.js';
import {
  FilterOperator,
  FlatMapOperator,
  KeyedAggregateOperator,
  KeyedProcessOperator,
  KeyedReduceOperator,
  MapOperator,
  ProcessOperator,
} from './basic.js';
import {
  BroadcastConnectedStream,
  BroadcastStream,
  ConnectedStreams,
  IntervalJoin,
} from './connected-streams.js';
import type { StreamEnvironment } from './environment.js';
import { copyFunction } from './function-copy.js';
import {
  type FilterFunction,
  type FlatMapFunction,
  KeyedProcessFunction,
  type KeyedProcessFunctionLike,
  type KeySelector,
  type MapFunction,
  type ProcessFunctionLike,
  type SinkFunction,
} from './functions.js';
import { TwoStreams } from './joins/window-join.js';
import type { AbstractStreamOperator, OneInputStreamOperator } from './operator.js';

import type { OutputTag } from './output-tag.js';
import { CollectSink, JsonLinesSink, PrintSink, SinkOperator, SummarySink } from './sinks/sinks.js';
import { CommittedCollectSink } from './sinks/two-phase-commit.js';

import { TimestampsAndWatermarksOperator } from './timestamps-watermarks.js';
import type {
  ChainingStrategy,
  OperatorTransformation,
  PartitionerSpec,
  PartitionTransformation,
  SideOutputTransformation,
  Transformation,
  UnionTransformation,
} from './transformation.js';
import type { WatermarkStrategy } from './watermarks.js';
import type { WindowAssigner } from './windows/assigners.js';
import { GlobalWindows } from './windows/assigners.js';
import { CountEvictor, type Evictor } from './windows/evictors.js';
import { CountTrigger, PurgingTrigger, type Trigger } from './windows/triggers.js';
import { AllWindowedStream, WindowedStream } from './windows/windowed-stream.js';
import type { GlobalWindow, Window } from './windows/windows.js';

type AnyOperator = AbstractStreamOperator<unknown>;
type AnyKeySelector = KeySelector<unknown, Key>;

/** Builds a sink operator per subtask (see `DataStream.sinkTo`). */
export interface SinkFactory<T> {
  readonly name: string;
  create(): OneInputStreamOperator<T, never>;
}

/** Settings shared by operators and sinks. */
abstract class Configurable {
  constructor(
    readonly env: StreamEnvironment,
    /** @internal */ readonly transformation: Transformation,
  ) {}

  private physical(what: string): Transformation {
    const t = this.transformation;
    if (t.type !== 'source' && t.type !== 'operator')
      throw new InvalidGraphError(
        `${what}() applies to operators; '${t.name}' (${t.type}) is not an operator`,
      );
    return t;
  }

  /** Sets the operator's display name. */
  name(name: string): this {
    this.physical('name').name = name;
    return this;
  }

  /** Sets the operator's stable id (its state is stored under it; must be unique in the job). */
  uid(uid: string): this {
    if (typeof uid !== 'string' || uid.length === 0)
      throw new InvalidArgumentError('uid() needs a non-empty string');
    this.physical('uid').uid = uid;
    return this;
  }

  /** Sets the operator's parallelism. */
  setParallelism(parallelism: number): this {
    if (!Number.isInteger(parallelism) || parallelism < 1)
      throw new InvalidArgumentError(
        `parallelism of '${this.transformation.name}' must be a positive integer, got ${parallelism}`,
      );
    this.physical('setParallelism').parallelism = parallelism;
    return this;
  }

  /** Sets the operator's maximum parallelism (its number of key groups, if keyed). */
  setMaxParallelism(maxParallelism: number): this {
    if (!Number.isInteger(maxParallelism) || maxParallelism < 1 || maxParallelism > 32768)
      throw new InvalidArgumentError(
        `maxParallelism of '${this.transformation.name}' must be an integer in [1, 32768], got ${maxParallelism}`,
      );
    this.physical('setMaxParallelism').maxParallelism = maxParallelism;
    return this;
  }

  /** Never chains this operator with its neighbours. */
  disableChaining(): this {
    return this.chaining('never');
  }

  /** Starts a new chain at this operator (it may still chain with what follows). */
  startNewChain(): this {
    return this.chaining('head');
  }

  private chaining(c: ChainingStrategy): this {
    this.physical('chaining').chaining = c;
    return this;
  }
}

/** A stream of records of type `T`. */
export class DataStream<T> extends Configurable {
  /** @internal key selector when the stream is keyed. */
  protected readonly keySelector: AnyKeySelector | undefined = undefined;

  /** @internal */
  protected derive<R>(
    kind: string,
    factory: () => AnyOperator,
    options: { name?: string; keyed?: boolean; requiresKeyed?: boolean; parallelism?: number } = {},
  ): DataStream<R> {
    const keyed = options.keyed ?? this.keySelector !== undefined;
    const t = this.env.addTransformation<OperatorTransformation>({
      type: 'operator',
      kind,
      name: options.name ?? kind,
      inputs: [this.transformation],
      factory,
      keySelectors: [keyed ? this.keySelector : undefined],
      requiresKeyed: options.requiresKeyed ?? false,
      isSink: false,
      parallelism: options.parallelism,
    });
    return new DataStream<R>(this.env, t);
  }

  /** One record in, one out. */
  map<R>(fn: MapFunction<T, R>): DataStream<R> {
    const ks = this.keySelector;
    return this.derive('map', () => new MapOperator(copyFunction(fn) as MapFunction<unknown, unknown>, ks));
  }

  /** Keeps the records for which `fn` returns true. */
  filter(fn: FilterFunction<T>): DataStream<T> {
    const ks = this.keySelector;
    return this.derive('filter', () => new FilterOperator(copyFunction(fn) as FilterFunction<unknown>, ks));
  }

  /** Zero or more records out per record in (return an iterable, or call `out.collect`). */
  flatMap<R>(fn: FlatMapFunction<T, R>): DataStream<R> {
    const ks = this.keySelector;
    return this.derive(
      'flatMap',
      () => new FlatMapOperator(copyFunction(fn) as FlatMapFunction<unknown, unknown>, ks),
    );
  }

  /** A low-level function with side outputs (and, on a keyed stream, state and timers). */
  process<R>(fn: ProcessFunctionLike<T, R>): DataStream<R> {
    if (fn instanceof KeyedProcessFunction)
      return this.derive(
        'process',
        () => new ProcessOperator(copyFunction(fn) as ProcessFunctionLike<unknown, unknown>),
        {
          requiresKeyed: true,
          name: 'keyedProcess',
        },
      );
    return this.derive(
      'process',
      () => new ProcessOperator(copyFunction(fn) as ProcessFunctionLike<unknown, unknown>),
      {
        keyed: false,
      },
    );
  }

  /**
   * Assigns event timestamps and generates watermarks here (upstream watermarks are dropped,
   * except the final one). Prefer a strategy on the source, where watermarks are per split.
   */
  assignTimestampsAndWatermarks(strategy: WatermarkStrategy<T>): DataStream<T> {
    const interval = this.env.config.autoWatermarkIntervalMs;
    return this.derive(
      'timestamps',
      () => new TimestampsAndWatermarksOperator(strategy as WatermarkStrategy<unknown>, interval),
      { keyed: false, name: 'Timestamps/Watermarks' },
    );
  }

  /** Partitions the stream by key: records with equal keys go to the same subtask. */
  keyBy<K extends Key>(keySelector: KeySelector<T, K>): KeyedStream<T, K> {
    if (typeof keySelector !== 'function')
      throw new InvalidArgumentError('keyBy() needs a key selector function');
    const t = this.partition({ kind: 'hash', keySelector: keySelector as AnyKeySelector }, 'keyBy');
    return new KeyedStream<T, K>(this.env, t, keySelector);
  }

  /** Merges this stream with others of the same type. */
  union(...others: DataStream<T>[]): DataStream<T> {
    for (const o of others)
      if (o.env !== this.env)
        throw new InvalidArgumentError('union() of streams from different environments');
    const t = this.env.addTransformation<UnionTransformation>({
      type: 'union',
      kind: 'union',
      name: 'union',
      inputs: [this.transformation, ...others.map((o) => o.transformation)],
    });
    return new DataStream<T>(this.env, t);
  }

  /** Sends each record to the subtask with the same index (parallelism must match). */
  forward(): DataStream<T> {
    return new DataStream<T>(this.env, this.partition({ kind: 'forward' }, 'forward'));
  }
  /** Distributes records round-robin over all downstream subtasks. */
  rebalance(): DataStream<T> {
    return new DataStream<T>(this.env, this.partition({ kind: 'rebalance' }, 'rebalance'));
  }
  /** Round-robin over a local subset of downstream subtasks (pointwise). */
  rescale(): DataStream<T> {
    return new DataStream<T>(this.env, this.partition({ kind: 'rescale' }, 'rescale'));
  }
  /** Sends every record to every downstream subtask. */
  broadcast(): DataStream<T>;
  /**
   * A broadcast stream for the broadcast state pattern: connect it to a (keyed) stream; its
   * elements update the broadcast states described here, identical in every subtask.
   */
  broadcast(
    ...descriptors: [MapStateDescriptor<Key, unknown>, ...MapStateDescriptor<Key, unknown>[]]
  ): BroadcastStream<T>;
  broadcast(...descriptors: MapStateDescriptor<Key, unknown>[]): DataStream<T> | BroadcastStream<T> {
    const t = this.partition({ kind: 'broadcast' }, 'broadcast');
    if (descriptors.length === 0) return new DataStream<T>(this.env, t);
    return new BroadcastStream<T>(this.env, t as PartitionTransformation, descriptors);
  }

  // ---- two inputs ----

  /** A window join with another stream: `.where(k1).equalTo(k2).window(assigner).apply(fn)`. */
  join<B>(other: DataStream<B>): TwoStreams<T, B, 'join'> {
    return new TwoStreams<T, B, 'join'>('join', this, other);
  }

  /** A window coGroup with another stream: `.where(k1).equalTo(k2).window(assigner).apply(fn)`. */
  coGroup<B>(other: DataStream<B>): TwoStreams<T, B, 'coGroup'> {
    return new TwoStreams<T, B, 'coGroup'>('coGroup', this, other);
  }

  /** Connects with a broadcast stream (broadcast state pattern). */
  connect<R>(other: BroadcastStream<R>): BroadcastConnectedStream<T, R>;
  /** Connects with another stream: one function with a method per input (co-map, co-process). */
  connect<R>(other: DataStream<R>): ConnectedStreams<T, R>;
  connect<R>(
    other: DataStream<R> | BroadcastStream<R>,
  ): ConnectedStreams<T, R> | BroadcastConnectedStream<T, R> {
    if (other.env !== this.env)
      throw new InvalidArgumentError('connect() of streams from different environments');
    if (other instanceof BroadcastStream) return new BroadcastConnectedStream<T, R>(this.env, this, other);
    return new ConnectedStreams<T, R>(this.env, this, other);
  }
  /** Distributes records randomly (seeded per subtask, so runs are repeatable). */
  shuffle(): DataStream<T> {
    return new DataStream<T>(this.env, this.partition({ kind: 'shuffle' }, 'shuffle'));
  }
  /** Sends every record to the first downstream subtask. */
  global(): DataStream<T> {
    return new DataStream<T>(this.env, this.partition({ kind: 'global' }, 'global'));
  }

  private partition(partitioner: PartitionerSpec, kind: string): Transformation {
    return this.env.addTransformation<PartitionTransformation>({
      type: 'partition',
      kind,
      name: kind,
      inputs: [this.transformation],
      partitioner,
    });
  }

  /** Cuts the whole stream into windows (one subtask with a constant key, as Flink's `windowAll`). */
  windowAll<W extends Window>(assigner: WindowAssigner<T, W>): AllWindowedStream<T, W> {
    return new AllWindowedStream<T, W>(this, assigner);
  }

  /** Count windows over the whole stream (Flink's `countWindowAll`); see `KeyedStream.countWindow`. */
  countWindowAll(size: number, slide?: number): AllWindowedStream<T, GlobalWindow> {
    const w = new AllWindowedStream<T, GlobalWindow>(
      this,
      GlobalWindows.create() as WindowAssigner<T, GlobalWindow>,
    );
    if (slide === undefined)
      return w.trigger(PurgingTrigger.of(CountTrigger.of(size)) as Trigger<T, GlobalWindow>);
    return w
      .evictor(CountEvictor.of(size) as Evictor<T, GlobalWindow>)
      .trigger(CountTrigger.of(slide) as Trigger<T, GlobalWindow>);
  }

  /** The records this operator sent to the side output `tag`. */
  getSideOutput<S>(tag: OutputTag<S>): DataStream<S> {
    const t = this.transformation;
    if (t.type !== 'operator' && t.type !== 'source')
      throw new InvalidGraphError(
        `getSideOutput() applies to operators; '${t.name}' (${t.type}) has no side outputs`,
      );
    const side = this.env.addTransformation<SideOutputTransformation>({
      type: 'side-output',
      kind: 'sideOutput',
      name: `side output ${tag.id}`,
      inputs: [t],
      tag,
    });
    return new DataStream<S>(this.env, side);
  }

  // ---- sinks ----

  private sink(
    kind: string,
    factory: () => AnyOperator,
    options: { parallelism?: number; resultId?: string } = {},
  ): DataStreamSink<T> {
    const t = this.env.addTransformation<OperatorTransformation>({
      type: 'operator',
      kind,
      name: kind,
      inputs: [this.transformation],
      factory,
      keySelectors: [undefined],
      requiresKeyed: false,
      isSink: true,
      parallelism: options.parallelism,
      resultId: options.resultId,
    });
    return new DataStreamSink<T>(this.env, t);
  }

  /**
   * Writes to a sink built by a sink factory, e.g. `FileSink.jsonLines(dir)` or
   * `RedisSink.stream(...)` (exactly-once sinks), or your own `{ name, create }`.
   */
  sinkTo(sink: SinkFactory<T>): DataStreamSink<T> {
    return this.sink(sink.name, () => sink.create() as AnyOperator).name(sink.name);
  }

  /** Calls `fn` for every record; a returned Promise holds the next record back. */
  addSink(fn: SinkFunction<T>): DataStreamSink<T> {
    return this.sink('sink', () => new SinkOperator(copyFunction(fn) as SinkFunction<unknown>));
  }

  /** Prints every record to standard output (`label` prefixes the lines). */
  print(label?: string): DataStreamSink<T> {
    return this.sink('print', () => new PrintSink(label));
  }

  /** Collects every record for the client: read `values` after the job ends (for tests). */
  collect(): CollectedStream<T> {
    const id = this.env.newResultId('collect');
    const sink = this.sink('collect', () => new CollectSink(id), { resultId: id });
    const handle = new CollectedStream<T>(id, sink);
    this.env.collectedStreams.push(handle as CollectedStream<unknown>);
    return handle;
  }

  /**
   * Collects records exactly once (a two-phase-commit sink): they count only when a checkpoint
   * covering them completes, or when the job finishes — so after failures and restores each
   * record is in `values` once. For tests of exactly-once behaviour.
   */
  collectCommitted(): CollectedStream<T> {
    const id = this.env.newResultId('committed');
    const sink = this.sink('collectCommitted', () => new CommittedCollectSink(id), { resultId: id });
    const handle = new CollectedStream<T>(id, sink);
    this.env.collectedStreams.push(handle as CollectedStream<unknown>);
    return handle;
  }

  /**
   * When the input ends, prints one JSON object of the last value per key (and reports it as a
   * result). Runs at parallelism 1.
   */
  printSummary<K extends Key, V>(
    keyOf: (value: T) => K,
    valueFn: (value: T) => V,
  ): CollectedStream<Record<string, V>> {
    const id = this.env.newResultId('summary');
    const sink = this.sink(
      'summary',
      () => new SummarySink(keyOf as (v: unknown) => Key, valueFn as (v: unknown) => unknown, id),
      { parallelism: 1, resultId: id },
    );
    const handle = new CollectedStream<Record<string, V>>(id, sink);
    this.env.collectedStreams.push(handle as CollectedStream<unknown>);
    return handle;
  }

  /** Writes records as JSON lines to `path` (a file, or a directory of part files if parallel). */
  writeAsJsonLines(path: string): DataStreamSink<T> {
    return this.sink('jsonLines', () => new JsonLinesSink(path), { parallelism: 1 });
  }
}

/** A stream partitioned by key: keyed state, timers, rolling aggregations (and windows). */
export class KeyedStream<T, K extends Key> extends DataStream<T> {
  protected override readonly keySelector: AnyKeySelector;
  constructor(env: StreamEnvironment, transformation: Transformation, keySelector: KeySelector<T, K>) {
    super(env, transformation);
    this.keySelector = keySelector as AnyKeySelector;
  }

  /** The key selector of this stream. */
  getKeySelector(): KeySelector<T, K> {
    return this.keySelector as KeySelector<T, K>;
  }

  /** Rolling reduce: for every record, emits the key's reduced value so far. */
  reduce(fn: ReduceFunction<T>): DataStream<T> {
    const ks = this.keySelector;
    return this.derive(
      'reduce',
      () => new KeyedReduceOperator(copyFunction(fn) as ReduceFunction<unknown>, ks),
      {
        requiresKeyed: true,
      },
    );
  }

  /** Rolling aggregate: for every record, emits the key's current aggregate result. */
  aggregate<ACC, R>(fn: AggregateFunction<T, ACC, R>): DataStream<R> {
    const ks = this.keySelector;
    return this.derive(
      'aggregate',
      () => new KeyedAggregateOperator(copyFunction(fn) as AggregateFunction<unknown, unknown, unknown>, ks),
      {
        requiresKeyed: true,
      },
    );
  }

  /** Interval join with another keyed stream (same key type): choose the bounds with `between`. */
  intervalJoin<R>(other: KeyedStream<R, K>): IntervalJoin<T, R, K> {
    return new IntervalJoin<T, R, K>(this, other);
  }

  /** Connects with another keyed stream: a keyed co-process function gets state and timers. */
  override connect<R>(other: BroadcastStream<R>): BroadcastConnectedStream<T, R, K>;
  override connect<R>(other: DataStream<R>): ConnectedStreams<T, R, K>;
  override connect<R>(
    other: DataStream<R> | BroadcastStream<R>,
  ): ConnectedStreams<T, R, K> | BroadcastConnectedStream<T, R, K> {
    if (other instanceof BroadcastStream) return new BroadcastConnectedStream<T, R, K>(this.env, this, other);
    return new ConnectedStreams<T, R, K>(this.env, this, other);
  }

  /** Cuts the stream of each key into windows (Flink's `KeyedStream.window`). */
  window<W extends Window>(assigner: WindowAssigner<T, W>): WindowedStream<T, K, W> {
    return new WindowedStream<T, K, W>(this, assigner);
  }

  /**
   * Count windows of each key (Flink's `countWindow`): every `size` elements, or — with `slide` —
   * the last `size` elements every `slide` elements.
   */
  countWindow(size: number, slide?: number): WindowedStream<T, K, GlobalWindow> {
    const w = new WindowedStream<T, K, GlobalWindow>(
      this,
      GlobalWindows.create() as WindowAssigner<T, GlobalWindow>,
    );
    if (slide === undefined)
      return w.trigger(PurgingTrigger.of(CountTrigger.of(size)) as Trigger<T, GlobalWindow>);
    return w
      .evictor(CountEvictor.of(size) as Evictor<T, GlobalWindow>)
      .trigger(CountTrigger.of(slide) as Trigger<T, GlobalWindow>);
  }

  /** A keyed process function: keyed state and event/processing-time timers. */
  override process<R>(fn: KeyedProcessFunctionLike<K, T, R>): DataStream<R> {
    const ks = this.keySelector;
    return this.derive(
      'process',
      () => new KeyedProcessOperator(copyFunction(fn) as KeyedProcessFunctionLike<Key, unknown, unknown>, ks),
      {
        requiresKeyed: true,
      },
    );
  }
}

/** The end of a stream: a sink, with operator settings. */
export class DataStreamSink<T> extends Configurable {
  declare readonly __type?: T;
}

/** A collecting sink: `values` holds the records once the job has finished. */
export class CollectedStream<T> {
  /** The collected records (in arrival order); filled when the job finishes. */
  values: T[] = [];
  constructor(
    /** @internal */ readonly id: string,
    readonly sink: DataStreamSink<unknown>,
  ) {}
}
