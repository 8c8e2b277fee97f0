/** Two-input operators: co-map, co-flatMap, co-process (keyed or not) and broadcast state. */

import type {
  ListStateDescriptor,
  MapStateDescriptor,
  StateDescriptor,
  ValueStateDescriptor,
} from '../state/descriptors.js';
import { StateError } from '../state/errors.js';
import type { Key } from '../state/hash.js';
import { canonicalKey, decodeKey, type MapKey } from '../state/key-codec.js';
import type { KeyedStateBackend } from '../state/keyed-backend.js';
import type {
  BroadcastProcessFunctionLike,
  BroadcastState,
  CoFlatMapFunction,
  CoMapFunction,
  CoProcessFunctionLike,
  KeyedBroadcastContext,
  KeyedBroadcastOnTimerContext,
  KeyedBroadcastProcessFunctionLike,
  KeyedCoProcessFunctionLike,
  ReadOnlyBroadcastState,
} from './co-functions.js';
import { type InternalTimerService, NO_TIMESTAMP, type Timer } from './contract.js';
import type {
  Collector,
  KeySelector,
  OnTimerContext,
  RuntimeContext,
  TimeDomain,
  TimerService,
} from './functions.js';
import { closeFunction, openFunction, snapshotFunction, TwoInputStreamOperator } from './operator.js';

import type { OutputTag } from './output-tag.js';
import { createRuntimeContext } from './runtime-context.js';

type AnyKeySelector = KeySelector<unknown, Key> | undefined;

/** Base of two-input operators running one user function, keyed per input or not. */
export abstract class TwoInputUdfOperator<IN1, IN2, OUT, F>
  extends TwoInputStreamOperator<IN1, IN2, OUT>
  implements Collector<OUT>
{
  protected runtimeContext!: RuntimeContext;
  protected ts = NO_TIMESTAMP;
  constructor(
    protected readonly fn: F,
    protected readonly keySelector1: AnyKeySelector = undefined,
    protected readonly keySelector2: AnyKeySelector = undefined,
  ) {
    super();
  }
  override open(): void {
    this.runtimeContext = createRuntimeContext(this.ctx);
    openFunction(this.fn, this.runtimeContext, (e) => this.userError(e, undefined, 'open()'));
  }
  override close(): void {
    closeFunction(this.fn);
  }
  override snapshotState(checkpointId: number): void {
    snapshotFunction(this.fn, checkpointId, (e) => this.userError(e, undefined, 'snapshotState()'));
  }
  collect(value: OUT): void {
    this.output.collect(value, this.ts);
  }
  protected setKey(selector: AnyKeySelector, value: unknown): void {
    if (selector === undefined) return;
    let key: Key;
    try {
      key = selector(value);
    } catch (e) {
      throw this.userError(e, value, 'key selector');
    }
    this.ctx.keyedState!.setCurrentKey(key);
  }
  /** Emits to a side output with the current timestamp. */
  protected side<X>(tag: OutputTag<X>, value: X): void {
    this.output.collectSide(tag, value, this.ts);
  }
}

/** `connect(...).map({ map1, map2 })`. */
export class CoMapOperator<IN1, IN2, OUT> extends TwoInputUdfOperator<
  IN1,
  IN2,
  OUT,
  CoMapFunction<IN1, IN2, OUT>
> {
  processElement1(value: IN1, timestamp: number): void {
    this.setKey(this.keySelector1, value);
    let r: OUT;
    try {
      r = this.fn.map1(value);
    } catch (e) {
      throw this.userError(e, value);
    }
    this.output.collect(r, timestamp);
  }
  processElement2(value: IN2, timestamp: number): void {
    this.setKey(this.keySelector2, value);
    let r: OUT;
    try {
      r = this.fn.map2(value);
    } catch (e) {
      throw this.userError(e, value);
    }
    this.output.collect(r, timestamp);
  }
}

/** `connect(...).flatMap({ flatMap1, flatMap2 })`. */
export class CoFlatMapOperator<IN1, IN2, OUT> extends TwoInputUdfOperator<
  IN1,
  IN2,
  OUT,
  CoFlatMapFunction<IN1, IN2, OUT>
> {
  processElement1(value: IN1, timestamp: number): void {
    this.setKey(this.keySelector1, value);
    this.ts = timestamp;
    try {
      const r = this.fn.flatMap1(value, this);
      if (r != null) for (const v of r) this.output.collect(v, timestamp);
    } catch (e) {
      throw this.userError(e, value);
    }
  }
  processElement2(value: IN2, timestamp: number): void {
    this.setKey(this.keySelector2, value);
    this.ts = timestamp;
    try {
      const r = this.fn.flatMap2(value, this);
      if (r != null) for (const v of r) this.output.collect(v, timestamp);
    } catch (e) {
      throw this.userError(e, value);
    }
  }
}

/** Times and (on keyed operators) timers, as user functions see them. */
function timerFacade(op: {
  now(): number;
  watermark(): number;
  timers(): InternalTimerService<undefined> | undefined;
}): TimerService {
  const need = (): InternalTimerService<undefined> => {
    const t = op.timers();
    if (t === undefined)
      throw new StateError(
        'timers are only supported on keyed streams: key the connected streams with keyBy()',
      );
    return t;
  };
  return {
    currentProcessingTime: () => op.now(),
    currentWatermark: () => op.watermark(),
    registerEventTimeTimer: (t) => need().registerEventTimeTimer(undefined, t),
    registerProcessingTimeTimer: (t) => need().registerProcessingTimeTimer(undefined, t),
    deleteEventTimeTimer: (t) => need().deleteEventTimeTimer(undefined, t),
    deleteProcessingTimeTimer: (t) => need().deleteProcessingTimeTimer(undefined, t),
  };
}

/** `connect(...).process(...)`: a co-process function, keyed (state, timers) or not. */
export class CoProcessOperator<K extends Key, IN1, IN2, OUT> extends TwoInputUdfOperator<
  IN1,
  IN2,
  OUT,
  KeyedCoProcessFunctionLike<K, IN1, IN2, OUT> | CoProcessFunctionLike<IN1, IN2, OUT>
> {
  private timerService: InternalTimerService<undefined> | undefined;
  private domain: TimeDomain | undefined;
  private readonly timerApi = timerFacade({
    now: () => this.ctx.clock.now(),
    watermark: () => this.ctx.currentWatermark(),
    timers: () => this.timerService,
  });
  private readonly context: OnTimerContext<K> = {
    timestamp: () => (this.ts === NO_TIMESTAMP ? null : this.ts),
    timerService: () => this.timerApi,
    output: <X>(tag: OutputTag<X>, value: X) => this.side(tag, value),
    getCurrentKey: () => {
      if (this.ctx.keyedState === undefined) throw new StateError('getCurrentKey() needs keyed streams');
      return this.ctx.keyedState.getCurrentKey() as K;
    },
    timeDomain: () => {
      if (this.domain === undefined) throw new StateError('timeDomain() is only available in onTimer');
      return this.domain;
    },
  };

  override open(): void {
    super.open();
    if (this.ctx.keyedState !== undefined)
      this.timerService = this.ctx.getTimerService<undefined>('user-timers', this, () => 0);
  }
  processElement1(value: IN1, timestamp: number): void {
    this.setKey(this.keySelector1, value);
    this.ts = timestamp;
    try {
      this.fn.processElement1(value, this.context, this);
    } catch (e) {
      throw this.userError(e, value);
    }
  }
  processElement2(value: IN2, timestamp: number): void {
    this.setKey(this.keySelector2, value);
    this.ts = timestamp;
    try {
      this.fn.processElement2(value, this.context, this);
    } catch (e) {
      throw this.userError(e, value);
    }
  }
  onEventTime(timer: Timer<Key, undefined>): void {
    this.fire(timer, 'EVENT_TIME', timer.timestamp);
  }
  onProcessingTime(timer: Timer<Key, undefined>): void {
    this.fire(timer, 'PROCESSING_TIME', NO_TIMESTAMP);
  }
  private fire(timer: Timer<Key, undefined>, domain: TimeDomain, ts: number): void {
    const fn = this.fn as KeyedCoProcessFunctionLike<K, IN1, IN2, OUT>;
    if (fn.onTimer === undefined) return;
    this.ts = ts;
    this.domain = domain;
    try {
      fn.onTimer(timer.timestamp, this.context, this);
    } catch (e) {
      throw this.userError(e, { key: timer.key, timer: timer.timestamp, domain }, 'onTimer');
    } finally {
      this.domain = undefined;
    }
  }
}

/** A map kept identical in every subtask, snapshotted as operator state in broadcast mode. */
class HeapBroadcastState<K extends Key, V> implements BroadcastState<K, V> {
  readonly map = new Map<MapKey, V>();
  constructor(private readonly readOnly: { value: boolean }) {}
  get(key: K): V | undefined {
    return this.map.get(canonicalKey(key));
  }
  contains(key: K): boolean {
    return this.map.has(canonicalKey(key));
  }
  *entries(): IterableIterator<[K, V]> {
    for (const [k, v] of this.map) yield [decodeKey(k) as K, v];
  }
  *keys(): IterableIterator<K> {
    for (const k of this.map.keys()) yield decodeKey(k) as K;
  }
  values(): IterableIterator<V> {
    return this.map.values();
  }
  get size(): number {
    return this.map.size;
  }
  put(key: K, value: V): void {
    this.write();
    this.map.set(canonicalKey(key), value);
  }
  putAll(entries: Iterable<readonly [K, V]>): void {
    for (const [k, v] of entries) this.put(k, v);
  }
  remove(key: K): void {
    this.write();
    this.map.delete(canonicalKey(key));
  }
  clear(): void {
    this.write();
    this.map.clear();
  }
  private write(): void {
    if (this.readOnly.value)
      throw new StateError(
        'broadcast state is read-only on the non-broadcast side (write it in processBroadcastElement)',
      );
  }
}

const BROADCAST_PREFIX = 'broadcast-state:';

/**
 * The broadcast state pattern: input 1 is the main stream (keyed or not), input 2 a broadcast
 * stream whose elements update broadcast state that every subtask holds identically.
 */
export class BroadcastProcessOperator<K extends Key, IN1, IN2, OUT> extends TwoInputUdfOperator<
  IN1,
  IN2,
  OUT,
  KeyedBroadcastProcessFunctionLike<K, IN1, IN2, OUT> | BroadcastProcessFunctionLike<IN1, IN2, OUT>
> {
  private readonly states = new Map<string, HeapBroadcastState<Key, unknown>>();
  private readonly readOnly = { value: true };
  private timerService: InternalTimerService<undefined> | undefined;
  private domain: TimeDomain | undefined;
  private readonly timerApi = timerFacade({
    now: () => this.ctx.clock.now(),
    watermark: () => this.ctx.currentWatermark(),
    timers: () => (this.readOnly.value ? this.timerService : undefined),
  });
  private readonly elementContext: KeyedBroadcastOnTimerContext<K>;
  private readonly broadcastContext: KeyedBroadcastContext<K>;

  constructor(
    fn: KeyedBroadcastProcessFunctionLike<K, IN1, IN2, OUT> | BroadcastProcessFunctionLike<IN1, IN2, OUT>,
    keySelector1: AnyKeySelector,
    private readonly descriptors: readonly MapStateDescriptor<Key, unknown>[],
  ) {
    super(fn, keySelector1, undefined);
    const state = <KK extends Key, V>(d: MapStateDescriptor<KK, V>) =>
      this.broadcastState(d) as unknown as BroadcastState<KK, V>;
    this.elementContext = {
      timestamp: () => (this.ts === NO_TIMESTAMP ? null : this.ts),
      timerService: () => this.timerApi,
      output: <X>(tag: OutputTag<X>, value: X) => this.side(tag, value),
      getBroadcastState: state as <KK extends Key, V>(
        d: MapStateDescriptor<KK, V>,
      ) => ReadOnlyBroadcastState<KK, V>,
      getCurrentKey: () => {
        if (this.ctx.keyedState === undefined) throw new StateError('getCurrentKey() needs a keyed stream');
        return this.ctx.keyedState.getCurrentKey() as K;
      },
      timeDomain: () => {
        if (this.domain === undefined) throw new StateError('timeDomain() is only available in onTimer');
        return this.domain;
      },
    };
    this.broadcastContext = {
      timestamp: () => (this.ts === NO_TIMESTAMP ? null : this.ts),
      timerService: () => this.timerApi,
      output: <X>(tag: OutputTag<X>, value: X) => this.side(tag, value),
      getBroadcastState: state,
      applyToKeyedState: ((d: StateDescriptor, fn: (key: Key, state: unknown) => void) =>
        this.applyToKeyedState(d, fn)) as BroadcastContextApply<K>,
    };
  }

  private broadcastState(d: MapStateDescriptor<Key, unknown>): HeapBroadcastState<Key, unknown> {
    const s = this.states.get(d.name);
    if (s === undefined)
      throw new StateError(
        `${this.ctx.describe()}: broadcast state '${d.name}' was not declared; pass its descriptor to broadcast(...descriptors)`,
        { operatorId: this.ctx.info.operatorId },
      );
    return s;
  }

  override initializeState(): void {
    for (const d of this.descriptors) {
      const s = new HeapBroadcastState<Key, unknown>(this.readOnly);
      const stored = this.ctx.operatorState.list(BROADCAST_PREFIX + d.name, 'broadcast');
      for (const [k, v] of stored.get() as [MapKey, unknown][]) s.map.set(k, v);
      this.states.set(d.name, s);
    }
  }

  override snapshotState(checkpointId: number): void {
    super.snapshotState(checkpointId);
    for (const [name, s] of this.states)
      this.ctx.operatorState.list(BROADCAST_PREFIX + name, 'broadcast').update([...s.map]);
  }

  override open(): void {
    super.open();
    if (this.ctx.keyedState !== undefined)
      this.timerService = this.ctx.getTimerService<undefined>('user-timers', this, () => 0);
  }

  processElement1(value: IN1, timestamp: number): void {
    this.setKey(this.keySelector1, value);
    this.ts = timestamp;
    this.readOnly.value = true;
    try {
      this.fn.processElement(value, this.elementContext, this);
    } catch (e) {
      throw this.userError(e, value);
    }
  }

  processElement2(value: IN2, timestamp: number): void {
    this.ts = timestamp;
    this.readOnly.value = false;
    try {
      (this.fn as KeyedBroadcastProcessFunctionLike<K, IN1, IN2, OUT>).processBroadcastElement(
        value,
        this.broadcastContext,
        this,
      );
    } catch (e) {
      throw this.userError(e, value, 'processBroadcastElement');
    } finally {
      this.readOnly.value = true;
    }
  }

  private applyToKeyedState(d: StateDescriptor, fn: (key: Key, state: unknown) => void): void {
    const backend: KeyedStateBackend | undefined = this.ctx.keyedState;
    if (backend === undefined) throw new StateError('applyToKeyedState() needs a keyed stream');
    const state = backend.getState(d as ValueStateDescriptor<unknown> | ListStateDescriptor<unknown>);
    for (const key of [...backend.keys(d.name)]) {
      backend.setCurrentKey(key);
      fn(key, state);
    }
  }

  onEventTime(timer: Timer<Key, undefined>): void {
    this.fire(timer, 'EVENT_TIME', timer.timestamp);
  }
  onProcessingTime(timer: Timer<Key, undefined>): void {
    this.fire(timer, 'PROCESSING_TIME', NO_TIMESTAMP);
  }
  private fire(timer: Timer<Key, undefined>, domain: TimeDomain, ts: number): void {
    const fn = this.fn as KeyedBroadcastProcessFunctionLike<K, IN1, IN2, OUT>;
    if (fn.onTimer === undefined) return;
    this.ts = ts;
    this.domain = domain;
    this.readOnly.value = true;
    try {
      fn.onTimer(timer.timestamp, this.elementContext, this);
    } catch (e) {
      throw this.userError(e, { key: timer.key, timer: timer.timestamp, domain }, 'onTimer');
    } finally {
      this.domain = undefined;
    }
  }
}

type BroadcastContextApply<K> = KeyedBroadcastContext<K>['applyToKeyedState'];
