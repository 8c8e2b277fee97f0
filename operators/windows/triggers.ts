/**
 * Triggers decide when a window is evaluated (fired) and when its contents are discarded (purged),
 * with Flink's semantics: `onElement` for every element added to a window, `onEventTime` /
 * `onProcessingTime` when a timer the trigger registered for the window fires, `onMerge` when
 * windows merge (session windows), `clear` when the window is removed.
 */
import type {
  AggregatingState,
  AggregatingStateDescriptor,
  ListState,
  ListStateDescriptor,
  MapState,
  MapStateDescriptor,
  ReducingState,
  ValueState,
  ValueStateDescriptor,
} from '../../state/descriptors.js';
import { ReducingStateDescriptor } from '../../state/descriptors.js';
import { InvalidArgumentError } from '../../state/errors.js';
import type { Key } from '../../state/hash.js';
import type { MetricGroup } from '../contract.js';
import type { Window } from './windows.js';

/**
 * What a trigger decides (Flink's `TriggerResult`): a bit set of FIRE (1) and PURGE (2), so
 * `CONTINUE` = 0 and `FIRE_AND_PURGE` = 3.
 */
export const TriggerResult = {
  /** Nothing happens to the window. */
  CONTINUE: 0,
  /** The window is evaluated and its result emitted; its contents are kept. */
  FIRE: 1,
  /** The window's contents are discarded, without evaluation. */
  PURGE: 2,
  /** The window is evaluated, then its contents are discarded. */
  FIRE_AND_PURGE: 3,
} as const;
/** One of the {@link TriggerResult} values. */
export type TriggerResult = (typeof TriggerResult)[keyof typeof TriggerResult];

/** True if the result fires the window. */
export function isFire(result: TriggerResult): boolean {
  return (result & 1) !== 0;
}

/** True if the result purges the window. */
export function isPurge(result: TriggerResult): boolean {
  return (result & 2) !== 0;
}

/** What a trigger can do: timers and state scoped to the current key and window, and the times. */
export interface TriggerContext {
  /** The current processing time. */
  getCurrentProcessingTime(): number;
  /** The current watermark of the operator. */
  getCurrentWatermark(): number;
  /** Metrics of the window operator. */
  getMetricGroup(): MetricGroup;
  /** A processing-time timer for the current key and window; `onProcessingTime` is called at `time`. */
  registerProcessingTimeTimer(time: number): void;
  /** An event-time timer for the current key and window; `onEventTime` is called when the watermark reaches `time`. */
  registerEventTimeTimer(time: number): void;
  /** Deletes a processing-time timer of the current key and window. */
  deleteProcessingTimeTimer(time: number): void;
  /** Deletes an event-time timer of the current key and window. */
  deleteEventTimeTimer(time: number): void;
  /** State scoped to the current key and window. */
  getPartitionedState<T>(descriptor: ValueStateDescriptor<T>): ValueState<T>;
  getPartitionedState<T>(descriptor: ListStateDescriptor<T>): ListState<T>;
  getPartitionedState<UK extends Key, UV>(descriptor: MapStateDescriptor<UK, UV>): MapState<UK, UV>;
  getPartitionedState<T>(descriptor: ReducingStateDescriptor<T>): ReducingState<T>;
  getPartitionedState<IN, ACC, OUT>(
    descriptor: AggregatingStateDescriptor<IN, ACC, OUT>,
  ): AggregatingState<IN, OUT>;
}

/** The context of {@link Trigger.onMerge}: the window is the merge result. */
export interface OnMergeContext extends TriggerContext {
  /**
   * Merges the state of the merged windows into the state of the merge result (reducing,
   * aggregating and list state; Flink's `MergingState`).
   */
  mergePartitionedState<T>(descriptor: ReducingStateDescriptor<T>): void;
  mergePartitionedState<T>(descriptor: ListStateDescriptor<T>): void;
  mergePartitionedState<IN, ACC, OUT>(descriptor: AggregatingStateDescriptor<IN, ACC, OUT>): void;
}

/**
 * Decides when a window fires and when it is purged (Flink's `Trigger`). Subclass it for a custom
 * trigger; keep state in `ctx.getPartitionedState`, not in fields (a trigger object serves every
 * key and window of a subtask).
 */
export abstract class Trigger<T, W extends Window> {
  /** Called for every element added to a window. */
  abstract onElement(element: T, timestamp: number, window: W, ctx: TriggerContext): TriggerResult;
  /** Called when a processing-time timer registered for the window fires. */
  abstract onProcessingTime(time: number, window: W, ctx: TriggerContext): TriggerResult;
  /** Called when an event-time timer registered for the window fires. */
  abstract onEventTime(time: number, window: W, ctx: TriggerContext): TriggerResult;
  /** True if the trigger supports merging windows (then `onMerge` must be implemented). */
  canMerge(): boolean {
    return false;
  }
  /** Called when windows merged into `window`; the merged windows' state is still there to merge. */
  onMerge(_window: W, _ctx: OnMergeContext): void {
    throw new InvalidArgumentError(`${this} does not support merging`);
  }
  /** Removes what the trigger keeps for the window (timers, state); called when the window is removed. */
  abstract clear(window: W, ctx: TriggerContext): void;

  toString(): string {
    return `${this.constructor.name}()`;
  }
}

/**
 * Fires once the watermark passes the window's end (`maxTimestamp`); an element added to a window
 * whose end the watermark already passed (allowed lateness) fires the window at once.
 */
export class EventTimeTrigger extends Trigger<unknown, Window> {
  private static readonly INSTANCE = new EventTimeTrigger();
  private constructor() {
    super();
  }
  /** The event-time trigger. */
  static create(): EventTimeTrigger {
    return EventTimeTrigger.INSTANCE;
  }
  onElement(_element: unknown, _timestamp: number, window: Window, ctx: TriggerContext): TriggerResult {
    const max = window.maxTimestamp();
    // NOTE: as in Flink: if the watermark is already past the window, fire immediately.
    if (max <= ctx.getCurrentWatermark()) return TriggerResult.FIRE;
    ctx.registerEventTimeTimer(max);
    return TriggerResult.CONTINUE;
  }
  onEventTime(time: number, window: Window): TriggerResult {
    return time === window.maxTimestamp() ? TriggerResult.FIRE : TriggerResult.CONTINUE;
  }
  onProcessingTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  override canMerge(): boolean {
    return true;
  }
  override onMerge(window: Window, ctx: OnMergeContext): void {
    // NOTE: as in Flink, only if the watermark is not yet past the merged window; otherwise
    // onElement fires it, and a timer here would fire it twice.
    const max = window.maxTimestamp();
    if (max > ctx.getCurrentWatermark()) ctx.registerEventTimeTimer(max);
  }
  clear(window: Window, ctx: TriggerContext): void {
    ctx.deleteEventTimeTimer(window.maxTimestamp());
  }
  override toString(): string {
    return 'EventTimeTrigger()';
  }
}

/** Fires once processing time passes the window's end (`maxTimestamp`). */
export class ProcessingTimeTrigger extends Trigger<unknown, Window> {
  private static readonly INSTANCE = new ProcessingTimeTrigger();
  private constructor() {
    super();
  }
  /** The processing-time trigger. */
  static create(): ProcessingTimeTrigger {
    return ProcessingTimeTrigger.INSTANCE;
  }
  onElement(_element: unknown, _timestamp: number, window: Window, ctx: TriggerContext): TriggerResult {
    ctx.registerProcessingTimeTimer(window.maxTimestamp());
    return TriggerResult.CONTINUE;
  }
  onEventTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  onProcessingTime(): TriggerResult {
    return TriggerResult.FIRE;
  }
  override canMerge(): boolean {
    return true;
  }
  override onMerge(window: Window, ctx: OnMergeContext): void {
    const max = window.maxTimestamp();
    if (max > ctx.getCurrentProcessingTime()) ctx.registerProcessingTimeTimer(max);
  }
  clear(window: Window, ctx: TriggerContext): void {
    ctx.deleteProcessingTimeTimer(window.maxTimestamp());
  }
  override toString(): string {
    return 'ProcessingTimeTrigger()';
  }
}

const sum = (a: number, b: number): number => a + b;
const min = (a: number, b: number): number => Math.min(a, b);

/** Fires every `maxCount` elements of a window (and never purges). */
export class CountTrigger extends Trigger<unknown, Window> {
  private readonly stateDesc = new ReducingStateDescriptor<number>('count', sum);
  private constructor(readonly maxCount: number) {
    super();
  }
  /** Fires when a window has `maxCount` elements (the count then starts over). */
  static of(maxCount: number): CountTrigger {
    if (!Number.isSafeInteger(maxCount) || maxCount < 1)
      throw new InvalidArgumentError(`CountTrigger: maxCount must be a positive integer, got ${maxCount}`);
    return new CountTrigger(maxCount);
  }
  onElement(_element: unknown, _timestamp: number, _window: Window, ctx: TriggerContext): TriggerResult {
    const count = ctx.getPartitionedState(this.stateDesc);
    count.add(1);
    if (count.get()! >= this.maxCount) {
      count.clear();
      return TriggerResult.FIRE;
    }
    return TriggerResult.CONTINUE;
  }
  onEventTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  onProcessingTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  override canMerge(): boolean {
    return true;
  }
  override onMerge(_window: Window, ctx: OnMergeContext): void {
    // NOTE: as in Flink, a merged count at or above maxCount fires with the next element.
    ctx.mergePartitionedState(this.stateDesc);
  }
  clear(_window: Window, ctx: TriggerContext): void {
    ctx.getPartitionedState(this.stateDesc).clear();
  }
  override toString(): string {
    return `CountTrigger(${this.maxCount})`;
  }
}

function checkInterval(what: string, intervalMs: number): void {
  if (!Number.isSafeInteger(intervalMs) || intervalMs < 1)
    throw new InvalidArgumentError(
      `${what}: the interval must be a positive integer number of ms, got ${intervalMs}`,
    );
}

/**
 * Fires every `intervalMs` of event time (aligned to multiples of the interval) while the window
 * is open, and at the window's end.
 */
export class ContinuousEventTimeTrigger extends Trigger<unknown, Window> {
  private readonly stateDesc = new ReducingStateDescriptor<number>('fire-time', min);
  private constructor(readonly intervalMs: number) {
    super();
  }
  /** Fires every `intervalMs` of event time. */
  static of(intervalMs: number): ContinuousEventTimeTrigger {
    checkInterval('ContinuousEventTimeTrigger', intervalMs);
    return new ContinuousEventTimeTrigger(intervalMs);
  }
  onElement(_element: unknown, timestamp: number, window: Window, ctx: TriggerContext): TriggerResult {
    if (window.maxTimestamp() <= ctx.getCurrentWatermark()) return TriggerResult.FIRE;
    ctx.registerEventTimeTimer(window.maxTimestamp());
    const fireTimestamp = ctx.getPartitionedState(this.stateDesc);
    // NOTE: Flink's `timestamp - (timestamp % interval)` (truncates towards zero for negatives).
    if (fireTimestamp.get() === undefined)
      this.registerNext(timestamp - (timestamp % this.intervalMs), window, ctx, fireTimestamp);
    return TriggerResult.CONTINUE;
  }
  onEventTime(time: number, window: Window, ctx: TriggerContext): TriggerResult {
    if (time === window.maxTimestamp()) return TriggerResult.FIRE;
    const fireTimestamp = ctx.getPartitionedState(this.stateDesc);
    if (fireTimestamp.get() === time) {
      fireTimestamp.clear();
      this.registerNext(time, window, ctx, fireTimestamp);
      return TriggerResult.FIRE;
    }
    return TriggerResult.CONTINUE;
  }
  onProcessingTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  override canMerge(): boolean {
    return true;
  }
  override onMerge(_window: Window, ctx: OnMergeContext): void {
    ctx.mergePartitionedState(this.stateDesc);
    const next = ctx.getPartitionedState(this.stateDesc).get();
    if (next !== undefined) ctx.registerEventTimeTimer(next);
  }
  clear(_window: Window, ctx: TriggerContext): void {
    const fireTimestamp = ctx.getPartitionedState(this.stateDesc);
    const t = fireTimestamp.get();
    if (t !== undefined) {
      ctx.deleteEventTimeTimer(t);
      fireTimestamp.clear();
    }
  }
  private registerNext(
    time: number,
    window: Window,
    ctx: TriggerContext,
    fireTimestamp: ReducingState<number>,
  ): void {
    const next = Math.min(time + this.intervalMs, window.maxTimestamp());
    fireTimestamp.add(next);
    ctx.registerEventTimeTimer(next);
  }
  override toString(): string {
    return `ContinuousEventTimeTrigger(${this.intervalMs})`;
  }
}

/** Fires every `intervalMs` of processing time (aligned to multiples of the interval). */
export class ContinuousProcessingTimeTrigger extends Trigger<unknown, Window> {
  private readonly stateDesc = new ReducingStateDescriptor<number>('fire-time', min);
  private constructor(readonly intervalMs: number) {
    super();
  }
  /** Fires every `intervalMs` of processing time. */
  static of(intervalMs: number): ContinuousProcessingTimeTrigger {
    checkInterval('ContinuousProcessingTimeTrigger', intervalMs);
    return new ContinuousProcessingTimeTrigger(intervalMs);
  }
  onElement(_element: unknown, _timestamp: number, window: Window, ctx: TriggerContext): TriggerResult {
    const fireTimestamp = ctx.getPartitionedState(this.stateDesc);
    const now = ctx.getCurrentProcessingTime();
    if (fireTimestamp.get() === undefined)
      this.registerNext(now - (now % this.intervalMs), window, ctx, fireTimestamp);
    return TriggerResult.CONTINUE;
  }
  onEventTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  onProcessingTime(time: number, window: Window, ctx: TriggerContext): TriggerResult {
    const fireTimestamp = ctx.getPartitionedState(this.stateDesc);
    if (fireTimestamp.get() === time) {
      fireTimestamp.clear();
      // NOTE: the fire at the window's end is the last one (FLINK-35069). The next fire time is
      // capped at the window's end, so registering again would ask for `maxTimestamp` once more:
      // on an event-time window, which lives on after processing time passes its end, that timer
      // is already due and fired again at once, forever. A later element starts the cycle again
      // (and fires once, as its first fire time is then the window's end).
      if (time < window.maxTimestamp()) this.registerNext(time, window, ctx, fireTimestamp);
      return TriggerResult.FIRE;
    }
    return TriggerResult.CONTINUE;
  }
  override canMerge(): boolean {
    return true;
  }
  override onMerge(_window: Window, ctx: OnMergeContext): void {
    ctx.mergePartitionedState(this.stateDesc);
    const next = ctx.getPartitionedState(this.stateDesc).get();
    if (next !== undefined) ctx.registerProcessingTimeTimer(next);
  }
  clear(_window: Window, ctx: TriggerContext): void {
    const fireTimestamp = ctx.getPartitionedState(this.stateDesc);
    const t = fireTimestamp.get();
    if (t !== undefined) {
      ctx.deleteProcessingTimeTimer(t);
      fireTimestamp.clear();
    }
  }
  private registerNext(
    time: number,
    window: Window,
    ctx: TriggerContext,
    fireTimestamp: ReducingState<number>,
  ): void {
    const next = Math.min(time + this.intervalMs, window.maxTimestamp());
    fireTimestamp.add(next);
    ctx.registerProcessingTimeTimer(next);
  }
  override toString(): string {
    return `ContinuousProcessingTimeTrigger(${this.intervalMs})`;
  }
}

/** Turns every FIRE of the wrapped trigger into FIRE_AND_PURGE. */
export class PurgingTrigger<T, W extends Window> extends Trigger<T, W> {
  private constructor(readonly nestedTrigger: Trigger<T, W>) {
    super();
  }
  /** Wraps `trigger` so that every fire also purges the window. */
  static of<T, W extends Window>(trigger: Trigger<T, W>): PurgingTrigger<T, W> {
    if (!(trigger instanceof Trigger)) throw new InvalidArgumentError('PurgingTrigger.of() needs a Trigger');
    return new PurgingTrigger(trigger);
  }
  onElement(element: T, timestamp: number, window: W, ctx: TriggerContext): TriggerResult {
    return purging(this.nestedTrigger.onElement(element, timestamp, window, ctx));
  }
  onEventTime(time: number, window: W, ctx: TriggerContext): TriggerResult {
    return purging(this.nestedTrigger.onEventTime(time, window, ctx));
  }
  onProcessingTime(time: number, window: W, ctx: TriggerContext): TriggerResult {
    return purging(this.nestedTrigger.onProcessingTime(time, window, ctx));
  }
  override canMerge(): boolean {
    return this.nestedTrigger.canMerge();
  }
  override onMerge(window: W, ctx: OnMergeContext): void {
    this.nestedTrigger.onMerge(window, ctx);
  }
  clear(window: W, ctx: TriggerContext): void {
    this.nestedTrigger.clear(window, ctx);
  }
  override toString(): string {
    return `PurgingTrigger(${this.nestedTrigger})`;
  }
}

function purging(r: TriggerResult): TriggerResult {
  return isFire(r) ? TriggerResult.FIRE_AND_PURGE : r;
}

/** Never fires (the default trigger of {@link GlobalWindows}). */
export class NeverTrigger extends Trigger<unknown, Window> {
  private static readonly INSTANCE = new NeverTrigger();
  private constructor() {
    super();
  }
  /** The trigger that never fires. */
  static create(): NeverTrigger {
    return NeverTrigger.INSTANCE;
  }
  onElement(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  onEventTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  onProcessingTime(): TriggerResult {
    return TriggerResult.CONTINUE;
  }
  override onMerge(): void {}
  clear(): void {}
  override toString(): string {
    return 'NeverTrigger()';
  }
}
