/**
 * Evictors (Flink's `Evictor`s) remove elements from a window when it fires, before and/or after
 * the window function runs. A window with an evictor keeps all its elements (with timestamps).
 */
import { InvalidArgumentError } from '../../state/errors.js';
import type { MetricGroup } from '../contract.js';
import { NO_TIMESTAMP } from '../contract.js';
import type { Window } from './windows.js';

/** An element of a window with its timestamp ({@link NO_TIMESTAMP} if it has none). */
export interface TimestampedValue<T> {
  readonly value: T;
  readonly timestamp: number;
}

/** What an evictor can ask the operator. */
export interface EvictorContext {
  getCurrentProcessingTime(): number;
  getCurrentWatermark(): number;
  getMetricGroup(): MetricGroup;
}

/**
 * Removes elements from a firing window. `elements` is in insertion order; an evictor removes
 * elements by modifying the array in place (e.g. with {@link removeElementsIf}).
 */
export abstract class Evictor<T, W extends Window> {
  /** Called before the window function; `size` is the number of elements. */
  abstract evictBefore(elements: TimestampedValue<T>[], size: number, window: W, ctx: EvictorContext): void;
  /** Called after the window function. */
  abstract evictAfter(elements: TimestampedValue<T>[], size: number, window: W, ctx: EvictorContext): void;
  toString(): string {
    return `${this.constructor.name}()`;
  }
}

/** Removes, in place, the elements for which `remove` is true (keeping the order of the others). */
export function removeElementsIf<T>(elements: T[], remove: (element: T) => boolean): void {
  let kept = 0;
  for (let i = 0; i < elements.length; i++) {
    const e = elements[i]!;
    if (!remove(e)) elements[kept++] = e;
  }
  elements.length = kept;
}

/** Keeps the last `maxCount` elements of a window. */
export class CountEvictor extends Evictor<unknown, Window> {
  private constructor(
    readonly maxCount: number,
    readonly doEvictAfter: boolean,
  ) {
    super();
  }
  /** Keeps the last `maxCount` elements, before the window function (or after, if `doEvictAfter`). */
  static of(maxCount: number, doEvictAfter = false): CountEvictor {
    if (!Number.isSafeInteger(maxCount) || maxCount < 0)
      throw new InvalidArgumentError(
        `CountEvictor: maxCount must be a non-negative integer, got ${maxCount}`,
      );
    return new CountEvictor(maxCount, doEvictAfter);
  }
  evictBefore(elements: TimestampedValue<unknown>[], size: number): void {
    if (!this.doEvictAfter) this.evict(elements, size);
  }
  evictAfter(elements: TimestampedValue<unknown>[], size: number): void {
    if (this.doEvictAfter) this.evict(elements, size);
  }
  private evict(elements: TimestampedValue<unknown>[], size: number): void {
    if (size <= this.maxCount) return;
    elements.splice(0, size - this.maxCount);
  }
  override toString(): string {
    return `CountEvictor(${this.maxCount})`;
  }
}

/**
 * Keeps the elements whose timestamp is within `windowMs` of the largest timestamp in the window
 * (removes those with `timestamp <= max - windowMs`).
 */
export class TimeEvictor extends Evictor<unknown, Window> {
  private constructor(
    readonly windowMs: number,
    readonly doEvictAfter: boolean,
  ) {
    super();
  }
  /** Keeps the elements of the last `windowMs` (by the largest timestamp in the window). */
  static of(windowMs: number, doEvictAfter = false): TimeEvictor {
    if (!Number.isSafeInteger(windowMs) || windowMs < 0)
      throw new InvalidArgumentError(`TimeEvictor: windowMs must be a non-negative integer, got ${windowMs}`);
    return new TimeEvictor(windowMs, doEvictAfter);
  }
  evictBefore(elements: TimestampedValue<unknown>[]): void {
    if (!this.doEvictAfter) this.evict(elements);
  }
  evictAfter(elements: TimestampedValue<unknown>[]): void {
    if (this.doEvictAfter) this.evict(elements);
  }
  private evict(elements: TimestampedValue<unknown>[]): void {
    // NOTE: as in Flink, only the first element is checked for a timestamp.
    if (elements.length === 0 || elements[0]!.timestamp === NO_TIMESTAMP) return;
    let max = Number.NEGATIVE_INFINITY;
    for (const e of elements) if (e.timestamp > max) max = e.timestamp;
    const cutoff = max - this.windowMs;
    removeElementsIf(elements, (e) => e.timestamp <= cutoff);
  }
  override toString(): string {
    return `TimeEvictor(${this.windowMs})`;
  }
}

/** The distance between two elements, for {@link DeltaEvictor}. */
export type DeltaFunction<T> = (oldValue: T, newValue: T) => number;

/** Removes the elements whose delta to the last element is at least `threshold`. */
export class DeltaEvictor<T> extends Evictor<T, Window> {
  private constructor(
    readonly threshold: number,
    readonly deltaFunction: DeltaFunction<T>,
    readonly doEvictAfter: boolean,
  ) {
    super();
  }
  /** Removes elements with `delta(element, last) >= threshold`. */
  static of<T>(threshold: number, deltaFunction: DeltaFunction<T>, doEvictAfter = false): DeltaEvictor<T> {
    if (typeof threshold !== 'number' || Number.isNaN(threshold))
      throw new InvalidArgumentError(`DeltaEvictor: threshold must be a number, got ${threshold}`);
    if (typeof deltaFunction !== 'function')
      throw new InvalidArgumentError('DeltaEvictor.of() needs a delta function');
    return new DeltaEvictor(threshold, deltaFunction, doEvictAfter);
  }
  evictBefore(elements: TimestampedValue<T>[]): void {
    if (!this.doEvictAfter) this.evict(elements);
  }
  evictAfter(elements: TimestampedValue<T>[]): void {
    if (this.doEvictAfter) this.evict(elements);
  }
  private evict(elements: TimestampedValue<T>[]): void {
    const last = elements[elements.length - 1];
    if (last === undefined) return;
    removeElementsIf(elements, (e) => this.deltaFunction(e.value, last.value) >= this.threshold);
  }
  override toString(): string {
    return `DeltaEvictor(${this.threshold})`;
  }
}
