/** The stateless and rolling keyed operators: map, filter, flatMap, process, reduce, aggregate. */

import type { AggregatingState, ValueState } from '../state/descriptors.js';
import { AggregatingStateDescriptor, ValueStateDescriptor } from '../state/descriptors.js';
import { StateError } from '../state/errors.js';
import type { AggregateFunction, ReduceFunction } from '../state/functions.js';
import type { Key } from '../state/hash.js';
import { type InternalTimerService, NO_TIMESTAMP, type Timer } from './contract.js';
import type {
  Collector,
  FilterFunction,
  FlatMapFunction,
  KeyedProcessFunctionLike,
  KeySelector,
  MapFunction,
  OnTimerContext,
  ProcessFunctionLike,
  TimeDomain,
  TimerService,
} from './functions.js';
import { UdfOperator } from './operator.js';
import type { OutputTag } from './output-tag.js';

/** One record in, one out. */
export class MapOperator<IN, OUT> extends UdfOperator<IN, OUT, MapFunction<IN, OUT>> {
  private call!: (value: IN) => OUT;
  override open(): void {
    super.open();
    const fn = this.fn;
    this.call = typeof fn === 'function' ? fn : (v) => fn.map(v);
  }
  processElement(value: IN, timestamp: number): void {
    this.setKey(value);
    let out: OUT;
    try {
      out = this.call(value);
    } catch (e) {
      throw this.userError(e, value);
    }
    this.output.collect(out, timestamp);
  }
}

/** Keeps the records the predicate accepts. */
export class FilterOperator<T> extends UdfOperator<T, T, FilterFunction<T>> {
  private call!: (value: T) => boolean;
  override open(): void {
    super.open();
    const fn = this.fn;
    this.call = typeof fn === 'function' ? fn : (v) => fn.filter(v);
  }
  processElement(value: T, timestamp: number): void {
    this.setKey(value);
    let keep: boolean;
    try {
      keep = this.call(value);
    } catch (e) {
      throw this.userError(e, value);
    }
    if (keep) this.output.collect(value, timestamp);
  }
}

/** Any number of records out per record in. */
export class FlatMapOperator<IN, OUT>
  extends UdfOperator<IN, OUT, FlatMapFunction<IN, OUT>>
  implements Collector<OUT>
{
  private call!: (value: IN, out: Collector<OUT>) => Iterable<OUT> | undefined | void;
  private timestamp = NO_TIMESTAMP;
  override open(): void {
    super.open();
    const fn = this.fn;
    this.call = typeof fn === 'function' ? fn : (v, out) => fn.flatMap(v, out);
  }
  collect(value: OUT): void {
    this.output.collect(value, this.timestamp);
  }
  processElement(value: IN, timestamp: number): void {
    this.setKey(value);
    this.timestamp = timestamp;
    try {
      const result = this.call(value, this);
      if (result !== undefined && result !== null) for (const v of result) this.output.collect(v, timestamp);
    } catch (e) {
      throw this.userError(e, value);
    }
  }
}

/** A timer service facade for functions on non-keyed streams: times only, no timers. */
class NonKeyedTimerService implements TimerService {
  constructor(private readonly op: ProcessOperator<unknown, unknown>) {}
  currentProcessingTime(): number {
    return this.op.now();
  }
  currentWatermark(): number {
    return this.op.watermark();
  }
  registerEventTimeTimer(): void {
    this.unsupported();
  }
  registerProcessingTimeTimer(): void {
    this.unsupported();
  }
  deleteEventTimeTimer(): void {
    this.unsupported();
  }
  deleteProcessingTimeTimer(): void {
    this.unsupported();
  }
  private unsupported(): never {
    throw new StateError(
      'timers are only supported on keyed streams: call keyBy() and use a KeyedProcessFunction',
    );
  }
}

/** Runs a {@link ProcessFunctionLike} on a non-keyed stream. */
export class ProcessOperator<IN, OUT>
  extends UdfOperator<IN, OUT, ProcessFunctionLike<IN, OUT>>
  implements Collector<OUT>
{
  private ts = NO_TIMESTAMP;
  private readonly timers = new NonKeyedTimerService(this as ProcessOperator<unknown, unknown>);
  private readonly context = {
    timestamp: (): number | null => (this.ts === NO_TIMESTAMP ? null : this.ts),
    timerService: (): TimerService => this.timers,
    output: <X>(tag: OutputTag<X>, value: X): void => this.output.collectSide(tag, value, this.ts),
  };
  now(): number {
    return this.ctx.clock.now();
  }
  watermark(): number {
    return this.ctx.currentWatermark();
  }
  collect(value: OUT): void {
    this.output.collect(value, this.ts);
  }
  processElement(value: IN, timestamp: number): void {
    this.ts = timestamp;
    try {
      this.fn.processElement(value, this.context, this);
    } catch (e) {
      throw this.userError(e, value);
    }
  }
}

const VOID_NAMESPACE = undefined;

/** Runs a {@link KeyedProcessFunctionLike}: keyed state and timers. */
export class KeyedProcessOperator<K extends Key, IN, OUT>
  extends UdfOperator<IN, OUT, KeyedProcessFunctionLike<K, IN, OUT>>
  implements Collector<OUT>
{
  private ts = NO_TIMESTAMP;
  private domain: TimeDomain | undefined;
  private timerService!: InternalTimerService<undefined>;
  private readonly userTimers: TimerService = {
    currentProcessingTime: () => this.timerService.currentProcessingTime(),
    currentWatermark: () => this.timerService.currentWatermark(),
    registerEventTimeTimer: (t) => this.timerService.registerEventTimeTimer(VOID_NAMESPACE, t),
    registerProcessingTimeTimer: (t) => this.timerService.registerProcessingTimeTimer(VOID_NAMESPACE, t),
    deleteEventTimeTimer: (t) => this.timerService.deleteEventTimeTimer(VOID_NAMESPACE, t),
    deleteProcessingTimeTimer: (t) => this.timerService.deleteProcessingTimeTimer(VOID_NAMESPACE, t),
  };
  private readonly context: OnTimerContext<K> = {
    timestamp: () => (this.ts === NO_TIMESTAMP ? null : this.ts),
    timerService: () => this.userTimers,
    output: <X>(tag: OutputTag<X>, value: X) => this.output.collectSide(tag, value, this.ts),
    getCurrentKey: () => this.ctx.keyedState!.getCurrentKey() as K,
    timeDomain: () => {
      if (this.domain === undefined) throw new StateError('timeDomain() is only available in onTimer');
      return this.domain;
    },
  };

  constructor(fn: KeyedProcessFunctionLike<K, IN, OUT>, keySelector: KeySelector<IN, K>) {
    super(fn, keySelector);
  }

  override open(): void {
    super.open();
    this.timerService = this.ctx.getTimerService<undefined>('user-timers', this, () => 0);
  }

  collect(value: OUT): void {
    this.output.collect(value, this.ts);
  }

  processElement(value: IN, timestamp: number): void {
    this.setKey(value);
    this.ts = timestamp;
    try {
      this.fn.processElement(value, this.context, this);
    } catch (e) {
      throw this.userError(e, value);
    }
  }

  onEventTime(timer: Timer<Key, undefined>): void {
    this.fire(timer, 'EVENT_TIME', timer.timestamp);
  }

  onProcessingTime(timer: Timer<Key, undefined>): void {
    // NOTE: as in Flink, records emitted from a processing-time timer carry no timestamp.
    this.fire(timer, 'PROCESSING_TIME', NO_TIMESTAMP);
  }

  private fire(timer: Timer<Key, undefined>, domain: TimeDomain, ts: number): void {
    if (this.fn.onTimer === undefined) return;
    this.ts = ts;
    this.domain = domain;
    try {
      this.fn.onTimer(timer.timestamp, this.context, this);
    } catch (e) {
      throw this.userError(e, { key: timer.key, timer: timer.timestamp, domain }, 'onTimer');
    } finally {
      this.domain = undefined;
    }
  }
}

/** Rolling reduce on a keyed stream: emits the new reduced value of the key for every record. */
export class KeyedReduceOperator<T, K extends Key> extends UdfOperator<T, T, ReduceFunction<T>> {
  private state!: ValueState<T>;
  constructor(fn: ReduceFunction<T>, keySelector: KeySelector<T, K>) {
    super(fn, keySelector);
  }
  override open(): void {
    super.open();
    this.state = this.ctx.keyedState!.getState(new ValueStateDescriptor<T>('_reduce'));
  }
  processElement(value: T, timestamp: number): void {
    this.setKey(value);
    const current = this.state.value();
    let next: T;
    try {
      next = current === undefined ? value : this.fn(current, value);
    } catch (e) {
      throw this.userError(e, value);
    }
    this.state.update(next);
    this.output.collect(next, timestamp);
  }
}

/** Rolling aggregate on a keyed stream: emits the key's current result for every record. */
export class KeyedAggregateOperator<IN, ACC, OUT, K extends Key> extends UdfOperator<
  IN,
  OUT,
  AggregateFunction<IN, ACC, OUT>
> {
  private state!: AggregatingState<IN, OUT>;
  constructor(fn: AggregateFunction<IN, ACC, OUT>, keySelector: KeySelector<IN, K>) {
    super(fn, keySelector);
  }
  override open(): void {
    super.open();
    this.state = this.ctx.keyedState!.getState(new AggregatingStateDescriptor('_aggregate', this.fn));
  }
  processElement(value: IN, timestamp: number): void {
    this.setKey(value);
    let result: OUT;
    try {
      this.state.add(value);
      result = this.state.get() as OUT;
    } catch (e) {
      throw this.userError(e, value);
    }
    this.output.collect(result, timestamp);
  }
}
