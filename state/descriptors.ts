/**
 * State descriptors: the name, kind and options of a piece of state. The same descriptor (by name)
 * always returns the same state; registering one name as two different kinds is an error.
 */
import { InvalidArgumentError } from './errors.js';
import type { AggregateFunction, ReduceFunction } from './functions.js';
import type { Key } from './hash.js';

/** When the time-to-live of an entry is refreshed. */
export type TtlUpdateType = 'OnCreateAndWrite' | 'OnReadAndWrite';
/** Whether an expired entry that was not cleaned up yet may still be returned. */
export type TtlStateVisibility = 'NeverReturnExpired' | 'ReturnExpiredIfNotCleanedUp';

/** Time-to-live of keyed state entries (processing time, as in Flink). */
export interface StateTtlConfig {
  /** Lifetime of an entry in milliseconds since its last refresh. */
  ttlMs: number;
  /** Default `OnCreateAndWrite`. */
  updateType?: TtlUpdateType;
  /** Default `NeverReturnExpired`. */
  stateVisibility?: TtlStateVisibility;
}

/** Common options of every descriptor. */
export interface StateDescriptorOptions {
  ttl?: StateTtlConfig;
}

/** The kinds of keyed state. */
export type StateKind = 'value' | 'list' | 'map' | 'reducing' | 'aggregating';

/** Base of all state descriptors. */
export abstract class StateDescriptor<Kind extends StateKind = StateKind> {
  abstract readonly kind: Kind;
  ttl: StateTtlConfig | undefined;

  constructor(
    readonly name: string,
    options: StateDescriptorOptions = {},
  ) {
    if (typeof name !== 'string' || name.length === 0)
      throw new InvalidArgumentError('a state descriptor needs a non-empty name');
    this.ttl = options.ttl === undefined ? undefined : checkTtl(name, options.ttl);
  }

  /** Enables time-to-live for entries of this state (Flink's `enableTimeToLive`). */
  enableTimeToLive(ttl: StateTtlConfig): this {
    this.ttl = checkTtl(this.name, ttl);
    return this;
  }
}

function checkTtl(name: string, ttl: StateTtlConfig): StateTtlConfig {
  if (!(ttl.ttlMs > 0) || !Number.isFinite(ttl.ttlMs))
    throw new InvalidArgumentError(
      `state '${name}': ttlMs must be a positive finite number of milliseconds, got ${ttl.ttlMs}`,
    );
  return ttl;
}

/** Describes a {@link ValueState}. */
export class ValueStateDescriptor<T> extends StateDescriptor<'value'> {
  readonly kind = 'value' as const;
  readonly defaultValue: T | undefined;
  constructor(name: string, options: StateDescriptorOptions & { defaultValue?: T } = {}) {
    super(name, options);
    this.defaultValue = options.defaultValue;
  }
  /** Only for typing: never set. */
  declare readonly __type?: T;
}

/** Describes a {@link ListState}. */
export class ListStateDescriptor<T> extends StateDescriptor<'list'> {
  readonly kind = 'list' as const;
  declare readonly __type?: T;
}

/** Describes a {@link MapState}; user keys are keys in the sense of `keyBy` (primitives, arrays). */
export class MapStateDescriptor<UK extends Key, UV> extends StateDescriptor<'map'> {
  readonly kind = 'map' as const;
  declare readonly __type?: [UK, UV];
}

/** Describes a {@link ReducingState}. */
export class ReducingStateDescriptor<T> extends StateDescriptor<'reducing'> {
  readonly kind = 'reducing' as const;
  constructor(
    name: string,
    readonly reduce: ReduceFunction<T>,
    options: StateDescriptorOptions = {},
  ) {
    super(name, options);
  }
}

/** Describes an {@link AggregatingState}. */
export class AggregatingStateDescriptor<IN, ACC, OUT> extends StateDescriptor<'aggregating'> {
  readonly kind = 'aggregating' as const;
  constructor(
    name: string,
    readonly aggregate: AggregateFunction<IN, ACC, OUT>,
    options: StateDescriptorOptions = {},
  ) {
    super(name, options);
  }
}

/** State holding one value per key. */
export interface ValueState<T> {
  /** The value, or the descriptor's default (undefined if none) when there is none. */
  value(): T | undefined;
  /** Sets the value; `undefined` clears it. */
  update(value: T | undefined): void;
  clear(): void;
}

/** State holding a list per key. */
export interface ListState<T> {
  /** The elements (empty when none). Do not mutate the returned array. */
  get(): readonly T[];
  add(value: T): void;
  addAll(values: Iterable<T>): void;
  /** Replaces the list. */
  update(values: Iterable<T>): void;
  clear(): void;
}

/** State holding a map per key. */
export interface MapState<UK extends Key, UV> {
  get(key: UK): UV | undefined;
  put(key: UK, value: UV): void;
  putAll(entries: Iterable<readonly [UK, UV]>): void;
  remove(key: UK): void;
  contains(key: UK): boolean;
  entries(): IterableIterator<[UK, UV]>;
  keys(): IterableIterator<UK>;
  values(): IterableIterator<UV>;
  isEmpty(): boolean;
  clear(): void;
}

/** State that reduces every added value into one. */
export interface ReducingState<T> {
  get(): T | undefined;
  add(value: T): void;
  clear(): void;
}

/** State that aggregates every added value into an accumulator. */
export interface AggregatingState<IN, OUT> {
  get(): OUT | undefined;
  add(value: IN): void;
  clear(): void;
}
